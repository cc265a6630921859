/**
 * What a root daemon's level-2 agents may write, handed to the uid they run as (`[sandbox]
 * uid`/`gid`, sandbox.ts): the cell's `workspace/` and `.lazarus/heartbeats/`. Everything else
 * of the cell (`cell.json`, `logs/`, `.lazarus/state.json`, `checkpoints/`, `bus/`) stays the
 * daemon's. The cell is the agents' (untrusted) ground: no link is followed anywhere, a
 * directory is opened beneath the one above it (`/proc/self/fd/<fd>/<name>`, `O_NOFOLLOW`), an
 * entry is changed with `lchown` on that same path (a link an agent planted is changed itself,
 * never its target), and a file with more than one link is left alone (its other name may lie
 * outside the workspace).
 */
import {
  constants,
  fchown as fchownCallback,
  fstat as fstatCallback,
  promises as fs,
} from 'node:fs';
import { basename, dirname } from 'node:path';
import { promisify } from 'node:util';
import { openDirectoryBeneath } from '@pit/cell-spec';
import type { SandboxUser } from './sandbox.js';

/** What {@link handOverCell} changed. */
export interface HandOver {
  /** Entries whose owner was changed. */
  changed: number;
  /** Whether the workspace was walked whole. */
  deep: boolean;
  /** Files left as they were: more than one hard link, or below the depth limit. */
  skipped: string[];
}

const DIRECTORY_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** Deeper directories are left as they are (and named in `skipped`): one fd open per level. */
const MAX_DEPTH = 128;
const MAX_SKIPPED = 20;

/**
 * Hands the cell's writable paths to `user`: `.lazarus/heartbeats/` and what is in it, always;
 * `workspace/` itself always, and its whole tree when `deep` or when the workspace is not
 * `user`'s yet (a new cell, a daemon that ran its agents as root before, a workspace a restore
 * replaced), else only `files` in it (relative to `workspace/`: config and provider files a
 * rollback or switch rewrote). Entries already `user`'s are not touched.
 * @throws {CellError} CELL_UNSAFE_PATH when `workspace/` or `.lazarus/heartbeats/` is a link or
 *   not a directory; CELL_NOT_FOUND when one is missing.
 */
export async function handOverCell(
  cellDir: string,
  user: SandboxUser,
  options: { deep?: boolean; files?: string[] } = {},
): Promise<HandOver> {
  const result: HandOver = { changed: 0, deep: false, skipped: [] };
  const heartbeats = await openDirectoryBeneath(cellDir, '.lazarus/heartbeats');
  try {
    await handOverDirectory(heartbeats.fd, heartbeats.path, user, result, 0);
  } finally {
    await heartbeats.close();
  }
  const workspace = await openDirectoryBeneath(cellDir, 'workspace');
  try {
    const stat = await fstat(workspace.fd);
    result.deep = options.deep === true || stat.uid !== user.uid || stat.gid !== user.gid;
    if (result.deep) await handOverDirectory(workspace.fd, workspace.path, user, result, 0);
  } finally {
    await workspace.close();
  }
  if (!result.deep)
    for (const file of options.files ?? []) await handOverFile(cellDir, file, user, result);
  return result;
}

/**
 * One file below `workspace/` (`file` relative to it), reached without following a link; a
 * missing one, or one behind a link or not a regular file, is left alone.
 */
async function handOverFile(
  cellDir: string,
  file: string,
  user: SandboxUser,
  result: HandOver,
): Promise<void> {
  const parent = dirname(file) === '.' ? 'workspace' : `workspace/${dirname(file)}`;
  const directory = await openDirectoryBeneath(cellDir, parent).catch((error: unknown) => {
    const code = (error as { code?: string }).code;
    if (code === 'CELL_NOT_FOUND' || code === 'CELL_UNSAFE_PATH') return undefined;
    throw error;
  });
  if (!directory) return;
  try {
    const entry = `/proc/self/fd/${directory.fd}/${basename(file)}`;
    const stat = await fs.lstat(entry).catch(ignoreVanished);
    if (!stat?.isFile() || (stat.uid === user.uid && stat.gid === user.gid)) return;
    if (stat.nlink > 1) return skip(result, `${directory.path}/${basename(file)}`);
    if (await fs.lchown(entry, user.uid, user.gid).then(() => true, ignoreVanished))
      result.changed += 1;
  } finally {
    await directory.close();
  }
}

const fstat = promisify(fstatCallback);
const fchown = promisify(fchownCallback);

/** The directory open as `fd` (shown as `path`) and everything below it, handed to `user`. */
async function handOverDirectory(
  fd: number,
  path: string,
  user: SandboxUser,
  result: HandOver,
  depth: number,
): Promise<void> {
  const stat = await fstat(fd);
  if (stat.uid !== user.uid || stat.gid !== user.gid) {
    await fchown(fd, user.uid, user.gid);
    result.changed += 1;
  }
  const names = await fs.readdir(`/proc/self/fd/${fd}`);
  for (const name of names) {
    const entry = `/proc/self/fd/${fd}/${name}`;
    const shown = `${path}/${name}`;
    const entryStat = await fs.lstat(entry).catch(ignoreVanished);
    if (!entryStat || entryStat.isSymbolicLink()) continue;
    if (entryStat.isDirectory()) {
      if (depth + 1 >= MAX_DEPTH) {
        skip(result, shown);
        continue;
      }
      const child = await fs.open(entry, DIRECTORY_FLAGS).catch(ignoreVanished);
      // Replaced by a link or a file since the lstat: left alone (ELOOP, ENOTDIR).
      if (!child) continue;
      try {
        await handOverDirectory(child.fd, shown, user, result, depth + 1);
      } finally {
        await child.close();
      }
      continue;
    }
    if (entryStat.uid === user.uid && entryStat.gid === user.gid) continue;
    if (entryStat.nlink > 1) {
      skip(result, shown);
      continue;
    }
    const changed = await fs.lchown(entry, user.uid, user.gid).then(() => true, ignoreVanished);
    if (changed) result.changed += 1;
  }
}

function skip(result: HandOver, path: string): void {
  if (result.skipped.length < MAX_SKIPPED) result.skipped.push(path);
}

/** An entry that vanished, or became a link or another type, since it was listed: skipped. */
function ignoreVanished(error: NodeJS.ErrnoException): undefined {
  if (error.code === 'ENOENT' || error.code === 'ELOOP' || error.code === 'ENOTDIR')
    return undefined;
  throw error;
}
