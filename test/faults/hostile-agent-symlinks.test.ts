/**
 * Writes outside the cell (#13 point 4): a real agent replaces its cell's `logs/`,
 * `checkpoints/`, `bus/` and `.lazarus/resume` with symlinks to a directory outside the cell,
 * then dies. The daemon's restart opens every cell path beneath the cell without following a
 * link: nothing outside is created or changed, and the daemon reports the refusal naming the
 * cell's path and the link. (Level 1: the point is the daemon's own path handling; at level 2
 * the cell is writable to the agent in the same way.)
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import { cleanup, makeFleet, MARKER_FLAG, startDaemon, stopDaemon } from './harness.js';

afterEach(cleanup);

/** The attacker: swaps the cell's directories for links to `outside` (once), then exits 1. */
const attack = (outside: string) =>
  [
    "const fs = require('node:fs');",
    `const outside = ${JSON.stringify(outside)};`,
    "for (const name of ['logs', 'checkpoints', 'bus', '.lazarus/resume']) {",
    "  const path = '../' + name;",
    '  try { if (fs.lstatSync(path).isSymbolicLink()) continue; } catch {}',
    "  try { fs.renameSync(path, path + '.moved'); } catch {}",
    '  fs.symlinkSync(outside, path);',
    '}',
    'process.exit(1);',
  ].join(' ');

describe('an agent that replaces cell directories with symlinks out of the cell', () => {
  it('gets nothing written outside, and the daemon reports the refused path', async () => {
    const base = await makeFleet({ agents: ['mole'], heartbeat: false });
    const outside = join(base.base, 'outside');
    await fs.mkdir(outside);
    await fs.writeFile(
      base.configPath,
      base.lines
        .join('\n')
        .replace(
          /^argv = .*$/m,
          `argv = ${JSON.stringify([process.execPath, '-e', attack(outside), '--', MARKER_FLAG, `${base.marker}:mole`])}`,
        ),
      { mode: 0o600 },
    );
    const daemon = await startDaemon(base.configPath);
    try {
      const link = join(base.cellDir, 'logs');
      await waitFor(
        () => daemon.output().includes(`${link} is a symbolic link; refused`),
        30_000,
        'the daemon to refuse the linked logs/',
      );
      // It keeps trying (and refusing) rather than giving up or crashing; give it a few rounds.
      await waitFor(
        () => daemon.output().split(`${link} is a symbolic link`).length > 2,
        30_000,
        'more refusals',
      );
      expect(daemon.exitCode).toBeNull();
      expect(daemon.output()).toContain(base.uuid);
      expect(await fs.readdir(outside)).toEqual([]);
    } finally {
      await stopDaemon(daemon);
    }
    expect(await fs.readdir(outside)).toEqual([]);
  });
});
