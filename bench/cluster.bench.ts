/**
 * The cluster layer (issue #16) on a real 3-node `nats-server` cluster on 127.0.0.1, with three
 * real cluster members in their own processes (bench/fixtures/cluster-host.ts: lease, fence,
 * placement and claims exactly as `pit daemon` runs them), placing AGENTS agents (3 × 3,000;
 * BENCH_SMOKE=1: 3 × 100). What it measures:
 * - placement: time until every agent has an owner after the three hosts start;
 * - steady state: CPU (% of a core) and RSS of each host process, and NATS messages per second
 *   (all nodes' `in_msgs`, from `/varz`), over a quiet window;
 * - the coordination cost of one revive: the claim round trip every start makes first
 *   (the single-host path makes none);
 * - takeover: the host holding the most agents is SIGKILLed; for each of its agents, the time
 *   until a live host claimed it (target ≤ 2T, T the lease).
 * Not measured here: agent processes (none are started: the per-agent cost of supervision is
 * detection-at-scale's), and the `pit daemon` around the member.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { natsServerPath, startNatsCluster, type TestNatsCluster } from '@pit/test-kit';
import { cpuMs, memoryMb } from './lib/proc.js';
import { natsMessages } from './lib/sleep-fleet.js';
import { emitResult, machineNote, progress, smoke, type BenchRow } from './lib/report.js';
import { round, summary } from './lib/stats.js';

const AGENTS = smoke ? 300 : 9000;
const LEASE_MS = 3000;
const CLAIMS = smoke ? 50 : 300;
const STEADY_MS = smoke ? 5000 : 20_000;
const HOST = fileURLToPath(new URL('./fixtures/cluster-host.ts', import.meta.url));
const log = progress('cluster');
let unexpectedExit: string | undefined;

interface Host {
  id: string;
  child: ChildProcess;
  held: number;
  claimed: Map<string, number>;
  claimMs: number[];
  claimsDone: boolean;
}

function startHost(id: string, nats: TestNatsCluster): Host {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@pit/source',
      '--import',
      'tsx',
      HOST,
      id,
      String(LEASE_MS),
      String(AGENTS),
      nats.urls.join(','),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const host: Host = { id, child, held: 0, claimed: new Map(), claimMs: [], claimsDone: false };
  // A host that dies on its own (it could not join, a crash) ends the run: its numbers would be missing.
  child.once('exit', (code, signal) => {
    if (signal !== 'SIGKILL') unexpectedExit ??= `${id} exited on its own (${code ?? signal})`;
  });
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop()!;
    for (const line of lines) {
      const [kind, a, b] = line.split(' ');
      if (kind === 'HELD') host.held = Number(a);
      else if (kind === 'CLAIMED') host.claimed.set(a!, Number(b));
      else if (kind === 'CLAIM_MS') host.claimMs.push(Number(a));
      else if (kind === 'CLAIMS_DONE') host.claimsDone = true;
    }
  });
  return host;
}

async function until(
  what: string,
  timeoutMs: number,
  check: () => boolean,
  state: () => string = () => '',
): Promise<number> {
  const started = Date.now();
  let reported = started;
  while (!check()) {
    if (unexpectedExit) throw new Error(`${unexpectedExit} while waiting for ${what}`);
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out waiting for ${what} after ${timeoutMs} ms: ${state()}`);
    if (Date.now() - reported >= 10_000) {
      reported = Date.now();
      log(`still waiting for ${what}: ${state()}`);
    }
    await sleep(20);
  }
  return Date.now() - started;
}

async function main(): Promise<void> {
  if (!natsServerPath()) {
    emitResult({
      title: 'Cluster coordination (NATS JetStream)',
      rows: [{ metric: 'not run', value: 'nats-server is not installed', unit: '' }],
    });
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'pit-bench-cluster-'));
  const nats = await startNatsCluster(dir);
  const hosts: Host[] = [];
  try {
    for (const id of ['host-a', 'host-b', 'host-c']) hosts.push(startHost(id, nats));
    const held = () => hosts.map((host) => `${host.id} holds ${host.held}`).join(', ');
    const placedMs = await until(
      'every agent placed',
      smoke ? 120_000 : 600_000,
      () => hosts.reduce((sum, host) => sum + host.held, 0) === AGENTS,
      held,
    );
    log(`placed ${AGENTS} agents in ${placedMs} ms: ${hosts.map((h) => h.held).join(' / ')}`);
    await sleep(LEASE_MS);
    const cpuBefore = hosts.map((host) => cpuMs(host.child.pid!) ?? 0);
    const msgsBefore = (await natsMessages(nats)).in;
    const windowStart = Date.now();
    await sleep(STEADY_MS);
    const windowMs = Date.now() - windowStart;
    const cpu = hosts.map(
      (host, index) => (((cpuMs(host.child.pid!) ?? 0) - cpuBefore[index]!) / windowMs) * 100,
    );
    const rss = hosts.map((host) => memoryMb(host.child.pid!)?.rss ?? Number.NaN);
    const msgsPerS = ((await natsMessages(nats)).in - msgsBefore) / (windowMs / 1000);
    log(`steady: cpu ${cpu.map((c) => c.toFixed(1)).join(' / ')} %, rss ${rss.join(' / ')} MB`);

    const claimer = hosts.reduce((most, host) => (host.held > most.held ? host : most));
    claimer.child.stdin!.write(`claims ${CLAIMS}\n`);
    await until('the claims', 120_000, () => claimer.claimsDone);
    const claim = summary(claimer.claimMs, 2);

    const victim = hosts.reduce((most, host) => (host.held > most.held ? host : most));
    const survivors = hosts.filter((host) => host !== victim);
    const before = new Map(survivors.map((host) => [host, new Set(host.claimed.keys())]));
    const moving = victim.held;
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    await until(
      'the takeover',
      120_000,
      () => survivors.reduce((sum, host) => sum + host.held, 0) === AGENTS,
      held,
    );
    const takeover: number[] = [];
    for (const host of survivors)
      for (const [key, at] of host.claimed)
        if (!before.get(host)!.has(key)) takeover.push(at - killedAt);
    const took = summary(takeover, 0);
    log(`takeover of ${moving} agents: p50 ${took.p50} ms, p99 ${took.p99} ms`);
    if (unexpectedExit) throw new Error(unexpectedExit);
    const rows: BenchRow[] = [
      { metric: 'agents placed across 3 hosts', value: AGENTS, unit: 'agents' },
      { metric: 'initial placement (all agents owned)', value: placedMs, unit: 'ms' },
      {
        metric: 'steady CPU per host (max of 3)',
        value: round(Math.max(...cpu), 2),
        unit: '% of a core',
      },
      { metric: 'steady RSS per host (max of 3)', value: round(Math.max(...rss), 1), unit: 'MB' },
      { metric: 'NATS messages in, all nodes', value: round(msgsPerS, 1), unit: 'msg/s' },
      {
        metric: 'claim before a start (coordination cost per revive), p50',
        value: claim.p50,
        unit: 'ms',
      },
      { metric: 'claim before a start, p99', value: claim.p99, unit: 'ms' },
      { metric: 'agents taken over (the killed host held)', value: moving, unit: 'agents' },
      {
        metric: 'takeover after SIGKILL, p50',
        value: took.p50,
        unit: 'ms',
        target: `≤ ${2 * LEASE_MS} (2T)`,
        ok: took.p50 <= 2 * LEASE_MS,
      },
      {
        metric: 'takeover after SIGKILL, p99',
        value: took.p99,
        unit: 'ms',
        target: `≤ ${2 * LEASE_MS} (2T)`,
        ok: took.p99 <= 2 * LEASE_MS,
      },
    ];
    emitResult({
      title: 'Cluster coordination (NATS JetStream, 3 nodes, 3 hosts)',
      rows,
      notes: `T (lease) = ${LEASE_MS} ms. Hosts are real cluster members (cluster-member.ts) in their own processes with no agent processes; the single-host path makes no claim (0 ms). ${machineNote()}`,
    });
  } finally {
    for (const host of hosts) host.child.kill('SIGKILL');
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
