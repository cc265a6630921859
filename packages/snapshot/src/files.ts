import { createHash } from 'node:crypto';
import { constants, promises as fs, type Stats } from 'node:fs';
import {
  removeStaleTemps,
  writeFileAtomic,
  writeNewFile as writeNewFileOnce,
} from '@pit/cell-spec';
import { SnapshotError, toSnapshotError } from './errors.js';

/** Hex sha256 of `data`. */
export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A hex sha256. */
export const SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** Describes a non-regular file for an error message. */
export function describeKind(stat: Stats): string {
  if (stat.isSymbolicLink()) return 'a symbolic link';
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFile()) return 'a regular file';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  return 'a special file';
}

/** A regular file read through one descriptor, with the stat of that same descriptor. */
export interface ReadRegularFile {
  content: Buffer;
  stat: Stats;
}

/**
 * Reads a regular file without following a symlink at its last component, refusing anything
 * over `maxBytes`; the stat comes from the same descriptor as the bytes.
 * @throws {SnapshotError} SNAPSHOT_NOT_FOUND, SNAPSHOT_UNSAFE_PATH, SNAPSHOT_TOO_LARGE, SNAPSHOT_IO.
 */
export async function readRegularFile(path: string, maxBytes: number): Promise<ReadRegularFile> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stat = await handle.stat();
    if (!stat.isFile())
      throw new SnapshotError(
        'SNAPSHOT_UNSAFE_PATH',
        `${path}: expected a regular file, found ${describeKind(stat)}`,
      );
    if (stat.size > maxBytes)
      throw new SnapshotError(
        'SNAPSHOT_TOO_LARGE',
        `${path}: ${stat.size} bytes exceeds the limit of ${maxBytes} bytes`,
      );
    const content = Buffer.alloc(stat.size);
    let offset = 0;
    while (offset < stat.size) {
      const { bytesRead } = await handle.read(content, offset, stat.size - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    const probe = Buffer.alloc(1);
    const { bytesRead: extra } = await handle.read(probe, 0, 1, offset);
    if (extra > 0 || offset !== stat.size) {
      throw new SnapshotError(
        'SNAPSHOT_IO',
        `${path}: changed size while being read (${stat.size} bytes expected); try again`,
        { retryable: true },
      );
    }
    return { content, stat };
  } catch (error) {
    throw toSnapshotError(error, path, 'read');
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Writes `data` to a new file `temp` (`O_EXCL`, never through a symlink) with exactly `mode`,
 * and fsyncs it; @pit/cell-spec's `writeNewFile`, with its errors as SnapshotErrors. On
 * failure the temp file is removed.
 * @throws {SnapshotError} SNAPSHOT_IO (disk full is retryable).
 */
export async function writeNewFile(temp: string, data: Uint8Array, mode: number): Promise<void> {
  await writeNewFileOnce(temp, data, { mode }).catch((error: unknown) => {
    throw toSnapshotError(error, temp, 'write');
  });
}

/**
 * Writes an immutable, content-addressed file: @pit/cell-spec's atomic write (temp, fsync,
 * rename), without the directory fsync: the caller fsyncs the directory once after a batch.
 * @throws {SnapshotError} SNAPSHOT_IO.
 */
export async function writeFileDurable(
  path: string,
  data: Uint8Array,
  mode: number,
): Promise<void> {
  await writeFileAtomic(path, data, { mode, fsyncDirectory: false }).catch((error: unknown) => {
    throw toSnapshotError(error, path, 'write');
  });
}

/** `lstat` that returns `undefined` for a missing path instead of throwing. */
export async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw toSnapshotError(error, path, 'stat');
  }
}

/**
 * Removes the temporary files (`.<name>.<pid>.<hex>.tmp`) that dead writers left in `dir`
 * (@pit/cell-spec's `removeStaleTemps`, judged by pid alone). Best effort: never throws.
 */
export async function removeDeadTemps(dir: string): Promise<number> {
  return removeStaleTemps(dir, 'any', { maxAgeMs: Infinity });
}
