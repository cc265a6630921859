/**
 * Denial of supervision without a token (issue #13, point 8): a daemon whose nofile limit is
 * 20,000 gets 19,000 unauthenticated connections to its HTTP port, held open, some of them asking
 * for `/api/events`. Meanwhile an agent is SIGKILLed: it is revived as fast as one killed before
 * the flood, no agent ever has two live processes, nothing is logged "no longer supervised", the
 * daemon's descriptors stay far below its limit, and the excess connections are refused (closed
 * at accept; event streams beyond the cap get 503).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from '@pit/test-kit';
import { cellEvents, cleanup, liveAgents, makeFleet, startDaemon, stopDaemon } from './harness.js';

const CONNECTIONS = 19_000;
const DAEMON_NOFILE = 20_000;

/**
 * The attacker: a separate node process (its own nofile limit of 20,000, set by prlimit) that opens
 * `count` connections in batches of 1,000 and holds them; the first 100 ask for `/api/events`.
 * Prints one JSON line per batch and on SIGUSR2 (`report`); SIGTERM closes every socket and exits.
 */
const FLOODER = `
import { connect } from 'node:net';
const [port, count] = [Number(process.argv[2]), Number(process.argv[3])];
const sockets = new Set();
const stats = { opened: 0, connected: 0, closedByServer: 0, failed: 0, status503: 0, status200: 0, held: 0 };
const report = (kind) => process.stdout.write(JSON.stringify({ kind, ...stats, held: sockets.size }) + '\\n');
function open(index) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    stats.opened += 1;
    let settled = false;
    const settle = () => { if (!settled) { settled = true; resolve(); } };
    socket.on('connect', () => {
      stats.connected += 1;
      sockets.add(socket);
      if (index < 100) socket.write('GET /api/events HTTP/1.1\\r\\nHost: 127.0.0.1:' + port + '\\r\\n\\r\\n');
      settle();
    });
    socket.on('data', (chunk) => {
      const text = chunk.toString();
      if (text.startsWith('HTTP/1.1 503')) stats.status503 += 1;
      else if (text.startsWith('HTTP/1.1 200')) stats.status200 += 1;
    });
    socket.on('error', () => { if (!sockets.has(socket)) stats.failed += 1; settle(); });
    socket.on('close', () => { if (sockets.delete(socket)) stats.closedByServer += 1; settle(); });
  });
}
for (let start = 0; start < count; start += 1000) {
  await Promise.all(Array.from({ length: Math.min(1000, count - start) }, (_, i) => open(start + i)));
  report('batch');
}
report('opened');
process.on('SIGUSR2', () => report('report'));
process.on('SIGTERM', () => { for (const socket of sockets) socket.destroy(); report('closed'); process.exit(0); });
setInterval(() => undefined, 1 << 30);
`;

interface FloodReport {
  kind: string;
  opened: number;
  connected: number;
  closedByServer: number;
  failed: number;
  status503: number;
  status200: number;
  held: number;
}

let flooder: ChildProcess | undefined;
afterEach(async () => {
  if (flooder && flooder.exitCode === null && flooder.signalCode === null) {
    const exited = new Promise((resolve) => flooder!.once('exit', resolve));
    flooder.kill('SIGKILL');
    await exited;
  }
  flooder = undefined;
  await cleanup();
});

const openFds = async (pid: number) => (await fs.readdir(`/proc/${pid}/fd`)).length;

/** Time from a SIGKILL of `agent` to its `agent_revived` event (ms), its pid then the only live one. */
async function killAndTimeRevive(
  fleet: Awaited<ReturnType<typeof makeFleet>>,
  agent: string,
): Promise<number> {
  const [pid] = (await liveAgents(fleet.marker)).get(agent) ?? [];
  expect(pid, `${agent} running`).toBeDefined();
  const killedAt = Date.now();
  process.kill(pid!, 'SIGKILL');
  const revived = await waitFor(
    async () =>
      (await cellEvents(fleet.cellDir)).find(
        (event) => event.agent === agent && event.event === 'agent_revived',
      ),
    30_000,
    `${agent} revived`,
  );
  const elapsed = Date.parse(revived.ts) - killedAt;
  await waitFor(
    async () => {
      const live = (await liveAgents(fleet.marker)).get(agent) ?? [];
      return live.length === 1 && live[0] !== pid;
    },
    10_000,
    `${agent}'s one new process`,
  );
  return elapsed;
}

describe('hostile agent: an unauthenticated HTTP flood', () => {
  it('keeps supervising through 19,000 connections: a killed agent is revived in normal time, once, and the excess is refused', async () => {
    const agents = ['forge', 'anvil', 'brief'];
    const fleet = await makeFleet({
      agents,
      logLevel: 'info',
      extra: ['[policy.defaults]', 'backoff = { initial = "100ms", jitter = 0 }'].join('\n'),
    });
    const daemon = await startDaemon(fleet.configPath);
    const daemonPid = Number(/^READY \S+ (\d+)$/m.exec(daemon.output())![1]);
    const prlimit = spawn('prlimit', [
      `--pid=${daemonPid}`,
      `--nofile=${DAEMON_NOFILE}:${DAEMON_NOFILE}`,
    ]);
    expect(await new Promise((resolve) => prlimit.once('exit', resolve))).toBe(0);
    await waitFor(
      async () => (await liveAgents(fleet.marker)).size === 3,
      30_000,
      'three agents running',
    );
    await waitFor(
      async () =>
        (await cellEvents(fleet.cellDir)).filter((event) => event.event === 'agent_healthy')
          .length >= 3,
      30_000,
      'three agents healthy',
    );

    // Before the flood: how long a revive takes here.
    const baselineMs = await killAndTimeRevive(fleet, 'forge');
    const fdsBefore = await openFds(daemonPid);

    // The flood, from its own process with room for every socket.
    const dir = await tempDir('pit-flood-');
    const script = join(dir, 'flooder.mjs');
    await fs.writeFile(script, FLOODER);
    const port = Number(new URL(daemon.url).port);
    flooder = spawn(
      'prlimit',
      [
        `--nofile=${DAEMON_NOFILE}:${DAEMON_NOFILE}`,
        process.execPath,
        script,
        String(port),
        String(CONNECTIONS),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const reports: FloodReport[] = [];
    let buffered = '';
    flooder.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let index: number;
      while ((index = buffered.indexOf('\n')) !== -1) {
        reports.push(JSON.parse(buffered.slice(0, index)) as FloodReport);
        buffered = buffered.slice(index + 1);
      }
    });
    // Never two processes of one agent, checked all along the flood.
    let scanning = true;
    let worst = 0;
    const scans = (async () => {
      while (scanning) {
        for (const pids of (await liveAgents(fleet.marker)).values())
          worst = Math.max(worst, pids.length);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    let fdsPeak = fdsBefore;
    const sampleFds = setInterval(() => {
      void openFds(daemonPid).then((count) => (fdsPeak = Math.max(fdsPeak, count)));
    }, 100);
    try {
      await waitFor(
        () => reports.find((report) => report.kind === 'batch' && report.opened >= 5_000),
        60_000,
        'the first 5,000 connections',
      );
      // Meanwhile, an agent dies.
      const floodMs = await killAndTimeRevive(fleet, 'anvil');
      const opened = await waitFor(
        () => reports.find((report) => report.kind === 'opened'),
        60_000,
        `${CONNECTIONS} connections opened`,
      );
      // Connections still in the kernel's accept queue look open to the flooder: wait until the
      // daemon has taken each one (and closed every one beyond its cap). A handshake the kernel
      // could not queue (the daemon drained its accept queue of 4,096 too slowly, on a loaded
      // machine) completes only at a retransmitted SYN-ACK, 1, 2, 4, 8, 16 then 32 s apart
      // (tcp_synack_retries = 5): a CI run once waited more than 30 s here, against about 3 s. The
      // bound covers that schedule (63 s); how fast a revive is under the flood is asserted below.
      const last = await waitFor(
        async () => {
          const seen = reports.length;
          flooder!.kill('SIGUSR2');
          const report = await waitFor(
            () => reports.slice(seen).find((item) => item.kind === 'report'),
            10_000,
            'the flooder’s report',
          );
          return report.held <= 256 ? report : undefined;
        },
        70_000,
        'every connection beyond the cap closed',
      );
      console.log(
        `flood: ${JSON.stringify(last)}; revive ${baselineMs} ms before, ${floodMs} ms during; daemon fds ${fdsBefore} → peak ${fdsPeak}`,
      );
      expect(opened.opened).toBe(CONNECTIONS);
      // Excess connections are refused: the daemon held at most its cap, closed the rest at accept.
      expect(last.closedByServer + last.failed).toBeGreaterThanOrEqual(CONNECTIONS - 256);
      expect(last.held).toBeLessThanOrEqual(256);
      expect(daemon.output()).toContain('http connection refused: too many open connections');
      // Event streams beyond the cap got 503 (those whose connection was accepted at all).
      expect(last.status200).toBeLessThanOrEqual(32);
      // The daemon's descriptors stayed far from its limit; the revive took normal time.
      expect(fdsPeak).toBeLessThan(fdsBefore + 256 + 64);
      expect(floodMs).toBeLessThan(Math.max(3 * baselineMs, baselineMs + 3_000));
    } finally {
      clearInterval(sampleFds);
      scanning = false;
      await scans;
      if (flooder.exitCode === null && flooder.signalCode === null) {
        const closed = new Promise((resolve) => flooder!.once('exit', resolve));
        flooder.kill('SIGTERM');
        await closed;
      }
    }
    expect(worst).toBe(1);
    expect(daemon.output()).not.toContain('no longer supervised');
    // The untouched agent was never restarted.
    expect(
      (await cellEvents(fleet.cellDir)).filter(
        (event) => event.agent === 'brief' && event.event === 'agent_revived',
      ),
    ).toEqual([]);
    await stopDaemon(daemon);
  });
});
