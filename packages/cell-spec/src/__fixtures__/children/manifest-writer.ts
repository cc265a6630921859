// Rewrites a cell's manifest in a loop (updateManifest), printing "rev N" after each completed update.
// argv: <cellDir>
import { updateManifest } from '@pit/cell-spec';
import { missionFor } from './content.js';
import { waitForGo } from './gate.js';

const [cellDir] = process.argv.slice(2);
if (!cellDir) throw new Error('usage: manifest-writer <cellDir>');
await waitForGo();
for (;;) {
  const manifest = await updateManifest(
    cellDir,
    (draft) => {
      draft.mission = missionFor(draft.revision + 1);
    },
    { lockTimeoutMs: 20_000 },
  );
  process.stdout.write(`rev ${manifest.revision}\n`);
}
