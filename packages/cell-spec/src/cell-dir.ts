import { promises as fs, type Stats } from 'node:fs';
import { join } from 'node:path';
import { openDirectoryBeneath } from './beneath.js';
import { CellError, PitError, toCellError } from './errors.js';

function describe(stat: Stats): string {
  if (stat.isSymbolicLink()) return 'a symbolic link';
  if (stat.isFile()) return 'a file';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  return 'a special file';
}

/**
 * Checks that `cellDir` is a real directory: not a symbolic link (a cell is never reached
 * through a link) and not a file.
 * @throws {CellError} CELL_NOT_FOUND when it does not exist; CELL_UNSAFE_PATH for a symbolic
 *   link; CELL_NOT_A_CELL for a file or anything else that is not a directory.
 */
export async function assertCellDir(cellDir: string): Promise<void> {
  let stat: Stats;
  try {
    stat = await fs.lstat(cellDir);
  } catch (error) {
    throw toCellError(error, cellDir, 'open cell');
  }
  if (stat.isSymbolicLink()) {
    throw new CellError(
      'CELL_UNSAFE_PATH',
      `${cellDir}: expected a cell directory, found a symbolic link; cells are never reached through links`,
    );
  }
  if (!stat.isDirectory())
    throw new CellError(
      'CELL_NOT_A_CELL',
      `${cellDir}: expected a cell directory, found ${describe(stat)}`,
    );
}

/** Options of {@link ensureCellSubdir}. */
export interface EnsureCellSubdirOptions {
  /** Create missing directories (mode 0o755). @default false */
  create?: boolean;
}

/**
 * Returns `join(cellDir, ...segments)` after checking that the cell directory and every
 * directory from it down to the result are real directories, so that a file written there
 * stays inside the cell: a symbolic link anywhere on the way (`.lazarus -> /etc`) is refused,
 * never followed. Missing directories are created one level at a time when `create` is set.
 * A directory swapped for a link after the check is not caught (Node has no `openat`); the
 * final file is still opened with `O_NOFOLLOW` by the callers.
 * @throws {CellError} CELL_BAD_NAME for a segment that is empty, `.`, `..` or contains `/`;
 *   CELL_NOT_FOUND (missing and not created); CELL_UNSAFE_PATH (a link or a file on the way);
 *   CELL_NOT_A_CELL (see {@link assertCellDir}); CELL_IO.
 * @example
 * const heartbeats = await ensureCellSubdir(cellDir, ['.lazarus', 'heartbeats'], { create: true });
 */
export async function ensureCellSubdir(
  cellDir: string,
  segments: readonly string[],
  options: EnsureCellSubdirOptions = {},
): Promise<string> {
  for (const segment of segments) {
    if (
      segment === '' ||
      segment === '.' ||
      segment === '..' ||
      segment.includes('/') ||
      segment.includes('\0')
    ) {
      throw new CellError(
        'CELL_BAD_NAME',
        `${cellDir}: path segment ${JSON.stringify(segment)} would leave the cell; expected a plain directory name`,
      );
    }
  }
  await assertCellDir(cellDir);
  // One walk from the cell, each directory opened (and created) relative to the one before
  // through its descriptor: a link swapped in during the walk is refused, never followed.
  const directory = await openDirectoryBeneath(cellDir, segments.join('/'), {
    create: options.create ?? false,
  }).catch((error: unknown) => {
    if (PitError.is(error) && error.code === 'CELL_NOT_FOUND' && !options.create)
      throw new CellError(
        'CELL_NOT_FOUND',
        `${join(cellDir, ...segments)}: expected a directory of the cell; it does not exist`,
      );
    throw error;
  });
  await directory.close();
  return join(cellDir, ...segments);
}
