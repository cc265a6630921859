import { createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
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

/** A unique temporary name beside `path` (same directory, so a rename is atomic). */
export function tempPathBeside(path: string, tag = 'tmp'): string {
  return join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.${tag}`,
  );
}

/**
 * Writes `data` to a new file `temp` (`O_EXCL`, never through a symlink) with exactly `mode`,
 * and fsyncs it. On failure the temp file is removed.
 * @throws {SnapshotError} SNAPSHOT_IO (disk full is retryable).
 */
export async function writeNewFile(temp: string, data: Uint8Array, mode: number): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      mode & 0o7777,
    );
    let offset = 0;
    while (offset < data.length) {
      const { bytesWritten } = await handle.write(data, offset, data.length - offset);
      offset += bytesWritten;
    }
    await handle.chmod(mode & 0o7777);
    await handle.sync();
    await handle.close();
    handle = undefined;
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await fs.rm(temp, { force: true }).catch(() => undefined);
    throw toSnapshotError(error, temp, 'write');
  }
}

/**
 * Writes an immutable, content-addressed file: temp, fsync, rename. The caller fsyncs the
 * directory once after a batch.
 * @throws {SnapshotError} SNAPSHOT_IO.
 */
export async function writeFileDurable(
  path: string,
  data: Uint8Array,
  mode: number,
): Promise<void> {
  const temp = tempPathBeside(path);
  await writeNewFile(temp, data, mode);
  try {
    await fs.rename(temp, path);
  } catch (error) {
    await fs.rm(temp, { force: true }).catch(() => undefined);
    throw toSnapshotError(error, path, 'rename into place');
  }
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

/** Removes stale temporary files (`.<name>.<pid>.<hex>.tmp`) written by dead processes in `dir`. */
export async function removeDeadTemps(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const match = /^\..+\.(\d+)\.[0-9a-f]{12}\.tmp$/.exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    if (
      await fs.rm(join(dir, name), { force: true, recursive: true }).then(
        () => true,
        () => false,
      )
    )
      removed += 1;
  }
  return removed;
}

/** Whether a process with this pid exists (a zombie counts as gone only once reaped). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
