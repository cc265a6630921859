/**
 * The deadman store on the healthy-check path.
 * - snapshot() of an unchanged 20-file config (a config directory of 20 files, and the same 20
 *   files named one by one): median, p95 and p99 per call (target ≤ 1 ms median). This runs on
 *   every healthy check of every agent.
 * - snapshot() after one of the 20 files changed (objects, set and pointer written and fsynced).
 * - rollback() of 20 files of which 3 changed, and diff() of the same.
 * Prints progress to stderr and one BENCH_RESULT line to stdout.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSnapshotStore } from '@pit/snapshot';

const smoke = process.env.BENCH_SMOKE === '1';
const CALLS = smoke ? 300 : 5_000;
const CHANGED_ROUNDS = smoke ? 5 : 30;
const log = (message: string): void => void process.stderr.write(`[snapshot] ${message}\n`);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function time<T>(work: () => Promise<T>): Promise<number> {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const root = await fs.mkdtemp(join(tmpdir(), 'pit-snapshot-bench-'));
try {
  const config = join(root, 'home', 'forge', '.config', 'agent');
  await fs.mkdir(join(config, 'providers'), { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < 20; i += 1) {
    const path =
      i < 8
        ? join(config, 'providers', `provider-${i}.json`)
        : join(config, `file-${i}.${i % 2 ? 'json' : 'toml'}`);
    await fs.writeFile(
      path,
      JSON.stringify({ model: `model-${i}`, padding: 'x'.repeat(200 + i * 300) }, null, 2),
      { mode: i % 3 ? 0o644 : 0o600 },
    );
    files.push(path);
  }
  const store = createSnapshotStore({
    stateDir: join(root, 'state'),
    requestLog: join(root, 'state', 'requests.jsonl'),
  });
  await store.snapshot('forge', [config]);
  await store.snapshot('forge-files', files);
  // Hashes are cached only for files older than the racy window (2 s): a real config was written long before.
  log('waiting out the racy window (2 s) so cached hashes are trusted');
  await sleep(2100);
  await store.snapshot('forge', [config]);
  await store.snapshot('forge-files', files);

  const measure = async (agent: string, paths: string[]) => {
    for (let i = 0; i < 200; i += 1) await store.snapshot(agent, paths); // warm-up
    const samples: number[] = [];
    for (let i = 0; i < CALLS; i += 1) {
      const ms = await time(() => store.snapshot(agent, paths));
      samples.push(ms);
    }
    const result = await store.snapshot(agent, paths);
    if (result.status !== 'unchanged') throw new Error(`expected unchanged, got ${result.status}`);
    samples.sort((a, b) => a - b);
    return {
      median: percentile(samples, 50),
      p95: percentile(samples, 95),
      p99: percentile(samples, 99),
    };
  };
  log(`${CALLS} unchanged snapshots of a 20-file config directory`);
  const dir = await measure('forge', [config]);
  log(
    `median ${dir.median.toFixed(3)} ms, p95 ${dir.p95.toFixed(3)} ms, p99 ${dir.p99.toFixed(3)} ms`,
  );
  log(`${CALLS} unchanged snapshots of 20 files named one by one`);
  const named = await measure('forge-files', files);
  log(
    `median ${named.median.toFixed(3)} ms, p95 ${named.p95.toFixed(3)} ms, p99 ${named.p99.toFixed(3)} ms`,
  );

  log(`${CHANGED_ROUNDS} snapshots after one file changed`);
  const changed: number[] = [];
  for (let i = 0; i < CHANGED_ROUNDS; i += 1) {
    await fs.writeFile(
      files[i % files.length] as string,
      JSON.stringify({ model: `changed-${i}` }),
    );
    changed.push(await time(() => store.snapshot('forge', [config])));
  }
  changed.sort((a, b) => a - b);

  log(`${CHANGED_ROUNDS} rollbacks of 3 changed files, with diff`);
  const rollbacks: number[] = [];
  const diffs: number[] = [];
  for (let i = 0; i < CHANGED_ROUNDS; i += 1) {
    for (const path of files.slice(0, 3)) await fs.writeFile(path, `corrupted ${i}`);
    diffs.push(await time(() => store.diff('forge')));
    rollbacks.push(await time(() => store.rollback('forge', { reason: 'bench' })));
  }
  rollbacks.sort((a, b) => a - b);
  diffs.sort((a, b) => a - b);

  const rows = [
    {
      metric: 'snapshot, unchanged 20-file config directory: median',
      value: dir.median,
      unit: 'ms',
      target: '≤ 1 ms',
      ok: dir.median <= 1,
    },
    { metric: 'snapshot, unchanged 20-file config directory: p95', value: dir.p95, unit: 'ms' },
    { metric: 'snapshot, unchanged 20-file config directory: p99', value: dir.p99, unit: 'ms' },
    {
      metric: 'snapshot, unchanged 20 separate files: median',
      value: named.median,
      unit: 'ms',
      target: '≤ 1 ms',
      ok: named.median <= 1,
    },
    { metric: 'snapshot, unchanged 20 separate files: p95', value: named.p95, unit: 'ms' },
    {
      metric: 'snapshot after one file changed (fsynced): median',
      value: percentile(changed, 50),
      unit: 'ms',
    },
    { metric: 'diff, 3 of 20 files changed: median', value: percentile(diffs, 50), unit: 'ms' },
    {
      metric: 'rollback, 3 of 20 files changed (fsynced, logged): median',
      value: percentile(rollbacks, 50),
      unit: 'ms',
    },
  ];
  process.stdout.write(
    `BENCH_RESULT ${JSON.stringify({ title: 'config snapshots (deadman store)', rows, notes: `${CALLS} unchanged calls per layout${smoke ? ' (smoke)' : ''}; files 0.2–6 KB.` })}\n`,
  );
} finally {
  await fs.rm(root, { recursive: true, force: true });
}
