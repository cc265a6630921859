import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { makeCell } from '../test/helpers.js';
import { handOverCell } from './sandbox-owner.js';

afterEach(cleanup);

const USER = { uid: 65534, gid: 65534 };
const asRoot = process.getuid?.() === 0;

describe('handOverCell', () => {
  it.skipIf(!asRoot)(
    'hands workspace/ and heartbeats to the uid, never through a link an agent planted, and leaves the daemon’s files and other links’ files alone',
    async () => {
      const cell = await makeCell([{ name: 'forge' }]);
      const outside = await tempDir('pit-owner-outside-');
      await fs.writeFile(join(outside, 'root-only'), 'secret', { mode: 0o600 });
      await fs.mkdir(join(outside, 'dir'));
      await fs.writeFile(join(outside, 'dir', 'inner'), 'x');
      const workspace = join(cell.dir, 'workspace');
      await fs.mkdir(join(workspace, 'a', 'b'), { recursive: true });
      await fs.writeFile(join(workspace, 'a', 'b', 'restored.txt'), 'restored');
      await fs.writeFile(join(workspace, 'top.txt'), 'top', { mode: 0o600 });
      // Planted: a link to a root-only file, a link to a directory outside, a hard link out.
      await fs.symlink(join(outside, 'root-only'), join(workspace, 'link-to-file'));
      await fs.symlink(join(outside, 'dir'), join(workspace, 'a', 'link-to-dir'));
      await fs.writeFile(join(outside, 'hard'), 'hard');
      await fs.link(join(outside, 'hard'), join(workspace, 'hard-link'));
      await fs.mkdir(join(cell.dir, '.lazarus', 'heartbeats'), { recursive: true });
      await fs.writeFile(join(cell.dir, '.lazarus', 'heartbeats', 'forge.json'), '{}');

      const handed = await handOverCell(cell.dir, USER);
      expect(handed.deep).toBe(true);
      expect(handed.skipped).toEqual([join(workspace, 'hard-link')]);
      for (const path of [
        workspace,
        join(workspace, 'a'),
        join(workspace, 'a', 'b'),
        join(workspace, 'a', 'b', 'restored.txt'),
        join(workspace, 'top.txt'),
        join(cell.dir, '.lazarus', 'heartbeats'),
        join(cell.dir, '.lazarus', 'heartbeats', 'forge.json'),
      ])
        expect((await fs.lstat(path)).uid, path).toBe(USER.uid);
      // Nothing outside the workspace changed owner, nor any of the daemon's files.
      for (const path of [
        join(outside, 'root-only'),
        join(outside, 'dir'),
        join(outside, 'dir', 'inner'),
        join(outside, 'hard'),
        join(cell.dir, 'cell.json'),
        join(cell.dir, '.lazarus'),
        join(cell.dir, 'logs'),
      ])
        expect((await fs.lstat(path)).uid, path).toBe(0);

      // Handed over: the next start changes nothing and walks no deeper than the top.
      await fs.writeFile(join(workspace, 'a', 'later-by-root.txt'), 'x');
      const again = await handOverCell(cell.dir, USER);
      expect(again).toMatchObject({ deep: false, changed: 0 });
      expect((await fs.lstat(join(workspace, 'a', 'later-by-root.txt'))).uid).toBe(0);
      // Named files (config and provider files) at every start, never through a link.
      await fs.writeFile(join(workspace, 'a', 'config.json'), '{}');
      const named = await handOverCell(cell.dir, USER, {
        files: ['a/config.json', 'missing/config.json', 'link-to-file', 'a/link-to-dir/inner'],
      });
      expect(named).toMatchObject({ deep: false, changed: 1 });
      expect((await fs.lstat(join(workspace, 'a', 'config.json'))).uid).toBe(USER.uid);
      expect((await fs.lstat(join(outside, 'root-only'))).uid).toBe(0);
      expect((await fs.lstat(join(outside, 'dir', 'inner'))).uid).toBe(0);
      // Asked to (a rollback rewrote files): the whole tree again.
      const deep = await handOverCell(cell.dir, USER, { deep: true });
      expect(deep).toMatchObject({ deep: true, changed: 1 });
      expect((await fs.lstat(join(workspace, 'a', 'later-by-root.txt'))).uid).toBe(USER.uid);
    },
  );

  it.skipIf(!asRoot)('refuses a workspace that is a link, naming it', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const outside = await tempDir('pit-owner-outside-');
    await fs.rm(join(cell.dir, 'workspace'), { recursive: true });
    await fs.symlink(outside, join(cell.dir, 'workspace'));
    await fs.mkdir(join(cell.dir, '.lazarus', 'heartbeats'), { recursive: true });
    await expect(handOverCell(cell.dir, USER)).rejects.toThrow(/workspace/);
    expect((await fs.lstat(outside)).uid).toBe(0);
  });
});
