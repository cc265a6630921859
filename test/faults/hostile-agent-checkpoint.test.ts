/**
 * Planted checkpoint (#13 point 6): a real agent writes a valid `2099-…` archive and manifest
 * into its cell's `checkpoints/` (a workspace holding a PLANTED file). With `restore_checkpoint`
 * on, the revive after a SIGKILL restores the daemon's own newest checkpoint (kept in the state
 * directory), never the planted one, and the daemon reports the planted files.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import {
  cellEvents,
  cleanup,
  liveAgents,
  makeFleet,
  MARKER_FLAG,
  startDaemon,
  stopDaemon,
} from './harness.js';

afterEach(cleanup);

const PLANTED = '2099-01-01T00-00-00.000Z';

/** The attacker: plants a valid future-named checkpoint, then idles. */
const plant = [
  "const fs = require('node:fs'); const crypto = require('node:crypto'); const cp = require('node:child_process');",
  `const name = '${PLANTED}';`,
  "if (!fs.existsSync('../checkpoints/' + name + '.json')) {",
  "  fs.mkdirSync('/tmp/plant-' + process.pid, { recursive: true }); fs.writeFileSync('/tmp/plant-' + process.pid + '/PLANTED', 'x');",
  "  cp.execFileSync('tar', ['czf', '../checkpoints/' + name + '.tar.gz', '-C', '/tmp/plant-' + process.pid, '.']);",
  "  const data = fs.readFileSync('../checkpoints/' + name + '.tar.gz');",
  "  fs.writeFileSync('../checkpoints/' + name + '.json', JSON.stringify({ ts: '2099-01-01T00:00:00.000Z', name, sha256: crypto.createHash('sha256').update(data).digest('hex'), bytes: data.length, files: 1, entries: 2, unpacked_bytes: 1, created_by: 'pit-daemon', reason: 'periodic', skipped: [] }));",
  '}',
  'setInterval(() => {}, 1000);',
].join(' ');

describe('an agent that plants a future-named checkpoint in its cell', () => {
  it('is not restored: the daemon restores its own newest checkpoint and reports the planted one', async () => {
    const fleet = await makeFleet({
      agents: ['mole'],
      heartbeat: false,
      agentExtra: { mole: 'restore_checkpoint = true' },
    });
    await fs.writeFile(
      fleet.configPath,
      fleet.lines
        .join('\n')
        .replace('[checkpoints]\ninterval_s = 0', '[checkpoints]\ninterval_s = 1')
        .replace(
          /^argv = .*$/m,
          `argv = ${JSON.stringify([process.execPath, '-e', plant, '--', MARKER_FLAG, `${fleet.marker}:mole`])}`,
        ),
      { mode: 0o600 },
    );
    const daemon = await startDaemon(fleet.configPath);
    try {
      const store = join(fleet.stateDir, 'checkpoints', fleet.uuid);
      await waitFor(
        async () =>
          (
            await fs.readdir(join(fleet.cellDir, 'checkpoints')).catch(() => [] as string[])
          ).includes(`${PLANTED}.json`) &&
          (await fs.readdir(store).catch(() => [] as string[])).some((file) =>
            file.endsWith('.json'),
          ),
        30_000,
        'the planted checkpoint and one of the daemon’s',
      );
      const first = await waitFor(
        async () => (await liveAgents(fleet.marker)).get('mole')?.[0],
        30_000,
        'mole to run',
      );
      process.kill(first, 'SIGKILL');
      const restored = await waitFor(
        async () =>
          (await cellEvents(fleet.cellDir)).find((event) => event.event === 'checkpoint_restored'),
        30_000,
        'the restore before the revive',
      );
      expect((restored as unknown as { checkpoint: string }).checkpoint).not.toBe(PLANTED);
      await expect(fs.access(join(fleet.cellDir, 'workspace', 'PLANTED'))).rejects.toThrow();
      expect(daemon.output()).toMatch(/checkpoints\/ are ignored/);
      expect(daemon.output()).toContain(fleet.uuid);
    } finally {
      await stopDaemon(daemon);
    }
  });
});
