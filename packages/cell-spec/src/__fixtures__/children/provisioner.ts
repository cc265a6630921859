// Provisions cells in a loop under one root, printing "cell <uuid>" after each one is in place.
// argv: <root>
import { provisionCell } from '@pit/cell-spec';
import { waitForGo } from './gate.js';

const [root] = process.argv.slice(2);
if (!root) throw new Error('usage: provisioner <root>');
await waitForGo();
for (let index = 0; ; index += 1) {
  const { manifest } = await provisionCell(root, {
    mission: `crash test ${index}`,
    created_by: 'provisioner',
    agents: [
      { name: 'forge', role: 'lead' },
      { name: 'allegro', role: 'write' },
    ],
  });
  process.stdout.write(`cell ${manifest.uuid}\n`);
}
