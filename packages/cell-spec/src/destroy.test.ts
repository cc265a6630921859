import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from './__fixtures__/helpers.js';
import { destroyCell } from './destroy.js';
import { discoverCells } from './discover.js';
import { provisionCell } from './provision.js';
import { transitionCell } from './transition.js';

afterEach(removeTempDirs);

async function archivedCell() {
  const base = await makeTempDir();
  const root = join(base, 'missions');
  const { dir, manifest } = await provisionCell(root, {
    mission: 'to destroy',
    created_by: 'ops',
    agents: [{ name: 'forge', role: 'lead' }],
  });
  await transitionCell(dir, 'archived');
  return { base, root, dir, uuid: manifest.uuid };
}

describe('destroyCell', () => {
  it('removes an archived cell and leaves the root clean', async () => {
    const { root, dir, uuid } = await archivedCell();
    await mkdir(join(dir, 'workspace/src/deep/er'), { recursive: true });
    await writeFile(join(dir, 'workspace/src/deep/er/main.rs'), 'fn main() {}');
    await destroyCell(root, uuid);
    expect(existsSync(dir)).toBe(false);
    expect(await readdir(root)).toEqual([]);
  });

  it('unlinks symlinks inside that point outside, never following them', async () => {
    const { base, root, dir, uuid } = await archivedCell();
    const outside = join(base, 'precious');
    await mkdir(join(outside, 'sub'), { recursive: true });
    await writeFile(join(outside, 'sub/data.txt'), 'keep');
    await writeFile(join(base, 'shadow'), 'root:$6$x:1:0:99999:7:::\n');
    await symlink(outside, join(dir, 'workspace/escape-dir'));
    await symlink(join(base, 'shadow'), join(dir, '.lazarus/heartbeats/forge.json'));
    await symlink('/etc', join(dir, 'logs/etc'));
    await destroyCell(root, uuid);
    expect(existsSync(dir)).toBe(false);
    expect(await readFile(join(outside, 'sub/data.txt'), 'utf8')).toBe('keep');
    expect(await readFile(join(base, 'shadow'), 'utf8')).toBe('root:$6$x:1:0:99999:7:::\n');
    expect(existsSync('/etc/passwd')).toBe(true);
  });

  it('refuses a cell that is not archived, naming both states, unless forced', async () => {
    const base = await makeTempDir();
    const { dir, manifest } = await provisionCell(base, { mission: 'live', created_by: 'ops' });
    await expect(destroyCell(base, manifest.uuid)).rejects.toMatchObject({
      code: 'CELL_ILLEGAL_TRANSITION',
      message: expect.stringContaining('cannot go from active to destroyed'),
    });
    expect(existsSync(dir)).toBe(true);
    await destroyCell(base, manifest.uuid, { force: true });
    expect(existsSync(dir)).toBe(false);
  });

  it('finishes a cell already marked destroyed', async () => {
    const { root, dir, uuid } = await archivedCell();
    await transitionCell(dir, 'destroyed');
    await destroyCell(root, uuid);
    expect(existsSync(dir)).toBe(false);
  });

  it('refuses a cell dir that is a symlink, and leaves its target alone', async () => {
    const { base, root, dir, uuid } = await archivedCell();
    const elsewhere = join(base, 'elsewhere');
    const { rename } = await import('node:fs/promises');
    await rename(dir, elsewhere);
    await symlink(elsewhere, join(root, uuid));
    await expect(destroyCell(root, uuid)).rejects.toMatchObject({
      code: 'CELL_NOT_A_CELL',
      message: expect.stringContaining('symbolic link'),
    });
    expect(existsSync(join(elsewhere, 'cell.json'))).toBe(true);
  });

  it('refuses a cell dir that is a file, a directory without a manifest, and a traversal uuid', async () => {
    const root = await makeTempDir();
    const uuid = '3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b';
    await writeFile(join(root, uuid), 'x');
    await expect(destroyCell(root, uuid)).rejects.toMatchObject({
      code: 'CELL_NOT_A_CELL',
      message: expect.stringContaining('a file'),
    });
    const other = '4f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b';
    await mkdir(join(root, other));
    await writeFile(join(root, other, 'notes.txt'), 'not a cell');
    await expect(destroyCell(root, other)).rejects.toMatchObject({
      code: 'CELL_NOT_A_CELL',
      message: expect.stringContaining('not a valid cell'),
    });
    expect(existsSync(join(root, other, 'notes.txt'))).toBe(true);
    await expect(destroyCell(root, '../../etc')).rejects.toMatchObject({ code: 'CELL_BAD_NAME' });
    await expect(destroyCell(root, '5f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b')).rejects.toMatchObject({
      code: 'CELL_NOT_FOUND',
    });
  });

  it('is not blocked by the leftover of a destroy that crashed', async () => {
    const { root, uuid } = await archivedCell();
    await mkdir(join(root, `.destroying-${uuid}.dead`, 'workspace'), { recursive: true });
    await destroyCell(root, uuid);
    expect((await discoverCells(root)).supervised).toEqual([]);
  });
});
