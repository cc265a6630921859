import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  promises as fs,
  readSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { z } from 'zod';
import { CellError, PitError, toCellError } from './errors.js';
import { formatIssues } from './format-issues.js';
import { isProcessAlive } from './process-alive.js';

/** Options of {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** File mode of the new file. @default 0o644 */
  mode?: number;
  /** fsync the file before the rename and the directory after it. @default true */
  fsync?: boolean;
  /**
   * fsync the directory after the rename; `false` when the caller fsyncs it once after a batch
   * of writes (see {@link fsyncDir}). @default the value of `fsync`
   */
  fsyncDirectory?: boolean;
}

/** Options of {@link writeNewFile}. */
export interface WriteNewFileOptions {
  /** File mode of the new file, set exactly (the umask does not apply). @default 0o644 */
  mode?: number;
  /** fsync the file before it is closed. @default true */
  fsync?: boolean;
}

/** The temporary name {@link writeFileAtomic} uses beside `path`: `.<name>.<pid>.<random>.tmp`. */
export function atomicTempPath(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
}

/** The pid in a temporary name `.<name>.<pid>.<random>.tmp`, when `entry` is one for one of `names`. */
function tempWriterPid(entry: string, names: readonly string[] | 'any'): number | undefined {
  if (!entry.startsWith('.') || !entry.endsWith('.tmp')) return undefined;
  if (names === 'any') {
    const match = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/.exec(entry);
    return match ? Number(match[1]) : undefined;
  }
  // `.cell.json.lock.<pid>…` starts with `.cell.json.` too: try every name, not just the first.
  const match = names
    .filter((candidate) => entry.startsWith(`.${candidate}.`))
    .map((candidate) =>
      /^(\d+)\.[0-9a-f]+$/.exec(entry.slice(candidate.length + 2, -'.tmp'.length)),
    )
    .find((found) => found !== null);
  return match ? Number(match[1]) : undefined;
}

/**
 * Removes the temporary files that writers killed mid-write (SIGKILL, power loss) left beside
 * the files `names` in `dir` (`.<name>.<pid>.<random>.tmp`), or beside any file with `'any'`:
 * those whose pid is gone, and any older than `maxAgeMs` (a pid from another pid namespace
 * cannot be checked, and an atomic write never takes that long; `Infinity` trusts the pid
 * alone). Best effort: never throws.
 * @returns how many were removed.
 */
export async function removeStaleTemps(
  dir: string,
  names: readonly string[] | 'any',
  options: { maxAgeMs?: number } = {},
): Promise<number> {
  const maxAgeMs = options.maxAgeMs ?? 60_000;
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const entry of entries) {
    const pid = tempWriterPid(entry, names);
    if (pid === undefined) continue;
    const path = join(dir, entry);
    let stale = !isProcessAlive(pid);
    if (!stale && Number.isFinite(maxAgeMs)) {
      const stat = await fs.lstat(path).catch(() => undefined);
      stale = stat !== undefined && Date.now() - stat.mtimeMs > maxAgeMs;
    }
    if (
      stale &&
      (await fs.unlink(path).then(
        () => true,
        () => false,
      ))
    )
      removed += 1;
  }
  return removed;
}

/**
 * Creates `path`, which must not exist (`O_EXCL`, never through a symlink), writes `data`, sets
 * exactly `mode`, fsyncs and closes it: the first half of an atomic write, for callers that
 * rename later (or record the temporary name first, as a journal does). On failure the file
 * is removed.
 * @throws {CellError} CELL_IO when `path` exists or the filesystem refuses (disk full is retryable).
 */
export async function writeNewFile(
  path: string,
  data: string | Uint8Array,
  options: WriteNewFileOptions = {},
): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      (options.mode ?? 0o644) & 0o7777,
    );
    await handle.writeFile(data);
    if (options.mode !== undefined) await handle.chmod(options.mode & 0o7777);
    if (options.fsync ?? true) await handle.sync();
    await handle.close();
    handle = undefined;
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await fs.rm(path, { force: true }).catch(() => undefined);
    throw toCellError(error, path, 'write');
  }
}

/**
 * Replaces `path` with `data` so that a reader (or a crash at any instant) sees either the
 * old content or the new, never a mix: temp file in the same directory, write, fsync,
 * rename, fsync the directory. A symlink at `path` is replaced, never followed.
 * @throws {CellError} CELL_IO when the filesystem refuses (the old file is left intact).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const temp = atomicTempPath(path);
  const sync = options.fsync ?? true;
  try {
    await writeNewFile(temp, data, {
      ...(options.mode !== undefined ? { mode: options.mode } : {}),
      fsync: sync,
    });
    await fs.rename(temp, path);
  } catch (error) {
    await fs.rm(temp, { force: true }).catch(() => undefined);
    // Named after the file being replaced, not the temporary one.
    const cause = PitError.is(error) && error.cause !== undefined ? error.cause : error;
    throw toCellError(cause, path, 'atomic write');
  }
  if (options.fsyncDirectory ?? sync) await fsyncDir(dirname(path));
}

/** fsyncs a directory so that a rename inside it survives a power loss. Best effort where unsupported. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM')
      throw toCellError(error, dir, 'fsync directory');
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Options of {@link readFileSafe}. */
export interface ReadFileSafeOptions {
  /** Refuse files larger than this. @default 1 MiB */
  maxBytes?: number;
}

const SAFE_READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

function checkReadable(path: string, stat: Stats, maxBytes: number): void {
  if (!stat.isFile())
    throw new CellError(
      'CELL_UNSAFE_PATH',
      `${path}: expected a regular file, found ${describeStat(stat)}`,
    );
  if (stat.size > maxBytes)
    throw new CellError(
      'CELL_TOO_LARGE',
      `${path}: ${stat.size} bytes exceeds the limit of ${maxBytes} bytes`,
    );
}

/**
 * Reads to the end of a file of `size` bytes (as fstat said) in as few reads as possible:
 * the first asks for one byte more than `size`, so a file that did not change takes one read
 * (a short read of a regular file is its end). A file that grew meanwhile is read on, up to
 * `maxBytes`. A generator, so that the async and the sync reader share the loop: each step
 * asks for a read into `buffer` at `offset` (also the file position) and gets the bytes read.
 */
function* readSteps(
  path: string,
  size: number,
  maxBytes: number,
): Generator<{ buffer: Buffer; offset: number; length: number }, Buffer, number> {
  let buffer = Buffer.allocUnsafe(Math.min(size, maxBytes) + 1);
  let filled = 0;
  for (;;) {
    if (filled === buffer.length) {
      if (filled > maxBytes)
        throw new CellError(
          'CELL_TOO_LARGE',
          `${path}: grew past the limit of ${maxBytes} bytes while being read`,
        );
      const bigger = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1));
      buffer.copy(bigger, 0, 0, filled);
      buffer = bigger;
    }
    const length = buffer.length - filled;
    const bytesRead = yield { buffer, offset: filled, length };
    filled += bytesRead;
    if (bytesRead < length) return buffer.subarray(0, filled);
  }
}

/**
 * Reads a regular file without following a symlink at its last component, refusing
 * anything over `maxBytes`. A file that grows while it is read is read to its end (within
 * the limit), never silently truncated.
 * @throws {CellError} CELL_NOT_FOUND, CELL_UNSAFE_PATH (symlink, directory, FIFO, device),
 *   CELL_TOO_LARGE, CELL_IO.
 */
export async function readFileSafe(
  path: string,
  options: ReadFileSafeOptions = {},
): Promise<Buffer> {
  const maxBytes = options.maxBytes ?? 1024 * 1024;
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(path, SAFE_READ_FLAGS);
    const stat = await handle.stat();
    checkReadable(path, stat, maxBytes);
    const steps = readSteps(path, stat.size, maxBytes);
    let step = steps.next();
    while (!step.done) {
      const { buffer, offset, length } = step.value;
      step = steps.next((await handle.read(buffer, offset, length, offset)).bytesRead);
    }
    return step.value;
  } catch (error) {
    throw toCellError(error, path, 'read');
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * The synchronous twin of {@link readFileSafe}, for reading many small files in time-boxed
 * slices (for a small file, the round trips through the thread pool cost more than the read).
 * Same checks, same errors.
 */
export function readFileSafeSync(path: string, options: ReadFileSafeOptions = {}): Buffer {
  const maxBytes = options.maxBytes ?? 1024 * 1024;
  let fd: number | undefined;
  try {
    fd = openSync(path, SAFE_READ_FLAGS);
    const stat = fstatSync(fd);
    checkReadable(path, stat, maxBytes);
    const steps = readSteps(path, stat.size, maxBytes);
    let step = steps.next();
    while (!step.done) {
      const { buffer, offset, length } = step.value;
      step = steps.next(readSync(fd, buffer, offset, length, offset));
    }
    return step.value;
  } catch (error) {
    throw toCellError(error, path, 'read');
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function describeStat(stat: Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  return 'a special file';
}

/**
 * Parses `text` as JSON and validates it, naming the file and every bad field.
 * @throws {CellError} CELL_INVALID.
 */
export function parseJsonWith<T extends z.ZodType>(
  schema: T,
  text: string,
  path: string,
): z.infer<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new CellError('CELL_INVALID', `${path}: not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    throw new CellError('CELL_INVALID', `${path}: ${formatIssues(parsed.error)}`, {
      cause: parsed.error,
    });
  return parsed.data;
}

/**
 * Reads, parses and validates a JSON file safely (no symlinks, size-limited).
 * @throws {CellError} CELL_NOT_FOUND, CELL_UNSAFE_PATH, CELL_TOO_LARGE, CELL_INVALID, CELL_IO.
 */
export async function readJsonFile<T extends z.ZodType>(
  path: string,
  schema: T,
  options: ReadFileSafeOptions = {},
): Promise<z.infer<T>> {
  const buffer = await readFileSafe(path, options);
  return parseJsonWith(schema, buffer.toString('utf8'), path);
}

/** Writes `value` as pretty JSON atomically. @throws {CellError} CELL_IO. */
export async function writeJsonAtomic(
  path: string,
  value: unknown,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, options);
}
