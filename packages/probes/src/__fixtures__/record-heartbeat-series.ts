/**
 * Records `heartbeat-series.json`: the heartbeats of a real agent process (heartbeat-agent.ts)
 * as an observer sees them, through normal work, a hang (SIGSTOP for 20 s, then SIGCONT)
 * and a death (SIGKILL). Re-record with:
 *   node --conditions=@pit/source --import tsx src/__fixtures__/record-heartbeat-series.ts
 * (from packages/probes; takes about three minutes).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { cellPaths, readHeartbeat } from '@pit/cell-spec';

const NORMAL_MS = 90_000;
const STOP_MS = 20_000;
const RESUMED_MS = 30_000;
const AFTER_KILL_MS = 10_000;

const cellDir = mkdtempSync(join(tmpdir(), 'pit-series-'));
const uuid = randomUUID();
const agent = 'recorder';
const paths = cellPaths(cellDir);
const here = fileURLToPath(new URL('.', import.meta.url));
const beats: { cycle: number; timestamp: number; seenAt: number }[] = [];
let lastCycle = -1;
let reading = Promise.resolve();

/** Reads the heartbeat; reads are serialised so that a slow read never records an older cycle after a newer one. */
function observe(): void {
  reading = reading.then(async () => {
    try {
      const heartbeat = await readHeartbeat(cellDir, agent);
      if (heartbeat.cycle > lastCycle) {
        lastCycle = heartbeat.cycle;
        beats.push({ cycle: heartbeat.cycle, timestamp: heartbeat.timestamp, seenAt: Date.now() });
      }
    } catch {
      // Not written yet.
    }
  });
}

const { mkdirSync } = await import('node:fs');
mkdirSync(paths.heartbeats, { recursive: true });
const watcher = watch(paths.heartbeats, observe);
const child = spawn(
  process.execPath,
  [
    '--conditions=@pit/source',
    '--import',
    'tsx',
    join(here, 'heartbeat-agent.ts'),
    cellDir,
    agent,
    uuid,
  ],
  { detached: true, stdio: 'inherit' },
);
const pid = child.pid as number;
const startedAt = Date.now();
process.stderr.write(`agent pid ${pid}; normal for ${NORMAL_MS} ms\n`);
await sleep(NORMAL_MS);
const stoppedAt = Date.now();
process.kill(-pid, 'SIGSTOP');
process.stderr.write('stopped\n');
await sleep(STOP_MS);
const resumedAt = Date.now();
process.kill(-pid, 'SIGCONT');
process.stderr.write('resumed\n');
await sleep(RESUMED_MS);
const killedAt = Date.now();
process.kill(-pid, 'SIGKILL');
process.stderr.write('killed\n');
await sleep(AFTER_KILL_MS);
watcher.close();
await reading;
const endedAt = Date.now();

const series = {
  description:
    'Heartbeats of a real agent process (heartbeat-agent.ts: uneven pbkdf2 work + 500 ms idle per cycle) as seen by an fs.watch observer on a 2-core machine: normal work, SIGSTOP (hang), SIGCONT, SIGKILL (death). Times in ms since the Unix epoch; `timestamp` is the heartbeat file field (unix seconds).',
  recordedWith: 'src/__fixtures__/record-heartbeat-series.ts',
  startedAt,
  stoppedAt,
  resumedAt,
  killedAt,
  endedAt,
  beats,
};
writeFileSync(join(here, 'heartbeat-series.json'), `${JSON.stringify(series, null, 1)}\n`);
rmSync(cellDir, { recursive: true, force: true });
process.stderr.write(`recorded ${beats.length} heartbeats\n`);
