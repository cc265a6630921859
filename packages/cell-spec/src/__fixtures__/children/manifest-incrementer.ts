// Applies <count> updates to one manifest, each adding the agent w<id>-<i>; prints "done".
// argv: <cellDir> <workerId> <count>
import { updateManifest } from '@pit/cell-spec';
import { waitForGo } from './gate.js';

const [cellDir, worker, countText] = process.argv.slice(2);
if (!cellDir || !worker || !countText)
  throw new Error('usage: manifest-incrementer <cellDir> <workerId> <count>');
await waitForGo();
for (let index = 0; index < Number(countText); index += 1) {
  await updateManifest(
    cellDir,
    (draft) => {
      draft.agents.push({
        name: `w${worker}-${index}`,
        role: 'worker',
        joined_at: new Date().toISOString(),
      });
    },
    { lockTimeoutMs: 60_000 },
  );
}
process.stdout.write('done\n');
