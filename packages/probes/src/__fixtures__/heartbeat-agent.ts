/**
 * A minimal agent used to record `heartbeat-series.json`: each cycle does a variable amount
 * of real CPU work (pbkdf2), idles 500 ms and writes its heartbeat with @pit/cell-spec.
 * Run by `record-heartbeat-series.ts`; argv: <cellDir> <agent> <cellUuid>.
 */
import { pbkdf2Sync } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeHeartbeat } from '@pit/cell-spec';

const [cellDir, agent, cellUuid] = process.argv.slice(2) as [string, string, string];
let cycle = 0;
for (;;) {
  // Deterministic, uneven work: 0 to 12 units of pbkdf2, a few ms to a few hundred ms each cycle.
  const units = (cycle * 7919) % 13;
  pbkdf2Sync('work', 'salt', 20_000 * units + 1, 32, 'sha256');
  await sleep(500);
  cycle += 1;
  await writeHeartbeat(cellDir, { agent, cell_uuid: cellUuid, cycle, status: 'working' });
}
