/**
 * readEvents over a 1,000,000-line events.jsonl (BENCH_SMOKE=1: 100,000 lines) of realistic,
 * mixed events (heartbeats, deaths, revivals, rollbacks, checkpoints, an unknown kind, and a
 * torn last line). The read runs in a child process (read-events-child.ts) so that its peak
 * RSS is the reader's, not the generator's. Target: peak RSS < 150 MB.
 * Prints one BENCH_RESULT line to stdout.
 */
import { execFileSync } from 'node:child_process';
import { createWriteStream, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { serializeEvent, serializeLogRecord, type CellEventInput } from '@pit/cell-spec';

const smoke = process.env.BENCH_SMOKE === '1';
const LINES = smoke ? 100_000 : 1_000_000;
const MB = 1024 * 1024;
const log = (message: string): void => void process.stderr.write(`[read-events] ${message}\n`);

/** One realistic line: known kinds as the daemon writes them, now and then a kind an agent made up. */
function lineFor(index: number): string {
  if (index % 20 === 5)
    return serializeLogRecord({
      ts: new Date(Date.UTC(2026, 10, 22) + index * 250).toISOString(),
      event: 'budget_exceeded',
      agent: 'forge',
      budget_usd: 40,
      spent_usd: 40.12,
      writer: 'pit 0.4',
    });
  return serializeEvent(eventFor(index));
}

function eventFor(index: number): CellEventInput {
  const ts = new Date(Date.UTC(2026, 10, 22) + index * 250).toISOString();
  const agent = ['forge', 'allegro', 'timmy.v2', 'bezalel-2'][index % 4]!;
  switch (index % 20) {
    case 0:
      return {
        ts,
        event: 'agent_dead',
        agent,
        reason: `heartbeat stale for ${90 + (index % 30)} s (limit 90 s)`,
        failing: ['heartbeat'],
      };
    case 1:
      return {
        ts,
        event: 'revive_requested',
        agent,
        approval_id: `apr_${index.toString(36)}`,
        reason: 'dead',
        proposed: 'restart',
        expires_at: ts,
      };
    case 2:
      return {
        ts,
        event: 'agent_revived',
        agent,
        pid: 40_000 + (index % 20_000),
        attempt: 1 + (index % 3),
        reason: 'restart',
      };
    case 3:
      return {
        ts,
        event: 'config_rolled_back',
        agent,
        files: [
          {
            path: `/home/${agent}/.hermes/config.yaml`,
            old_sha256: 'a'.repeat(64),
            new_sha256: 'b'.repeat(64),
          },
        ],
        reason: 'bad config',
        source: 'snapshot',
        set: 'd'.repeat(64),
      };
    case 4:
      return {
        ts,
        event: 'checkpoint_created',
        checkpoint: `checkpoints/${ts.replace(/:/g, '-')}.tar.gz`,
        sha256: 'c'.repeat(64),
        bytes: 18_830_211 + index,
        files: 1200,
        created_by: 'pit-daemon',
        reason: 'periodic',
      };
    default:
      return { ts, event: 'heartbeat', agent, cycle: index, status: 'working' };
  }
}

const root = await fs.mkdtemp(join(tmpdir(), 'pit-read-events-bench-'));
try {
  const path = join(root, 'events.jsonl');
  log(`writing ${LINES.toLocaleString('en')} lines`);
  const out = createWriteStream(path);
  let batch = '';
  for (let index = 0; index < LINES - 1; index += 1) {
    batch += lineFor(index);
    if (batch.length > 256 * 1024) {
      if (!out.write(batch)) await once(out, 'drain');
      batch = '';
    }
  }
  out.write(`${batch}{"ts":"2026-11-23T00:00:00.000Z","event":"agent_de`);
  out.end();
  await once(out, 'finish');
  const bytes = (await fs.stat(path)).size;
  log(`${(bytes / MB).toFixed(1)} MB; reading in a child process`);
  const output = execFileSync(
    process.execPath,
    [
      '--conditions=@pit/source',
      '--import',
      'tsx',
      join(import.meta.dirname, 'read-events-child.ts'),
      path,
    ],
    {
      cwd: join(import.meta.dirname, '..'),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const result = JSON.parse(output.trim().split('\n').at(-1) as string) as {
    seconds: number;
    lines: number;
    ok: number;
    unknown: number;
    problems: number;
    floorRssBytes: number;
    peakRssBytes: number;
  };
  if (result.lines !== LINES || result.problems !== 1)
    throw new Error(
      `read ${result.lines} lines with ${result.problems} problems; expected ${LINES} and 1 (the torn last line)`,
    );
  const peakMb = result.peakRssBytes / MB;
  process.stdout.write(
    `BENCH_RESULT ${JSON.stringify({
      title: `readEvents over ${LINES.toLocaleString('en')} lines (${(bytes / MB).toFixed(0)} MB)`,
      rows: [
        { metric: 'read time', value: result.seconds, unit: 's' },
        { metric: 'throughput', value: Math.round(result.lines / result.seconds), unit: 'lines/s' },
        {
          metric: 'peak RSS of the reading process',
          value: Number(peakMb.toFixed(1)),
          unit: 'MB',
          target: '< 150 MB',
          ok: peakMb < 150,
        },
        {
          metric: 'RSS before reading (node + tsx + modules)',
          value: Number((result.floorRssBytes / MB).toFixed(1)),
          unit: 'MB',
        },
      ],
      notes: `${result.ok.toLocaleString('en')} events (${result.unknown.toLocaleString('en')} of a kind unknown to this version, kept), 1 torn last line reported.`,
    })}\n`,
  );
} finally {
  await fs.rm(root, { recursive: true, force: true });
}
