/**
 * Rotating a log that a running process still appends to (an agent's `logs/<agent>.log` or
 * `logs/<agent>.err.log`: its stdout or stderr, opened `O_APPEND`): the file cannot be renamed away (the agent would keep
 * writing to the renamed file), so its whole lines are copied out and the live file is cut
 * back. Owns that copy-and-truncate, the `<log>.rotating` marker that readers wait on while it
 * happens (agent-log.ts, `readSteady`), and recovering a marker a crash left. The caller makes sure
 * nothing writes the file meanwhile (agent-log-rotator.ts freezes the agent's cgroup); it never
 * decides when to rotate.
 */
import { constants, promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { openDirectoryBeneath, rotatedLogPath, type BeneathDirectory } from '@pit/cell-spec';
import { DaemonError } from './errors.js';

/** The name a rotated copy has while it is written (`forge.log.rotating`), before it becomes `.1`. */
export const ROTATING_SUFFIX = '.rotating';
/** A partial last line longer than this is rotated with the rest (cut) rather than kept live. */
const MAX_PARTIAL_BYTES = 64 * 1024;
const CHUNK_BYTES = 1024 * 1024;
const LIVE_FLAGS = constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const COPY_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Options of {@link copyRotateLog}. */
export interface CopyRotateOptions {
  /** Files kept in all, the live one included (`[logs] keep`). */
  keep: number;
  /** The cell the log lies in: every component is opened beneath it, never through a link. */
  beneath?: string;
}

/**
 * Rotates the log at `path` while its writer is held still: its bytes up to its last newline
 * become `<log>.1` (older files shift up, `keep` files in all), the live file is truncated and
 * the partial last line written back at its start (an `O_APPEND` writer goes on after it). A
 * marker left by a crash in the middle is moved into place first: a crash can repeat lines in
 * two files, never lose one.
 * @returns the bytes moved out of the live file (0 when it held no whole line).
 * @throws {DaemonError} DAEMON_IO when the log is not a regular file or cannot be read or written.
 */
export async function copyRotateLog(path: string, options: CopyRotateOptions): Promise<number> {
  const name = basename(path);
  const directory = await openLogDirectory(path, options.beneath);
  const entry = (index: number) => directory.entry(basename(rotatedLogPath(path, index, 'suffix')));
  const marker = directory.entry(name + ROTATING_SUFFIX);
  try {
    if (await exists(marker)) await shiftInto(entry, marker, options.keep);
    const live = await fs.open(entry(0), LIVE_FLAGS);
    let cut: number;
    try {
      const stat = await live.stat();
      if (!stat.isFile()) throw new DaemonError('DAEMON_IO', `${path}: not a regular file`);
      cut = await lastLineEnd(live, stat.size);
      if (cut === 0) return 0;
      await copyPrefix(live, marker, cut);
      const tail = Buffer.alloc(stat.size - cut);
      if (tail.length > 0) await live.read(tail, 0, tail.length, cut);
      await live.truncate(0);
      if (tail.length > 0) await live.write(tail, 0, tail.length, 0);
    } finally {
      await live.close();
    }
    await shiftInto(entry, marker, options.keep);
    return cut;
  } catch (error) {
    if (DaemonError.is(error)) throw error;
    throw new DaemonError('DAEMON_IO', `${path}: cannot rotate: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    await directory.close();
  }
}

async function openLogDirectory(path: string, beneath?: string): Promise<BeneathDirectory> {
  if (beneath !== undefined) return openDirectoryBeneath(beneath, dirname(path));
  return {
    fd: -1,
    path: dirname(path),
    entry: (name) => join(dirname(path), name),
    close: async () => undefined,
  };
}

const exists = (path: string) =>
  fs.lstat(path).then(
    () => true,
    () => false,
  );

/**
 * Where the live file's whole lines end: after its last newline, or its whole size when the
 * partial last line is over {@link MAX_PARTIAL_BYTES} (such a line is cut).
 */
async function lastLineEnd(live: fs.FileHandle, size: number): Promise<number> {
  const length = Math.min(size, MAX_PARTIAL_BYTES);
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await live.read(buffer, 0, length, size - length);
  const newline = buffer.subarray(0, bytesRead).lastIndexOf(10);
  if (newline === -1) return size > MAX_PARTIAL_BYTES ? size : 0;
  return size - length + newline + 1;
}

/** Copies the first `length` bytes of `live` into a new file at `target` (flushed). */
async function copyPrefix(live: fs.FileHandle, target: string, length: number): Promise<void> {
  const copy = await fs.open(target, COPY_FLAGS, 0o640);
  try {
    const buffer = Buffer.alloc(Math.min(CHUNK_BYTES, length));
    for (let position = 0; position < length;) {
      const { bytesRead } = await live.read(
        buffer,
        0,
        Math.min(buffer.length, length - position),
        position,
      );
      if (bytesRead === 0) throw new Error('the log shrank while it was copied');
      await copy.write(buffer, 0, bytesRead);
      position += bytesRead;
    }
    await copy.sync();
  } finally {
    await copy.close();
  }
}

/** Shifts `.1` … up (the oldest beyond `keep` removed) and renames `marker` to `.1`. */
async function shiftInto(
  entry: (index: number) => string,
  marker: string,
  keep: number,
): Promise<void> {
  const ignoreMissing = (error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  };
  if (keep < 2) {
    await fs.unlink(marker).catch(ignoreMissing);
    return;
  }
  for (let index = keep; index < 1000; index += 1) {
    const gone = await fs.unlink(entry(index)).then(
      () => false,
      (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
    );
    if (gone) break;
  }
  for (let index = keep - 2; index >= 1; index -= 1)
    await fs.rename(entry(index), entry(index + 1)).catch(ignoreMissing);
  await fs.rename(marker, entry(1));
}
