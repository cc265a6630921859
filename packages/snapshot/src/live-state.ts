import { createHash } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { dirname, sep } from 'node:path';
import { compareBytes, symlinkHash, walkTree } from './config-scan.js';
import { SnapshotError, toSnapshotError } from './errors.js';
import { describeKind, lstatOrUndefined } from './files.js';
import type { SetEntry, SetRoot } from './store-layout.js';

/** What is at a config path right now. */
export type LiveState =
  | { kind: 'missing' }
  | { kind: 'file'; sha256: string; size: number; mode: number }
  | { kind: 'symlink'; sha256: string; target: string }
  | { kind: 'dir'; mode: number }
  | { kind: 'other'; description: string };

/**
 * Streams a regular file through sha256 without following a symlink (any size, constant memory).
 * @throws {SnapshotError} SNAPSHOT_NOT_FOUND, SNAPSHOT_UNSAFE_PATH, SNAPSHOT_IO.
 */
export async function hashFileStream(
  path: string,
): Promise<{ sha256: string; size: number; mode: number }> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stat = await handle.stat();
    if (!stat.isFile())
      throw new SnapshotError(
        'SNAPSHOT_UNSAFE_PATH',
        `${path}: expected a regular file, found ${describeKind(stat)}`,
      );
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(Math.min(256 * 1024, Math.max(1, stat.size)));
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { sha256: hash.digest('hex'), size, mode: stat.mode & 0o7777 };
  } catch (error) {
    throw toSnapshotError(error, path, 'hash');
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Inspects one path without following a symlink at it. @throws {SnapshotError} SNAPSHOT_IO. */
export async function inspectLive(path: string): Promise<LiveState> {
  const stat = await lstatOrUndefined(path);
  if (stat === undefined) return { kind: 'missing' };
  if (stat.isDirectory()) return { kind: 'dir', mode: stat.mode & 0o7777 };
  if (stat.isSymbolicLink()) {
    try {
      const target = await fs.readlink(path);
      return { kind: 'symlink', target, sha256: symlinkHash(target) };
    } catch (error) {
      throw toSnapshotError(error, path, 'read symbolic link');
    }
  }
  if (stat.isFile()) {
    const hashed = await hashFileStream(path);
    return { kind: 'file', ...hashed };
  }
  return { kind: 'other', description: describeKind(stat) };
}

/** Whether the live state is exactly the entry (content and mode). */
export function liveMatches(entry: SetEntry, live: LiveState): boolean {
  if (entry.kind === 'dir') return live.kind === 'dir' && live.mode === entry.mode;
  if (entry.kind === 'symlink') return live.kind === 'symlink' && live.target === entry.target;
  return live.kind === 'file' && live.sha256 === entry.sha256 && live.mode === entry.mode;
}

/** The hash a live state reports as `old_sha256` (`null` when there was nothing). */
export function liveHash(live: LiveState): string | null {
  return live.kind === 'file' || live.kind === 'symlink' ? live.sha256 : null;
}

/**
 * Files and symlinks that are live inside the set's directory roots but not in the set
 * (added since the snapshot), in a stable order. Never descends through a symlink.
 */
export async function findExtras(
  roots: readonly SetRoot[],
  entries: readonly SetEntry[],
): Promise<Array<{ path: string; kind: 'file' | 'symlink' | 'other'; description: string }>> {
  const known = new Set(entries.map((entry) => entry.path));
  const extras: Array<{ path: string; kind: 'file' | 'symlink' | 'other'; description: string }> =
    [];
  for (const root of roots) {
    if (root.kind !== 'dir') continue;
    const stat = await lstatOrUndefined(root.path);
    if (stat === undefined || !stat.isDirectory()) continue;
    await walkTree(root.path, stat, ({ path, stat: itemStat }) => {
      if (known.has(path) || itemStat.isDirectory()) return;
      const kind = itemStat.isFile() ? 'file' : itemStat.isSymbolicLink() ? 'symlink' : 'other';
      extras.push({ path, kind, description: describeKind(itemStat) });
    });
  }
  extras.sort((a, b) => compareBytes(a.path, b.path));
  return extras;
}

/**
 * The directories between `root` (inclusive) and `path` (exclusive), outermost first:
 * each must be a real directory (or missing) for a write at `path` to stay in bounds.
 */
export function ancestorsWithin(root: string, path: string): string[] {
  const out: string[] = [];
  let dir = dirname(path);
  while (
    dir.length >= root.length &&
    (dir === root || dir.startsWith(root.endsWith(sep) ? root : root + sep))
  ) {
    out.unshift(dir);
    if (dir === root) break;
    dir = dirname(dir);
  }
  return out;
}
