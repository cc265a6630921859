/**
 * discoverCells over 10,000 cells (BENCH_SMOKE=1: 1,000): realistic manifests (three agents,
 * isolation, links), 80 % active, 10 % frozen, 10 % archived, plus a few broken cells and
 * provisioning leftovers, each cell with the full directory tree. Reports the median and the
 * slowest of several runs (the page cache is warm: the tree was just written).
 * Target: < 1 s. Prints one BENCH_RESULT line to stdout.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { cellPaths, discoverCells, type CellManifest } from '@pit/cell-spec';

const smoke = process.env.BENCH_SMOKE === '1';
const CELLS = smoke ? 1_000 : 10_000;
const BROKEN = 10;
const RUNS = 7;
const log = (message: string): void => void process.stderr.write(`[discover] ${message}\n`);

const root = await fs.mkdtemp(join(tmpdir(), 'pit-discover-bench-'));
try {
  log(`building ${CELLS.toLocaleString('en')} cells`);
  const created = '2026-11-20T09:14:03.512Z';
  const write = async (index: number) => {
    const uuid = randomUUID();
    const paths = cellPaths(root, uuid);
    for (const dir of [
      paths.workspace,
      paths.logs,
      paths.checkpoints,
      paths.busInbox,
      paths.heartbeats,
    ])
      await fs.mkdir(dir, { recursive: true });
    const manifest: CellManifest = {
      uuid,
      name: `mission-${index}`,
      mission: `Port module ${index} of the parser and keep the golden tests green`,
      created_at: created,
      created_by: 'ops@pit',
      status: index % 10 === 0 ? 'archived' : index % 10 === 1 ? 'frozen' : 'active',
      agents: [
        { name: 'forge', role: 'lead', joined_at: created, home: '/home/forge' },
        { name: 'allegro', role: 'write', joined_at: created },
        { name: 'timmy.v2', role: 'audit', joined_at: created },
      ],
      isolation: { level: 2 },
      issue: `https://gitea.example.org/pit/missions/issues/${index}`,
      repo: 'https://gitea.example.org/pit/parser-rs',
      revision: index % 50,
      updated_at: '2026-11-22T08:30:11.004Z',
    };
    await fs.writeFile(paths.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
    await fs.writeFile(
      paths.events,
      `{"ts":"${created}","event":"cell_created","uuid":"${uuid}","mission":"m","created_by":"ops@pit"}\n`,
    );
  };
  const batch = 64;
  for (let start = 0; start < CELLS; start += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, CELLS - start) }, (_, offset) => write(start + offset)),
    );
  }
  for (let index = 0; index < BROKEN; index += 1) {
    const dir = join(root, randomUUID());
    await fs.mkdir(dir);
    await fs.writeFile(
      join(dir, 'cell.json'),
      index % 2 ? '{"uuid": ' : JSON.stringify({ status: 'hibernating' }),
    );
    await fs.mkdir(join(root, `.provisioning-${randomUUID()}.0000`));
  }
  const expectedSupervised = CELLS - Math.ceil(CELLS / 10);
  const timings: number[] = [];
  // How long the event loop is held up at most while discovery runs (it reads in time slices).
  const stalls = monitorEventLoopDelay({ resolution: 1 });
  stalls.enable();
  for (let run = 0; run < RUNS; run += 1) {
    const started = process.hrtime.bigint();
    const found = await discoverCells(root);
    timings.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (
      found.supervised.length !== expectedSupervised ||
      found.problems.length !== BROKEN ||
      found.ignored.length !== BROKEN
    ) {
      throw new Error(
        `found ${found.supervised.length} supervised, ${found.problems.length} problems, ${found.ignored.length} ignored`,
      );
    }
  }
  stalls.disable();
  const sorted = [...timings].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] as number;
  const slowest = sorted.at(-1) as number;
  log(`runs (ms): ${timings.map((ms) => ms.toFixed(0)).join(', ')}`);
  process.stdout.write(
    `BENCH_RESULT ${JSON.stringify({
      title: `discoverCells over ${CELLS.toLocaleString('en')} cells`,
      rows: [
        {
          metric: 'median of ' + RUNS + ' runs',
          value: Number(median.toFixed(1)),
          unit: 'ms',
          target: '< 1000 ms',
          ok: median < 1000,
        },
        {
          metric: 'slowest run',
          value: Number(slowest.toFixed(1)),
          unit: 'ms',
          target: '< 1000 ms',
          ok: slowest < 1000,
        },
        { metric: 'first run', value: Number((timings[0] as number).toFixed(1)), unit: 'ms' },
        {
          metric: 'cells per second (median)',
          value: Math.round(CELLS / (median / 1000)),
          unit: 'cells/s',
        },
        {
          metric: 'longest event-loop stall meanwhile',
          value: Number((stalls.max / 1e6).toFixed(1)),
          unit: 'ms',
        },
      ],
      notes: `${expectedSupervised.toLocaleString('en')} supervised, ${Math.ceil(CELLS / 10)} archived, ${BROKEN} broken cells reported as problems, ${BROKEN} leftovers listed as ignored; warm page cache.`,
    })}\n`,
  );
} finally {
  await fs.rm(root, { recursive: true, force: true });
}
