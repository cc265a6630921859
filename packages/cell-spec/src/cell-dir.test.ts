import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from './__fixtures__/helpers.js';
import { assertCellDir, ensureCellSubdir } from './cell-dir.js';

afterEach(removeTempDirs);

describe('assertCellDir', () => {
  it('accepts a real directory and refuses a file, a symlink and a missing path', async () => {
    const root = await makeTempDir();
    await mkdir(join(root, 'cell'));
    await writeFile(join(root, 'file'), 'x');
    await symlink(join(root, 'cell'), join(root, 'link'));
    await expect(assertCellDir(join(root, 'cell'))).resolves.toBeUndefined();
    await expect(assertCellDir(join(root, 'file'))).rejects.toMatchObject({
      code: 'CELL_NOT_A_CELL',
      message: expect.stringContaining('found a file'),
    });
    await expect(assertCellDir(join(root, 'link'))).rejects.toMatchObject({
      code: 'CELL_UNSAFE_PATH',
    });
    await expect(assertCellDir(join(root, 'missing'))).rejects.toMatchObject({
      code: 'CELL_NOT_FOUND',
    });
  });
});

describe('ensureCellSubdir', () => {
  it('creates missing directories one level at a time when asked', async () => {
    const cell = await makeTempDir();
    await expect(ensureCellSubdir(cell, ['.lazarus', 'heartbeats'])).rejects.toMatchObject({
      code: 'CELL_NOT_FOUND',
    });
    expect(await ensureCellSubdir(cell, ['.lazarus', 'heartbeats'], { create: true })).toBe(
      join(cell, '.lazarus', 'heartbeats'),
    );
  });

  it('refuses a symlink anywhere on the way, even one pointing inside the cell', async () => {
    const cell = await makeTempDir();
    await mkdir(join(cell, 'real'));
    await symlink(join(cell, 'real'), join(cell, '.lazarus'));
    await expect(
      ensureCellSubdir(cell, ['.lazarus', 'heartbeats'], { create: true }),
    ).rejects.toMatchObject({
      code: 'CELL_UNSAFE_PATH',
      message: expect.stringContaining('.lazarus is a symbolic link; refused'),
    });
  });

  it('refuses segments that would leave the cell', async () => {
    const cell = await makeTempDir();
    for (const segment of ['..', '.', '', 'a/b']) {
      await expect(ensureCellSubdir(cell, [segment], { create: true })).rejects.toMatchObject({
        code: 'CELL_BAD_NAME',
      });
    }
  });
});
