// Writes an agent's heartbeat in a loop (writeHeartbeat), printing "cycle N" after each completed write.
// argv: <cellDir> <cellUuid>; stdin: "go <firstCycle>".
import { writeHeartbeat } from '@pit/cell-spec';
import { heartbeatPaddingFor } from './content.js';
import { waitForGo } from './gate.js';

const [cellDir, cellUuid] = process.argv.slice(2);
if (!cellDir || !cellUuid) throw new Error('usage: heartbeat-writer <cellDir> <cellUuid>');
const first = await waitForGo();
for (let cycle = Number(first); ; cycle += 1) {
  await writeHeartbeat(cellDir, {
    agent: 'forge',
    cell_uuid: cellUuid,
    cycle,
    status: `cycle ${cycle}`,
    padding: heartbeatPaddingFor(cycle),
  });
  process.stdout.write(`cycle ${cycle}\n`);
}
