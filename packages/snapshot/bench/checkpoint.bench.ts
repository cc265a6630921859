/**
 * Workspace checkpoints at size: a 200 MB workspace (BENCH_SMOKE=1: 20 MB) of 1,000 small
 * text files, 8 large text-like files and 20 large incompressible files.
 * - createCheckpoint: throughput (MB of workspace per second) and peak RSS of the process;
 * - restoreCheckpoint (hash, check, extract, fsync, swap): throughput and peak RSS.
 * Each operation runs in a child process of its own (bench/checkpoint-child.ts) so the peak RSS
 * is the operation's alone (target < 100 MB). The child runs on plain Node as the daemon would,
 * not under tsx (whose loader alone adds ~40 MB): it is bundled first with esbuild (tsx's own),
 * with the packages' sources inlined and third-party code left to node_modules.
 * Prints one BENCH_RESULT line to stdout.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cellPaths, provisionCell } from '@pit/cell-spec';

const smoke = process.env.BENCH_SMOKE === '1';
const SCALE = smoke ? 0.1 : 1;
const MB = 1024 * 1024;
const log = (message: string): void => void process.stderr.write(`[checkpoint] ${message}\n`);

const PACKAGE_DIR = join(import.meta.dirname, '..');
const BUNDLE = join(PACKAGE_DIR, 'node_modules', '.cache', 'pit-bench', 'checkpoint-child.mjs');

async function bundleChild(): Promise<void> {
  // esbuild as tsx's own dependency (no extra dependency for a benchmark).
  const esbuild = createRequire(createRequire(import.meta.url).resolve('tsx'))('esbuild') as {
    build(options: Record<string, unknown>): Promise<unknown>;
  };
  await esbuild.build({
    entryPoints: [join(import.meta.dirname, 'checkpoint-child.ts')],
    outfile: BUNDLE,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['@pit/source'],
    external: ['tar', 'zod', 'execa'],
    logLevel: 'warning',
  });
}

function child(
  op: 'create' | 'restore',
  cell: string,
  flags: string[] = [],
): { seconds: number; peakRssBytes: number; floorBytes: number; archiveBytes: number } {
  const output = execFileSync(process.execPath, [...flags, BUNDLE, op, cell], {
    cwd: PACKAGE_DIR,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(output.trim().split('\n').at(-1) as string);
}

const root = await fs.mkdtemp(join(tmpdir(), 'pit-checkpoint-bench-'));
try {
  const { dir: cell } = await provisionCell(join(root, 'missions'), {
    mission: 'bench',
    created_by: 'bench',
  });
  const workspace = cellPaths(cell).workspace;
  let total = 0;
  const words =
    'the quick brown fox jumps over the lazy dog while agents refactor the parser and write tests '.split(
      ' ',
    );
  const text = (bytes: number) => {
    const parts: string[] = [];
    let size = 0;
    while (size < bytes) {
      const word = words[(size * 7 + parts.length) % words.length] as string;
      parts.push(word);
      size += word.length + 1;
    }
    return Buffer.from(parts.join(' ')).subarray(0, bytes);
  };
  log(`building a ${Math.round(200 * SCALE)} MB workspace`);
  for (let i = 0; i < Math.round(1000 * SCALE); i += 1) {
    const dir = join(workspace, 'src', `module-${i % 50}`);
    await fs.mkdir(dir, { recursive: true });
    const body = text(16 * 1024 + ((i * 977) % (48 * 1024)));
    await fs.writeFile(join(dir, `file-${i}.ts`), body);
    total += body.length;
  }
  await fs.mkdir(join(workspace, 'data'), { recursive: true });
  for (let i = 0; i < 8; i += 1) {
    const body = text(Math.round(10 * MB * SCALE));
    await fs.writeFile(join(workspace, 'data', `corpus-${i}.txt`), body);
    total += body.length;
  }
  for (let i = 0; i < 20; i += 1) {
    const body = randomBytes(Math.round(4 * MB * SCALE));
    await fs.writeFile(join(workspace, 'data', `blob-${i}.bin`), body);
    total += body.length;
  }
  await fs.mkdir(join(workspace, 'empty', 'dirs'), { recursive: true });
  const totalMb = total / MB;
  log(`workspace: ${totalMb.toFixed(1)} MB`);

  await bundleChild();
  const create = child('create', cell);
  log(
    `create: ${create.seconds.toFixed(2)} s, archive ${(create.archiveBytes / MB).toFixed(1)} MB, peak RSS ${(create.peakRssBytes / MB).toFixed(1)} MB (floor ${(create.floorBytes / MB).toFixed(1)} MB)`,
  );
  await fs.rm(join(workspace, 'src'), { recursive: true }); // the agent wrecks the workspace
  const restore = child('restore', cell);
  log(
    `restore: ${restore.seconds.toFixed(2)} s, peak RSS ${(restore.peakRssBytes / MB).toFixed(1)} MB`,
  );
  const restoredFiles = (await fs.readdir(join(workspace, 'src'), { recursive: true })).length;
  if (restoredFiles < Math.round(1000 * SCALE))
    throw new Error(`restore incomplete: ${restoredFiles} entries under src/`);
  // Most of the growth over the floor is V8's young generation sizing itself up and buffers
  // awaiting collection, not data held: the same runs with a small young generation show it.
  const tuned = ['--max-semi-space-size=2'];
  const createTuned = child('create', cell, tuned);
  const restoreTuned = child('restore', cell, tuned);
  log(
    `with ${tuned.join(' ')}: create peak RSS ${(createTuned.peakRssBytes / MB).toFixed(1)} MB, restore ${(restoreTuned.peakRssBytes / MB).toFixed(1)} MB`,
  );

  const rows = [
    {
      metric: `createCheckpoint throughput (${totalMb.toFixed(0)} MB workspace, gzip 6)`,
      value: totalMb / create.seconds,
      unit: 'MB/s',
    },
    {
      metric: 'createCheckpoint peak RSS',
      value: create.peakRssBytes / MB,
      unit: 'MB',
      target: '< 100 MB',
      ok: create.peakRssBytes < 100 * MB,
    },
    {
      metric: `restoreCheckpoint throughput (${totalMb.toFixed(0)} MB workspace, hash + check + extract + fsync + swap)`,
      value: totalMb / restore.seconds,
      unit: 'MB/s',
    },
    {
      metric: 'restoreCheckpoint peak RSS',
      value: restore.peakRssBytes / MB,
      unit: 'MB',
      target: '< 100 MB',
      ok: restore.peakRssBytes < 100 * MB,
    },
    {
      metric: 'createCheckpoint peak RSS, node --max-semi-space-size=2',
      value: createTuned.peakRssBytes / MB,
      unit: 'MB',
    },
    {
      metric: 'restoreCheckpoint peak RSS, node --max-semi-space-size=2',
      value: restoreTuned.peakRssBytes / MB,
      unit: 'MB',
    },
    { metric: 'archive size / workspace size', value: create.archiveBytes / total, unit: 'ratio' },
    {
      metric: 'RSS of the child before the operation (Node + code loaded)',
      value: create.floorBytes / MB,
      unit: 'MB',
    },
  ];
  process.stdout.write(
    `BENCH_RESULT ${JSON.stringify({ title: 'workspace checkpoints', rows, notes: `Workspace ${totalMb.toFixed(1)} MB: ${Math.round(1000 * SCALE)} text files of 16–64 KB, 8 text-like and 20 random files${smoke ? ' (smoke sizes)' : ''}. Each operation ran in its own child process.` })}\n`,
  );
} finally {
  await fs.rm(root, { recursive: true, force: true });
}
