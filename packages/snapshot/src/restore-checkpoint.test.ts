import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { cellPaths, provisionCell } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildArchive, plantCheckpoint, type RawEntry } from '../test/archives.js';
import { makeTempDir, mountTmpfs, readTree } from '../test/helpers.js';
import { createCheckpoint, listCheckpoints } from './checkpoint.js';
import type { SnapshotError } from './errors.js';
import { recoverWorkspace, restoreCheckpoint } from './restore-checkpoint.js';

let root: string;
let cell: string;
let workspace: string;
let before: Awaited<ReturnType<typeof readTree>>;
const NAME = '2026-11-22T17-43-00.123Z';

async function makeCell(cellsRoot: string): Promise<void> {
  cell = (await provisionCell(cellsRoot, { mission: 'restore', created_by: 'test' })).dir;
  workspace = cellPaths(cell).workspace;
  await fs.writeFile(join(workspace, 'work.txt'), 'the agents’ work\n');
  await fs.mkdir(join(workspace, 'sub'));
  before = await readTree(workspace);
}

beforeEach(async () => {
  root = await makeTempDir();
  await makeCell(join(root, 'missions'));
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** Everything below `root` except the cell's workspace and checkpoints: must not change. */
async function outside(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const name of (await fs.readdir(dir)).sort()) {
      const path = join(dir, name);
      if (
        path === workspace ||
        path === cellPaths(cell).checkpoints ||
        path === cellPaths(cell).logs
      )
        continue;
      out.push(path);
      if ((await fs.lstat(path)).isDirectory()) await walk(path);
    }
  };
  await walk(root);
  return out;
}

async function expectRefused(
  entries: RawEntry[],
  code: string,
  options: { maxEntries?: number; maxBytes?: number } = {},
): Promise<SnapshotError> {
  await plantCheckpoint(cell, NAME, buildArchive(entries));
  const tree = await outside();
  const error = (await restoreCheckpoint(cell, { checkpoint: NAME, ...options }).catch(
    (caught: unknown) => caught,
  )) as SnapshotError;
  expect(error.code).toBe(code);
  expect(await readTree(workspace)).toEqual(before);
  expect(await outside()).toEqual(tree);
  return error;
}

describe('restoreCheckpoint with a hostile archive', () => {
  it('refuses ../../evil and writes nothing outside the workspace', async () => {
    const error = await expectRefused(
      [
        { path: 'ok.txt', data: Buffer.from('fine') },
        { path: '../../evil', data: Buffer.from('pwned') },
      ],
      'SNAPSHOT_UNSAFE_PATH',
    );
    expect(error.message).toContain('../../evil');
    for (const base of [workspace, cell, join(cell, '.workspace-restore-x')])
      await expect(fs.access(resolve(base, '../../evil'))).rejects.toThrow();
  });

  it('refuses an absolute path', async () => {
    const target = join(root, 'abs-evil');
    const error = await expectRefused(
      [{ path: target, data: Buffer.from('pwned') }],
      'SNAPSHOT_UNSAFE_PATH',
    );
    expect(error.message).toContain('absolute');
    await expect(fs.access(target)).rejects.toThrow();
  });

  it('refuses a symlink that escapes, and a file written through it', async () => {
    const escape = join(root, 'escape-target');
    await fs.mkdir(escape);
    await expectRefused(
      [
        { path: 'link', type: 'SymbolicLink', linkpath: '../../../escape-target' },
        { path: 'link/evil', data: Buffer.from('pwned') },
      ],
      'SNAPSHOT_UNSAFE_PATH',
    );
    await expectRefused(
      [
        { path: 'link', type: 'SymbolicLink', linkpath: escape },
        { path: 'link/evil', data: Buffer.from('pwned') },
      ],
      'SNAPSHOT_UNSAFE_PATH',
    );
    expect(await fs.readdir(escape)).toEqual([]);
  });

  it('refuses writing through a symlink even when it points inside', async () => {
    await expectRefused(
      [
        { path: 'sub', type: 'Directory' },
        { path: 'inner', type: 'SymbolicLink', linkpath: 'sub' },
        { path: 'inner/x', data: Buffer.from('x') },
      ],
      'SNAPSHOT_UNSAFE_PATH',
    );
  });

  it('refuses a hard link out of the workspace, devices and FIFOs', async () => {
    await expectRefused(
      [{ path: 'passwd', type: 'Link', linkpath: '../../../etc/passwd' }],
      'SNAPSHOT_UNSAFE_PATH',
    );
    await expectRefused(
      [{ path: 'passwd', type: 'Link', linkpath: '/etc/passwd' }],
      'SNAPSHOT_UNSAFE_PATH',
    );
    await expectRefused([{ path: 'null', type: 'CharacterDevice' }], 'SNAPSHOT_UNSAFE_PATH');
    await expectRefused([{ path: 'pipe', type: 'FIFO' }], 'SNAPSHOT_UNSAFE_PATH');
  });

  it('refuses a tar bomb by entry count and by unpacked size before writing it', async () => {
    const many = Array.from({ length: 50 }, (_, i): RawEntry => ({
      path: `f${i}`,
      data: Buffer.from('x'),
    }));
    const count = await expectRefused(many, 'SNAPSHOT_TOO_LARGE', { maxEntries: 10 });
    expect(count.message).toContain('10 entries');
    const big = await expectRefused(
      [{ path: 'zeros', data: Buffer.alloc(8 * 1024 * 1024) }],
      'SNAPSHOT_TOO_LARGE',
      { maxBytes: 1024 * 1024 },
    );
    expect(big.message).toContain('tar bomb');
  });
});

describe('restoreCheckpoint with a damaged archive', () => {
  async function realCheckpoint(): Promise<{ archive: string; bytes: Buffer }> {
    await fs.writeFile(join(workspace, 'data.bin'), randomBytes(256 * 1024));
    const checkpoint = await createCheckpoint(cell, { createdBy: 'test' });
    await fs.writeFile(join(workspace, 'data.bin'), 'changed since');
    before = await readTree(workspace);
    return { archive: checkpoint.archive, bytes: await fs.readFile(checkpoint.archive) };
  }

  it('refuses a truncated archive (size and hash differ from the manifest)', async () => {
    const { archive, bytes } = await realCheckpoint();
    await fs.writeFile(archive, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const error = (await restoreCheckpoint(cell).catch(
      (caught: unknown) => caught,
    )) as SnapshotError;
    expect(error.code).toBe('SNAPSHOT_CORRUPT');
    expect(error.message).toContain('truncated');
    expect(await readTree(workspace)).toEqual(before);
  });

  it('refuses a tampered archive (same size, different hash)', async () => {
    const { archive, bytes } = await realCheckpoint();
    const tampered = Buffer.from(bytes);
    const middle = Math.floor(tampered.length / 2);
    tampered.writeUInt8(tampered.readUInt8(middle) ^ 0xff, middle);
    await fs.writeFile(archive, tampered);
    const error = (await restoreCheckpoint(cell).catch(
      (caught: unknown) => caught,
    )) as SnapshotError;
    expect(error.code).toBe('SNAPSHOT_CORRUPT');
    expect(error.message).toContain('does not match');
    expect(await readTree(workspace)).toEqual(before);
  });

  it('refuses a truncated archive whose manifest was rewritten to match, once extraction hits the cut', async () => {
    const { bytes } = await realCheckpoint();
    await plantCheckpoint(cell, NAME, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const error = (await restoreCheckpoint(cell, NAME).catch(
      (caught: unknown) => caught,
    )) as SnapshotError;
    expect(error.code).toBe('SNAPSHOT_CORRUPT');
    expect(await readTree(workspace)).toEqual(before);
    expect((await fs.readdir(cell)).filter((name) => name.startsWith('.workspace-'))).toEqual([]);
  });
});

describe('restoreCheckpoint on a full disk', () => {
  let mount: { dir: string; unmount: () => Promise<void> } | undefined;
  afterEach(async () => {
    await mount?.unmount();
    mount = undefined;
  });

  it('keeps the workspace and earlier checkpoints when the disk fills mid-restore or mid-checkpoint', async () => {
    mount = await mountTmpfs(1700 * 1024);
    await makeCell(mount.dir);
    await fs.writeFile(join(workspace, 'big.bin'), randomBytes(700 * 1024));
    const checkpoint = await createCheckpoint(cell, { createdBy: 'test' });
    await fs.writeFile(join(workspace, 'big.bin'), randomBytes(500 * 1024));
    before = await readTree(workspace);
    // Restoring needs room for a second copy of the workspace: there is none.
    const error = (await restoreCheckpoint(cell).catch(
      (caught: unknown) => caught,
    )) as SnapshotError;
    expect(error.code).toBe('SNAPSHOT_IO');
    expect(error.retryable).toBe(true);
    expect(await readTree(workspace)).toEqual(before);
    expect((await fs.readdir(cell)).filter((name) => name.startsWith('.workspace-'))).toEqual([]);
    // A checkpoint that does not fit is not published; the earlier one is intact.
    await fs.writeFile(join(workspace, 'more.bin'), randomBytes(300 * 1024));
    const full = (await createCheckpoint(cell, { createdBy: 'test' }).catch(
      (caught: unknown) => caught,
    )) as SnapshotError;
    expect(full.code).toBe('SNAPSHOT_IO');
    const list = await listCheckpoints(cell);
    expect(list.checkpoints.map((item) => item.name)).toEqual([checkpoint.name]);
    expect(
      (await fs.readdir(cellPaths(cell).checkpoints)).filter((name) => name.endsWith('.tmp')),
    ).toEqual([]);
    // With room again, the restore goes through.
    await fs.rm(join(workspace, 'more.bin'));
    await fs.rm(join(workspace, 'big.bin'));
    await restoreCheckpoint(cell);
    expect((await fs.stat(join(workspace, 'big.bin'))).size).toBe(700 * 1024);
  });
});

describe('recoverWorkspace', () => {
  it('moves the previous workspace back when a restore died between the two renames', async () => {
    const previous = join(cell, '.workspace-previous-1234-abcdefabcdef');
    const staging = join(cell, '.workspace-restore-1234-abcdefabcdef');
    await fs.mkdir(staging);
    await fs.writeFile(join(staging, 'half'), 'extracted');
    await fs.rename(workspace, previous);
    await recoverWorkspace(cell);
    expect(await readTree(workspace)).toEqual(before);
    expect((await fs.readdir(cell)).filter((name) => name.startsWith('.workspace-'))).toEqual([]);
  });
});

describe('restoreCheckpoint over a planted link', () => {
  it('replaces a workspace/ an agent swapped for a link out of the cell, leaving the link’s target untouched', async () => {
    await createCheckpoint(cell, { createdBy: 'test' });
    const elsewhere = join(root, 'elsewhere');
    await fs.mkdir(elsewhere);
    await fs.writeFile(join(elsewhere, 'precious.txt'), 'not the cell’s\n');
    const target = await readTree(elsewhere);
    await fs.rm(workspace, { recursive: true });
    await fs.symlink(elsewhere, workspace);
    await restoreCheckpoint(cell);
    // The workspace is a real directory again, holding the checkpoint; the link went, not its target.
    expect((await fs.lstat(workspace)).isDirectory()).toBe(true);
    expect(await readTree(workspace)).toEqual(before);
    expect(await readTree(elsewhere)).toEqual(target);
    expect((await fs.readdir(cell)).filter((name) => name.startsWith('.workspace-'))).toEqual([]);
  });

  it('puts back no previous workspace through a link when recovering an interrupted restore', async () => {
    const elsewhere = join(root, 'elsewhere');
    await fs.mkdir(elsewhere);
    await fs.writeFile(join(elsewhere, 'precious.txt'), 'not the cell’s\n');
    const target = await readTree(elsewhere);
    // An agent plants a "previous workspace" that is a link, and removes the workspace.
    await fs.rm(workspace, { recursive: true });
    await fs.symlink(elsewhere, join(cell, '.workspace-previous-1-aaaaaaaaaaaa'));
    await recoverWorkspace(cell).catch(() => undefined);
    expect(await readTree(elsewhere)).toEqual(target);
    const stat = await fs.lstat(workspace).catch(() => undefined);
    expect(stat?.isSymbolicLink() ?? false).toBe(false);
  });
});
