/**
 * Memory per scheduled agent in @pit/probes: the heap a heartbeat agent costs once it is
 * scheduled (one ScheduledProbe with a watched heartbeat file, its createHeartbeatProbe, its
 * slot in the scheduler) and assessed (tracked by one shared assessor, first result recorded).
 * Measured as the growth of the live heap (after a full GC) from 1,000 to 11,000 agents
 * (BENCH_SMOKE=1: 100 to 1,100), so the fixed costs (module code, fs watchers per cell) cancel.
 * The daemon's own per-agent state comes on top (bench/detection-at-scale.bench.ts).
 * Prints progress to stderr and one BENCH_RESULT line to stdout. Needs `node --expose-gc`.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { setTimeout as sleep } from 'node:timers/promises';
import { cellPaths, writeHeartbeat } from '@pit/cell-spec';
import { createAssessor, createHeartbeatProbe, createProbeScheduler } from '@pit/probes';

const smoke = process.env.BENCH_SMOKE === '1';
const FIRST = smoke ? 100 : 1_000;
const SECOND = smoke ? 1_100 : 11_000;
const PER_CELL = 100;
const log = (message: string): void => void process.stderr.write(`[memory-per-agent] ${message}\n`);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('memory-per-agent: run with node --expose-gc (pnpm bench does)');

const root = mkdtempSync(join(tmpdir(), 'pit-bench-memory-'));
const assessor = createAssessor({ probes: { heartbeat: { failureThreshold: 1 } } });
let results = 0;
const scheduler = createProbeScheduler({
  seed: 1,
  onResult: ({ agent, probe, result }) => {
    results += 1;
    assessor.record(agent, probe, result);
  },
});

/** Provisions cells and heartbeats for agents [from, to) and schedules them. */
async function addAgents(from: number, to: number): Promise<void> {
  let cellDir = '';
  let uuid = '';
  for (let index = from; index < to; index += 1) {
    if (index % PER_CELL === 0 || cellDir === '') {
      uuid = randomUUID();
      cellDir = join(root, uuid);
      mkdirSync(cellPaths(cellDir).heartbeats, { recursive: true });
    }
    const agent = `agent-${index % PER_CELL}`;
    await writeHeartbeat(cellDir, {
      agent,
      cell_uuid: uuid,
      cycle: 1,
      status: 'working',
      timestamp: Date.now() / 1000,
    });
    const key = `${uuid}/${agent}`;
    const heartbeat = createHeartbeatProbe({ cellDir, agent, maxAgeMs: 3_600_000 });
    assessor.track(key, { probes: ['heartbeat'] });
    scheduler.add({
      agent: key,
      probes: [
        {
          name: 'heartbeat',
          intervalMs: 3_600_000,
          timeoutMs: 5_000,
          watchPath: cellPaths(cellDir).heartbeat(agent),
          run: heartbeat.run,
        },
      ],
    });
  }
  for (const deadline = Date.now() + 120_000; results < to && Date.now() < deadline;)
    await sleep(50);
  if (results < to) throw new Error(`memory-per-agent: ${results}/${to} first results in 120 s`);
}

/** The live heap after full collections, bytes; and RSS. */
async function measure(): Promise<{ heap: number; rss: number }> {
  for (let round = 0; round < 3; round += 1) {
    gc!();
    await sleep(100);
  }
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, rss: usage.rss };
}

try {
  await addAgents(0, FIRST);
  const first = await measure();
  log(
    `${FIRST} agents: heap ${(first.heap / 2 ** 20).toFixed(1)} MiB, RSS ${(first.rss / 2 ** 20).toFixed(1)} MiB`,
  );
  await addAgents(FIRST, SECOND);
  const second = await measure();
  log(
    `${SECOND} agents: heap ${(second.heap / 2 ** 20).toFixed(1)} MiB, RSS ${(second.rss / 2 ** 20).toFixed(1)} MiB`,
  );
  // PIT_BENCH_HEAP_SNAPSHOT=DIR: a heap snapshot at the larger size, for attributing the bytes.
  const snapshotDir = process.env.PIT_BENCH_HEAP_SNAPSHOT;
  if (snapshotDir)
    log(`heap snapshot ${writeHeapSnapshot(join(snapshotDir, 'memory-per-agent.heapsnapshot'))}`);
  const perAgent = (second.heap - first.heap) / (SECOND - FIRST);
  const rssPerAgent = (second.rss - first.rss) / (SECOND - FIRST);
  const [one] = loadavg();
  process.stdout.write(
    `BENCH_RESULT ${JSON.stringify({
      title: `memory per scheduled heartbeat agent in @pit/probes (${FIRST} → ${SECOND} agents)`,
      rows: [
        {
          metric: 'live heap per agent (scheduler slot + heartbeat probe + assessor record)',
          value: Math.round(perAgent),
          unit: 'B',
          target: '≤ 2048 B (the probes share of the daemon 8 KB)',
          ok: perAgent <= 2048,
        },
        { metric: 'RSS growth per agent (after GC)', value: Math.round(rssPerAgent), unit: 'B' },
        {
          metric: `live heap at ${SECOND} agents`,
          value: Math.round(second.heap / 2 ** 20),
          unit: 'MiB',
        },
      ],
      notes: `One process, ${cpus().length} cores, Node ${process.version}, load average ${one?.toFixed(1)} (memory figures do not depend on load). Heap after three forced GCs; agents in cells of ${PER_CELL}, each with a fresh heartbeat, its first result recorded, intervals of an hour so no run is in flight while measured.`,
    })}\n`,
  );
} finally {
  await scheduler.stop();
  rmSync(root, { recursive: true, force: true });
}
