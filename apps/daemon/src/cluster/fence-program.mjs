// @ts-check
// The fence: a small process beside a clustered daemon that kills the agents the daemon started
// once the daemon's host lease can no longer be trusted, even when the daemon itself cannot act
// (killed with SIGKILL, stopped with SIGSTOP, stuck). Another host takes an agent over only after
// this host's lease has expired at the NATS servers, T after its last renewal; the fence kills
// this host's copies 2T/3 after that renewal at the latest, so two copies never run at once.
//
// It owns no decision: the daemon tells it, after each renewal that landed, how long the lease is
// still safe (`valid_ms`), and which agent processes to kill when it is not. It is plain
// JavaScript so that it runs with plain `node` from src and from dist (fence.ts starts it; tsup
// copies it to dist). It runs in its own session, so a signal to the daemon's process group does
// not reach it, and it ignores SIGINT, SIGTERM and SIGHUP: the daemon ends it through its stdin.
//
// Protocol: one JSON object per line on stdin.
//   {type: 'lease', valid_ms}                    the lease is safe for valid_ms from now
//   {type: 'watch', key, pid, start_time, cgroup?} kill this process (and its cgroup) when unsafe
//   {type: 'unwatch', key}                       the daemon stopped it or let it go
//   {type: 'disarm'}                             the daemon stopped cleanly: exit without killing
// On stdout, one JSON line per kill: {type: 'killed', key, pid, reason}. When stdin ends without a
// disarm (the daemon died), the fence waits for the deadline, kills what it watches and exits.
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** @type {Map<string, {pid: number, start_time: number, cgroup?: string}>} */
const watched = new Map();
let deadline = Number.POSITIVE_INFINITY;
let disarmed = false;
let stdinEnded = false;
/** @type {NodeJS.Timeout | undefined} */
let timer;

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => {});

const now = () => performance.now();

/** @param {number} pid */
function startTimeOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** @param {string} key @param {{pid: number, start_time: number, cgroup?: string}} agent */
function kill(key, agent) {
  // The recorded incarnation only: a pid reused by another process is left alone.
  if (startTimeOf(agent.pid) !== agent.start_time) return;
  if (agent.cgroup) {
    try {
      writeFileSync(`${agent.cgroup}/cgroup.kill`, '1');
    } catch {
      // no cgroup.kill (kernel < 5.14) or the group is gone: the signals below still go
    }
  }
  for (const target of [-agent.pid, agent.pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  process.stdout.write(
    `${JSON.stringify({ type: 'killed', key, pid: agent.pid, reason: 'lease not renewed' })}\n`,
  );
}

function expire() {
  timer = undefined;
  if (disarmed) return;
  for (const [key, agent] of watched) kill(key, agent);
  watched.clear();
  deadline = Number.POSITIVE_INFINITY;
  if (stdinEnded) process.exit(0);
}

function arm() {
  clearTimeout(timer);
  timer = undefined;
  if (deadline === Number.POSITIVE_INFINITY) return;
  timer = setTimeout(expire, Math.max(0, deadline - now()));
}

/** @param {string} line */
function handle(line) {
  /** @type {any} */
  let message;
  try {
    message = JSON.parse(line);
  } catch {
    return;
  }
  if (message.type === 'lease' && typeof message.valid_ms === 'number') {
    deadline = now() + Math.max(0, message.valid_ms);
    arm();
  } else if (message.type === 'watch' && typeof message.key === 'string') {
    const agent = { pid: Number(message.pid), start_time: Number(message.start_time) };
    if (typeof message.cgroup === 'string') Object.assign(agent, { cgroup: message.cgroup });
    watched.set(message.key, agent);
  } else if (message.type === 'unwatch' && typeof message.key === 'string') {
    watched.delete(message.key);
  } else if (message.type === 'disarm') {
    disarmed = true;
    clearTimeout(timer);
    process.exit(0);
  }
}

const lines = createInterface({ input: process.stdin });
lines.on('line', handle);
lines.on('close', () => {
  stdinEnded = true;
  // The daemon died: nothing will renew the lease. Kill at the deadline (at once with none set
  // and agents watched: a lease never confirmed is not safe), then exit.
  if (watched.size === 0) process.exit(0);
  if (deadline === Number.POSITIVE_INFINITY) expire();
});
