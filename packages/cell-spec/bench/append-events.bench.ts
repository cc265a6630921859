/**
 * Appending to events.jsonl: lines per second for appendEvent (opens and closes the file per
 * call) and for a kept-open createEventAppender, each without and with fsync per line.
 * Realistic heartbeat events (~110 bytes a line). BENCH_SMOKE=1 runs a tenth of the lines.
 * Prints one BENCH_RESULT line to stdout.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendEvent, createEventAppender, readEvents } from '@pit/cell-spec';

const smoke = process.env.BENCH_SMOKE === '1';
const scale = smoke ? 0.1 : 1;
const log = (message: string): void => void process.stderr.write(`[append-events] ${message}\n`);

const event = (cycle: number) =>
  ({
    event: 'heartbeat',
    agent: 'forge',
    cycle,
    status: 'working: claude-sonnet-4-5',
  }) as const;

async function measure(
  label: string,
  lines: number,
  path: string,
  append: (cycle: number) => Promise<unknown>,
): Promise<number> {
  const started = process.hrtime.bigint();
  for (let cycle = 0; cycle < lines; cycle += 1) await append(cycle);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  let count = 0;
  for await (const entry of readEvents(path)) {
    if (!entry.ok) throw new Error(`${path}:${entry.line}: ${entry.reason}`);
    count += 1;
  }
  if (count !== lines) throw new Error(`${label}: ${count} lines in the file, expected ${lines}`);
  const rate = Math.round(lines / seconds);
  log(`${label}: ${lines} lines in ${seconds.toFixed(2)} s = ${rate} lines/s`);
  return rate;
}

const root = await fs.mkdtemp(join(tmpdir(), 'pit-append-bench-'));
try {
  const fast = Math.round(50_000 * scale);
  const slow = Math.round(2_000 * scale);
  const path = (name: string) => join(root, `${name}.jsonl`);
  const appendNoSync = await measure('appendEvent', fast, path('a'), (cycle) =>
    appendEvent(path('a'), event(cycle)),
  );
  const appendSync = await measure('appendEvent + fsync', slow, path('b'), (cycle) =>
    appendEvent(path('b'), event(cycle), { fsync: true }),
  );
  const kept = createEventAppender(path('c'));
  const appenderNoSync = await measure('createEventAppender', fast * 2, path('c'), (cycle) =>
    kept.append(event(cycle)),
  );
  await kept.close();
  const keptSync = createEventAppender(path('d'), { fsync: true });
  const appenderSync = await measure('createEventAppender + fsync', slow, path('d'), (cycle) =>
    keptSync.append(event(cycle)),
  );
  await keptSync.close();
  const lineBytes = (await fs.stat(path('a'))).size / fast;
  process.stdout.write(
    `BENCH_RESULT ${JSON.stringify({
      title: 'appendEvent: lines per second, without and with fsync',
      rows: [
        {
          metric: 'appendEvent (open, write, close per line)',
          value: appendNoSync,
          unit: 'lines/s',
        },
        { metric: 'appendEvent with fsync', value: appendSync, unit: 'lines/s' },
        { metric: 'createEventAppender (kept open)', value: appenderNoSync, unit: 'lines/s' },
        { metric: 'createEventAppender with fsync', value: appenderSync, unit: 'lines/s' },
      ],
      notes: `One awaited append at a time, ${lineBytes.toFixed(0)}-byte heartbeat lines, validated by the event schema; every file read back and counted.`,
    })}\n`,
  );
} finally {
  await fs.rm(root, { recursive: true, force: true });
}
