import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { assertCellUuid } from './agent-name.js';
import { CellError, toCellError } from './errors.js';
import { readManifest } from './manifest.js';

/** Prefix of the directory a cell is renamed to while it is being removed (`.destroying-<uuid>.<random>`). */
export const DESTROYING_PREFIX = '.destroying-';

/** Options of {@link destroyCell}. */
export interface DestroyCellOptions {
  /** Destroy a cell that is not archived yet. @default false */
  force?: boolean;
}

/**
 * Removes an archived cell directory and everything in it — and nothing outside it: the
 * cell is first renamed to a hidden `.destroying-*` name (so discovery never sees a half-
 * deleted cell), then the tree is walked without following links: a symlink inside, even one
 * pointing outside the cell, is unlinked, never followed. The cell directory must be a real
 * directory directly under `root` with a valid manifest naming it. A cell already marked
 * `destroyed` (by {@link transitionCell}) is removed too.
 * @throws {CellError} CELL_BAD_NAME for a uuid that is not one; CELL_NOT_FOUND;
 *   CELL_NOT_A_CELL for a path that is not a cell (a file, a symlink, a directory without a
 *   valid manifest); CELL_ILLEGAL_TRANSITION when the cell is not archived (unless `force`);
 *   CELL_IO.
 * @example
 * await transitionCell(dir, 'archived');
 * await destroyCell('/var/missions', uuid);
 */
export async function destroyCell(
  root: string,
  uuid: string,
  options: DestroyCellOptions = {},
): Promise<void> {
  assertCellUuid(uuid);
  const dir = join(root, uuid);
  const stat = await fs.lstat(dir).catch((error) => {
    throw toCellError(error, dir, 'destroy');
  });
  if (!stat.isDirectory())
    throw new CellError(
      'CELL_NOT_A_CELL',
      `${dir}: not a cell directory (it is ${stat.isSymbolicLink() ? 'a symbolic link' : 'a file'}); refused`,
    );
  const realRoot = await fs.realpath(root);
  const realDir = await fs.realpath(dir);
  if (dirname(realDir) !== realRoot || basename(realDir) !== uuid)
    throw new CellError('CELL_NOT_A_CELL', `${dir}: resolves outside ${root}; refused`);
  let manifest;
  try {
    manifest = await readManifest(dir);
  } catch (error) {
    throw new CellError(
      'CELL_NOT_A_CELL',
      `${dir}: not a valid cell (${(error as Error).message}); refused`,
      { cause: error },
    );
  }
  if (manifest.uuid !== uuid)
    throw new CellError(
      'CELL_NOT_A_CELL',
      `${dir}/cell.json: uuid: ${manifest.uuid} does not match the directory; refused`,
    );
  if (manifest.status !== 'archived' && manifest.status !== 'destroyed' && !options.force) {
    throw new CellError(
      'CELL_ILLEGAL_TRANSITION',
      `${dir}: cannot go from ${manifest.status} to destroyed (archive it first, or force)`,
    );
  }
  // Rename out of the way first so that discovery never sees a half-deleted cell.
  const doomed = join(realRoot, `${DESTROYING_PREFIX}${uuid}.${randomBytes(4).toString('hex')}`);
  try {
    await fs.rename(realDir, doomed);
    await removeTree(resolve(doomed));
  } catch (error) {
    throw toCellError(error, dir, 'destroy');
  }
}

/** Deletes a directory tree without following any symlink. */
async function removeTree(dir: string): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    const path = join(dir, entry.name);
    // lstat again right before descending: readdir's type may be stale, and a link is never entered.
    if (entry.isDirectory() && (await fs.lstat(path)).isDirectory()) await removeTree(path);
    else await fs.unlink(path);
  }
  await fs.rmdir(dir);
}
