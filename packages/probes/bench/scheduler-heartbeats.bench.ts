/**
 * The scheduler at 10,000 heartbeat agents (BENCH_SMOKE=1: 300):
 * - idle: every agent scheduled (heartbeat probe, fs.watch on each cell's heartbeat
 *   directory, 60 s safety poll), no heartbeat written: CPU% and RSS;
 * - deaths: every heartbeat rewritten (by a separate fleet process) with a timestamp whose staleness deadline falls in the
 *   next few seconds; nobody refreshes them: time from each deadline to the assessor's dead
 *   verdict (p50/p99, target p99 ≤ 250 ms).
 * Prints progress to stderr and one BENCH_RESULT line to stdout.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { cellPaths } from '@pit/cell-spec';
import { createAssessor, createHeartbeatProbe, createProbeScheduler } from '@pit/probes';

const smoke = process.env.BENCH_SMOKE === '1';
const AGENTS = smoke ? 300 : 10_000;
const PER_CELL = 100;
const MAX_AGE_MS = 120_000; // long enough that no idle-phase heartbeat expires during the run
const IDLE_WINDOW_MS = smoke ? 2_000 : 10_000;
const DEATHS_FROM_MS = smoke ? 3_000 : 25_000; // first deadline, after the rewrite starts (the rewrite and its watch-triggered runs finish first)
const DEATHS_SPREAD_MS = smoke ? 2_000 : 10_000;

const log = (message: string): void =>
  void process.stderr.write(`[scheduler-heartbeats] ${message}\n`);
const root = mkdtempSync(join(tmpdir(), 'pit-bench-heartbeats-'));
const agents: { key: string; cellDir: string; name: string; deadline?: number }[] = [];
const cells: { dir: string; uuid: string }[] = [];
for (let index = 0; index < AGENTS; index += 1) {
  if (index % PER_CELL === 0) {
    const uuid = randomUUID();
    const dir = join(root, uuid);
    mkdirSync(cellPaths(dir).heartbeats, { recursive: true });
    cells.push({ dir, uuid });
  }
  const cell = cells.at(-1) as { dir: string; uuid: string };
  const name = `agent-${index % PER_CELL}`;
  agents.push({ key: `${cell.uuid}/${name}`, cellDir: cell.dir, name });
}
const byKey = new Map(agents.map((agent) => [agent.key, agent]));
const uuidOf = (agent: { key: string }): string => agent.key.slice(0, 36);

// Heartbeats are written by a separate process, as agents do.
const writer = spawn(
  process.execPath,
  [
    '--conditions=@pit/source',
    '--import',
    'tsx',
    fileURLToPath(new URL('./fleet-writer.ts', import.meta.url)),
  ],
  {
    stdio: ['pipe', 'pipe', 'inherit'],
  },
);
const writerLines = createInterface({ input: writer.stdout })[Symbol.asyncIterator]();
async function writeAll(timestampFor: (index: number) => number): Promise<number> {
  const beats = agents.map((agent, index) => ({
    cellDir: agent.cellDir,
    agent: agent.name,
    cell_uuid: uuidOf(agent),
    timestamp: timestampFor(index),
  }));
  writer.stdin.write(`${JSON.stringify(beats)}\n`);
  const answer = await writerLines.next();
  return Number(String(answer.value).split(' ')[1]);
}

log(`${AGENTS} agents in ${cells.length} cells under ${root}`);
await writeAll(() => Date.now());

const assessor = createAssessor({ probes: { heartbeat: { failureThreshold: 1 } } });
const latencies: number[] = [];
const timeline: { deadline: number; latency: number }[] = [];
let firstResults = 0;
let dead = 0;
let allStarted: () => void = () => undefined;
const started = new Promise<void>((resolve) => (allStarted = resolve));
let allDead: () => void = () => undefined;
const finished = new Promise<void>((resolve) => (allDead = resolve));

const scheduler = createProbeScheduler({
  seed: 1,
  onResult: ({ agent, probe, reason, result }) => {
    if (reason === 'start' && ++firstResults === AGENTS) allStarted();
    const verdict = assessor.record(agent, probe, result);
    if (verdict.changed && verdict.health === 'dead') {
      const deadline = byKey.get(agent)?.deadline;
      if (deadline !== undefined) {
        latencies.push(Date.now() - deadline);
        timeline.push({ deadline, latency: Date.now() - deadline });
      }
      if (++dead === AGENTS) allDead();
    }
  },
});

const setupStart = performance.now();
for (const agent of agents) {
  const probe = createHeartbeatProbe({
    cellDir: agent.cellDir,
    agent: agent.name,
    maxAgeMs: MAX_AGE_MS,
  });
  scheduler.add({
    agent: agent.key,
    probes: [
      {
        name: 'heartbeat',
        intervalMs: 60_000,
        timeoutMs: 5_000,
        watchPath: cellPaths(agent.cellDir).heartbeat(agent.name),
        run: probe.run,
      },
    ],
  });
}
await started;
const setupMs = performance.now() - setupStart;
log(
  `all ${AGENTS} agents probed once in ${setupMs.toFixed(0)} ms; ${scheduler.stats().watchedDirs} directories watched`,
);

// Idle.
await sleep(500);
const cpuBefore = process.cpuUsage();
const wallBefore = performance.now();
await sleep(IDLE_WINDOW_MS);
const cpu = process.cpuUsage(cpuBefore);
const idleCpuPercent = ((cpu.user + cpu.system) / 1000 / (performance.now() - wallBefore)) * 100;
const rssMb = process.memoryUsage().rss / 1024 / 1024;
log(
  `idle: ${idleCpuPercent.toFixed(2)} % CPU, ${rssMb.toFixed(0)} MB RSS over ${IDLE_WINDOW_MS} ms (${scheduler.stats().runs} runs so far)`,
);

// Deaths: deadlines spread over DEATHS_SPREAD_MS, starting DEATHS_FROM_MS from now.
const base = Date.now() + DEATHS_FROM_MS;
agents.forEach((agent, index) => {
  agent.deadline = base + Math.floor((index * DEATHS_SPREAD_MS) / AGENTS);
});
const writeMs = await writeAll((index) => (agents[index]?.deadline as number) - MAX_AGE_MS);
log(
  `the fleet rewrote ${AGENTS} heartbeats in ${writeMs} ms (first deadline ${DEATHS_FROM_MS} ms after it began); waiting for ${AGENTS} deaths`,
);
// Measure the deaths window itself: this process's CPU and how long its event loop stalled.
await sleep(Math.max(0, base - Date.now()));
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
const deathsCpuBefore = process.cpuUsage();
const deathsWallBefore = performance.now();
await Promise.race([finished, sleep(DEATHS_SPREAD_MS + 60_000)]);
loopDelay.disable();
const deathsCpu = process.cpuUsage(deathsCpuBefore);
const deathsCpuPercent =
  ((deathsCpu.user + deathsCpu.system) / 1000 / (performance.now() - deathsWallBefore)) * 100;
const loopDelayMaxMs = loopDelay.max / 1e6;
log(
  `deaths window: ${deathsCpuPercent.toFixed(1)} % CPU, event-loop delay p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms, max ${loopDelayMaxMs.toFixed(1)} ms`,
);
await scheduler.stop();
writer.stdin.end();
rmSync(root, { recursive: true, force: true });

// Where the tail sits in time (each tenth of the deaths window), for diagnosis.
const slices = Array.from({ length: 10 }, (_, slice) => {
  const inSlice = timeline
    .filter((entry) => Math.floor(((entry.deadline - base) * 10) / DEATHS_SPREAD_MS) === slice)
    .map((entry) => entry.latency)
    .sort((a, b) => a - b);
  return inSlice[Math.max(0, Math.ceil(inSlice.length * 0.99) - 1)] ?? NaN;
});
log(`p99 per tenth of the deaths window: ${slices.join(', ')} ms`);
latencies.sort((a, b) => a - b);
const percentile = (p: number): number =>
  latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] ?? NaN;
const p50 = percentile(50);
const p99 = percentile(99);
log(
  `deaths seen: ${latencies.length}/${AGENTS}; deadline→dead p50 ${p50} ms, p99 ${p99} ms, max ${latencies.at(-1)} ms`,
);

const rows = [
  {
    metric: `deadline → dead verdict p50 (${AGENTS} agents, ${Math.round((AGENTS * 1000) / DEATHS_SPREAD_MS)} deaths/s)`,
    value: p50,
    unit: 'ms',
    target: '—',
    ok: latencies.length === AGENTS,
  },
  {
    metric: `deadline → dead verdict p99 (${AGENTS} agents, ${Math.round((AGENTS * 1000) / DEATHS_SPREAD_MS)} deaths/s)`,
    value: p99,
    unit: 'ms',
    target: '≤ 250 ms',
    ok: latencies.length === AGENTS && p99 <= 250,
  },
  {
    metric: 'deadline → dead verdict max',
    value: latencies.at(-1) ?? NaN,
    unit: 'ms',
    target: '—',
    ok: true,
  },
  {
    metric: 'deaths detected',
    value: latencies.length,
    unit: 'agents',
    target: `= ${AGENTS}`,
    ok: latencies.length === AGENTS,
  },
  {
    metric: 'CPU while deaths arrive',
    value: Math.round(deathsCpuPercent * 10) / 10,
    unit: '% of one core',
    target: '—',
    ok: true,
  },
  {
    metric: 'event-loop delay max while deaths arrive',
    value: Math.round(loopDelayMaxMs),
    unit: 'ms',
    target: '—',
    ok: true,
  },
  {
    metric: `idle CPU (${AGENTS} agents, fs.watch, 60 s poll)`,
    value: Math.round(idleCpuPercent * 100) / 100,
    unit: '% of one core',
    target: '—',
    ok: true,
  },
  { metric: 'idle RSS', value: Math.round(rssMb), unit: 'MB', target: '—', ok: true },
  {
    metric: 'first probe of every agent',
    value: Math.round(setupMs),
    unit: 'ms',
    target: '—',
    ok: true,
  },
  {
    metric: 'machine load average (1 min, 2 cores shared) at the end',
    value: Math.round((loadavg()[0] ?? 0) * 10) / 10,
    unit: '',
    target: '—',
    ok: true,
  },
];
process.stdout.write(
  `BENCH_RESULT ${JSON.stringify({ title: `@pit/probes scheduler: ${AGENTS} heartbeat agents`, rows })}\n`,
);
