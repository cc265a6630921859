/**
 * One checkpoint operation in a process of its own, so that its peak RSS can be measured:
 * `create <cell>` or `restore <cell>`. Prints one JSON line: seconds, peak RSS (bytes) and the
 * RSS after loading (the floor every Node process pays).
 */
import { createCheckpoint, restoreCheckpoint } from '@pit/snapshot';

const [op, cell] = process.argv.slice(2);
if (cell === undefined || (op !== 'create' && op !== 'restore'))
  throw new Error('usage: checkpoint-child.ts create|restore <cell>');
await import('tar'); // load everything first: the floor includes the code, not the work
const floorBytes = process.memoryUsage().rss;
const started = process.hrtime.bigint();
const result =
  op === 'create'
    ? await createCheckpoint(cell, { createdBy: 'bench', reason: 'bench' })
    : await restoreCheckpoint(cell, { restoredBy: 'bench' });
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const archiveBytes =
  'manifest' in result ? result.manifest.bytes : result.checkpoint.manifest.bytes;
process.stdout.write(
  `${JSON.stringify({ seconds, peakRssBytes: process.resourceUsage().maxRSS * 1024, floorBytes, archiveBytes })}\n`,
);
