// @ts-check
// The agent launcher: a small, long-lived child of the daemon that forks agents on its behalf.
//
// Why it exists: fork(2) copies the parent's page tables, so a spawn from the daemon (tens of MB
// of heap) costs more, and the pages the daemon touches afterwards fault again, than a spawn from
// a process that holds almost nothing. This program owns only the fork, never a decision: the
// daemon says what to start (argv, working directory, environment, log path) and when, and
// learns every exit from it. It is plain JavaScript so that it runs with plain `node` whether the
// daemon runs from source or from dist (launcher-client.ts starts it; tsup copies it to dist).
//
// Protocol: one JSON object per line, on the launcher's stdin (requests) and stdout (answers;
// stdout on a pipe is written synchronously, so answers leave in order). Each agent's fds 0-2
// are its own (/dev/null and its log), so no agent holds the launcher's pipes.
//   daemon → launcher  {type: 'spawn', id, command, cwd, env, logPath, errorLogPath?, logRoot?, header,
//                       cgroup?}
//   launcher → daemon  {type: 'ready'} once;
//                      {type: 'spawned', id, pid, stat} (stat: /proc/<pid>/stat, read before the
//                      launcher could reap the agent) or {type: 'failed', id, stage, path?, message}
//                      (path: the log that could not be opened, stage 'log');
//                      {type: 'exit', pid, code, signal, respawn?} for every agent it started,
//                      after its 'spawned' (the real wait(2) status; respawn: the id of the standing
//                      order it carried out at this exit, whose 'spawned' or 'failed' follows).
//   daemon → launcher  {type: 'stand', pid, request} (request: a spawn's fields, with headerAt and
//                      cgroupKill?): a standing order for the agent `pid`, which this launcher
//                      started: the moment it exits, kill what is left in its cgroup (cgroupKill:
//                      the group's `cgroup.kill`) and start `request` at once, as if asked then
//                      (its header is headerAt[0] + the time + headerAt[1]). The daemon decides
//                      afterwards whether it keeps that process (restart.ts, standing restarts).
//                      {type: 'cancel', pid}: withdraws it; answered {type: 'cancelled', pid, id}
//                      when it still stood, else nothing (the exit that used it was sent first).
//
// Agents start as they did from the daemon (executor.ts): their own session and process group
// (`detached`), stdout appended to their log and stderr to their error log (errorLogPath; to the
// one log when it is absent: merge_stderr), each opened O_APPEND|O_NOFOLLOW, its directory
// created when missing, the header line written first to each. With `logRoot` (the cell),
// every component from it down to the log is opened without following a link, each relative to
// the previous one through /proc/self/fd (the walk of cell-spec's beneath.ts, repeated here so
// that the launcher loads nothing but Node). With `cgroup` (the `cgroup.procs` of the agent's
// cgroup2 group), the launcher moves itself into that group for the fork and back into its own
// right after it, so the agent is in its group from its first instruction without a shell exec'd
// in front of it (the daemon asks one start at a time per group, and no other operation on that
// group runs meanwhile: agent-cgroups.ts). A launcher that cannot move back says so and exits
// (the daemon starts a new one) rather than stay in an agent's group. The launcher reaps every agent
// it starts. It exits when its stdin ends (the daemon closed it, or died); the agents keep running. It
// ignores SIGINT, SIGTERM and SIGHUP sent to the daemon's process group: the daemon decides
// when it ends.
import { spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';

const LOG_FLAGS =
  constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;

/** Writes one answer line (stdout on a pipe is written synchronously: answers keep their order). */
const send = (/** @type {Record<string, unknown>} */ message) => {
  if (held) held.push(message);
  else process.stdout.write(`${JSON.stringify(message)}\n`);
};
/**
 * Answers held back while a standing order's fork runs (then sent after the exit's): the daemon,
 * woken by an answer, would take a core from the new agent's exec on a small machine.
 * @type {Record<string, unknown>[] | undefined}
 */
let held;

/** Opens an agent's log for appending (the same flags and mode as executor.ts's openLog). */
const openLog = (/** @type {string} */ path) => {
  try {
    return openSync(path, LOG_FLAGS, 0o640);
  } catch (error) {
    if (/** @type {NodeJS.ErrnoException} */ (error).code !== 'ENOENT') throw error;
  }
  mkdirSync(dirname(path), { recursive: true });
  return openSync(path, LOG_FLAGS, 0o640);
};

const DIRECTORY_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Opens `path` beneath `root`, creating missing directories, following no link on the way. */
const openLogBeneath = (/** @type {string} */ root, /** @type {string} */ path) => {
  const components = relative(root, path).split('/');
  const name = components.pop();
  if (!name || components.some((part) => part === '' || part === '.' || part === '..'))
    throw new Error(`${path}: not beneath ${root}; refused`);
  let fd = openSync(root, DIRECTORY_FLAGS);
  try {
    for (const [index, component] of components.entries()) {
      const next = `/proc/self/fd/${fd}/${component}`;
      try {
        mkdirSync(next, { mode: 0o755 });
      } catch (error) {
        if (/** @type {NodeJS.ErrnoException} */ (error).code !== 'EEXIST') throw error;
      }
      let opened;
      try {
        opened = openSync(next, DIRECTORY_FLAGS);
      } catch (error) {
        const at = join(root, ...components.slice(0, index + 1));
        const link = (() => {
          try {
            return lstatSync(next).isSymbolicLink();
          } catch {
            return false;
          }
        })();
        const code = /** @type {NodeJS.ErrnoException} */ (error).code;
        if (link || code === 'ELOOP')
          throw new Error(`${path}: open log: ${at} is a symbolic link; refused`);
        throw error;
      }
      closeSync(fd);
      fd = opened;
    }
    const log = openSync(`/proc/self/fd/${fd}/${name}`, LOG_FLAGS | constants.O_NONBLOCK, 0o640);
    if (!fstatSync(log).isFile()) {
      closeSync(log);
      throw new Error(`${path}: open log: not a regular file; refused`);
    }
    return log;
  } catch (error) {
    const code = /** @type {NodeJS.ErrnoException} */ (error).code;
    if (code === 'ELOOP') throw new Error(`${path}: open log: is a symbolic link; refused`);
    throw error;
  } finally {
    closeSync(fd);
  }
};

const messageOf = (/** @type {unknown} */ error) =>
  error instanceof Error ? error.message : String(error);

/** The `cgroup.procs` of the launcher's own cgroup2 group (where it returns after a fork). */
const ownCgroupProcs = () => {
  const own = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((line) => line.startsWith('0::'))
    ?.slice(3);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [before, after] = line.split(' - ');
    const mount = before?.split(' ')[4];
    if (after?.split(' ')[0] === 'cgroup2' && mount && own !== undefined)
      return join(mount, own, 'cgroup.procs');
  }
  throw new Error('no cgroup2 file system is mounted, or this process is in no cgroup2 group');
};
/** @type {string | undefined} found at the first start into a group */
let home;
/** Why the launcher could not return to its own group after a fork (it then exits). */
/** @type {string | undefined} */
let stranded;

/**
 * Forks with `spawn()` from inside the cgroup whose `cgroup.procs` is `procs` (when given): the
 * child inherits the group at fork. `0` written to `cgroup.procs` moves the writing process.
 * @template T
 * @param {string | undefined} procs
 * @param {() => T} fork
 * @returns {T}
 */
const forkIn = (procs, fork) => {
  if (procs === undefined) return fork();
  home ??= ownCgroupProcs();
  writeFileSync(procs, '0');
  try {
    return fork();
  } finally {
    try {
      writeFileSync(home, '0');
    } catch (error) {
      stranded = `cannot return to its own cgroup ${home} from ${procs}: ${messageOf(error)}`;
    }
  }
};

/**
 * @param {{ id: number, command: string[], cwd: string, env: Record<string, string>,
 *   logPath: string, errorLogPath?: string, logRoot?: string, header: string }} request
 */
const launch = (request) => {
  const { id, command } = request;
  /** @type {number[]} */
  const fds = [];
  let path = request.logPath;
  try {
    for (const each of request.errorLogPath
      ? [request.logPath, request.errorLogPath]
      : [request.logPath]) {
      path = each;
      const fd = request.logRoot ? openLogBeneath(request.logRoot, each) : openLog(each);
      fds.push(fd);
      writeSync(fd, request.header);
    }
  } catch (error) {
    for (const fd of fds) closeSync(fd);
    return send({ type: 'failed', id, stage: 'log', path, message: messageOf(error) });
  }
  const out = /** @type {number} */ (fds[0]);
  const err = fds[1] ?? out;
  let child;
  try {
    child = forkIn(request.cgroup, () =>
      spawn(command[0] ?? '', command.slice(1), {
        cwd: request.cwd,
        env: request.env,
        detached: true,
        stdio: ['ignore', out, err],
      }),
    );
  } catch (error) {
    return send({ type: 'failed', id, stage: 'spawn', message: messageOf(error) });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  const pid = child.pid;
  if (pid !== undefined) running.add(pid);
  if (pid === undefined) {
    // exec failed (ENOENT, EACCES, a bad cwd): Node reports it as an 'error' event.
    child.once('error', (error) =>
      send({ type: 'failed', id, stage: 'spawn', message: messageOf(error) }),
    );
    return;
  }
  child.on('error', () => undefined);
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    stat = undefined;
  }
  send({ type: 'spawned', id, pid, stat });
  child.once('exit', (code, signal) => exited(pid, code, signal));
};

/**
 * Standing orders by the pid of the running agent they are for (see the protocol above).
 * @type {Map<number, { id: number, cgroupKill?: string, headerAt: [string, string] } & Parameters<typeof launch>[0]>}
 */
const standing = new Map();
/** The agents this launcher started that have not exited. */
const running = new Set();

/** An agent exited: reported, and its standing order (if any) carried out at once. */
const exited = (
  /** @type {number} */ pid,
  /** @type {number | null} */ code,
  /** @type {NodeJS.Signals | null} */ signal,
) => {
  running.delete(pid);
  const order = standing.get(pid);
  standing.delete(pid);
  if (!order) return send({ type: 'exit', pid, code, signal });
  const answers = (held = []);
  try {
    respawn(order);
  } finally {
    held = undefined;
  }
  // The exit first (it names the order), then the new start's answer.
  send({ type: 'exit', pid, code, signal, respawn: order.id });
  for (const answer of answers) send(answer);
};

/** Carries out a standing order (see the protocol above): its answer is sent through `send`. */
const respawn = (
  /** @type {{ id: number, cgroupKill?: string, headerAt: [string, string] } & Parameters<typeof launch>[0]} */ order,
) => {
  if (order.cgroupKill !== undefined) {
    // What the agent left in its group (descendants) dies before the next one joins the group:
    // cgroup.kill signals every process in it during the write, none that joins after.
    try {
      writeFileSync(order.cgroupKill, '1');
    } catch (error) {
      const code = /** @type {NodeJS.ErrnoException} */ (error).code;
      if (code !== 'ENOENT')
        return send({ type: 'failed', id: order.id, stage: 'spawn', message: messageOf(error) });
    }
  }
  launch({
    ...order,
    header: `${order.headerAt[0]}${new Date().toISOString()}${order.headerAt[1]}`,
  });
};

/** A standing order: kept only for an agent this launcher started and that still runs. */
const stand = (/** @type {{ pid: number, request: any }} */ message) => {
  if (!running.has(message.pid))
    return send({ type: 'cancelled', pid: message.pid, id: message.request.id });
  standing.set(message.pid, message.request);
};

const cancel = (/** @type {{ pid: number }} */ message) => {
  const order = standing.get(message.pid);
  if (!order) return;
  standing.delete(message.pid);
  send({ type: 'cancelled', pid: message.pid, id: order.id });
};

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP']))
  process.on(signal, () => undefined);
// The daemon is gone (or closed us): nothing more to do; the agents keep running.
process.stdout.on('error', () => process.exit(0));
process.on('uncaughtException', (error) => {
  try {
    send({ type: 'fatal', message: error.stack ?? error.message });
  } finally {
    process.exit(70);
  }
});
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let message;
  try {
    message = JSON.parse(line);
  } catch {
    return send({ type: 'fatal', message: `not JSON: ${line.slice(0, 200)}` });
  }
  if (message && message.type === 'spawn') launch(message);
  else if (message && message.type === 'stand') stand(message);
  else if (message && message.type === 'cancel') cancel(message);
  // After its answer: a launcher left in an agent's group must not fork anything else there.
  if (stranded !== undefined) {
    send({ type: 'fatal', message: stranded });
    process.exit(70);
  }
});
lines.on('close', () => process.exit(0));
send({ type: 'ready' });
