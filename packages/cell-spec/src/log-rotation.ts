/**
 * Size-rotated logs: the one owner of how a log's older files are named (`events.1.jsonl`,
 * `forge.log.1`), of the rename chain that rotates them, and of opening every file of a log
 * for reading oldest first without losing or repeating one when a rotation happens meanwhile.
 * It never decides when to rotate (the writer does, by size) and never reads a line.
 */
import { promises as fs, constants } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { openDirectoryBeneath, openFileBeneath, type BeneathDirectory } from './beneath.js';
import { CellError, toCellError } from './errors.js';

/**
 * How a rotated file is named: `infix` puts the number before the last extension
 * (`events.jsonl` → `events.1.jsonl`), `suffix` after the name (`forge.log` → `forge.log.1`;
 * agent logs use it, because `forge.1.log` is the live log of an agent named `forge.1`).
 */
export type RotationNaming = 'infix' | 'suffix';

/** When a log rotates and how many of its files are kept. */
export interface LogRotationLimits {
  /** A write that would take the live file over this size rotates it first (bytes). */
  maxBytes: number;
  /** Files kept in all, the live one included (`keep = 5`: the live file and `.1` … `.4`). */
  keep: number;
}

/** The most older files a reader looks for (a bound, far above any sensible `keep`). */
const MAX_GENERATIONS = 1000;

/**
 * The path of a log's `index`-th older file (`0`: the live file itself).
 * @example
 * rotatedLogPath('/c/logs/events.jsonl', 2); // '/c/logs/events.2.jsonl'
 * rotatedLogPath('/c/logs/forge.log', 1, 'suffix'); // '/c/logs/forge.log.1'
 */
export function rotatedLogPath(path: string, index: number, naming: RotationNaming = 'infix') {
  if (index === 0) return path;
  if (naming === 'suffix') return `${path}.${index}`;
  const name = basename(path);
  const dot = name.lastIndexOf('.');
  const rotated = dot > 0 ? `${name.slice(0, dot)}.${index}${name.slice(dot)}` : `${name}.${index}`;
  return join(dirname(path), rotated);
}

/** Options of {@link rotateLogFiles} and {@link openLogFiles}. */
export interface LogFilesOptions {
  /** @default 'infix' */
  naming?: RotationNaming;
  /**
   * A directory (the cell) the log lies beneath: its directory is opened without following a
   * link at any component, and every rename or open happens through that open directory.
   */
  beneath?: string;
}

/** Runs `work` with the log's directory: opened beneath `root`, or plainly. */
async function withLogDirectory<T>(
  path: string,
  beneath: string | undefined,
  work: (entry: (name: string) => string) => Promise<T>,
): Promise<T> {
  if (beneath === undefined) return work((name) => join(dirname(path), name));
  let directory: BeneathDirectory | undefined;
  try {
    directory = await openDirectoryBeneath(beneath, dirname(path));
    return await work(directory.entry);
  } finally {
    await directory?.close();
  }
}

const ignoreMissing = (error: unknown) => {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
};

/**
 * Rotates a log: `.(keep-2)` → `.(keep-1)` … `.1` → `.2`, then the live file → `.1` (with
 * `keep = 1` the live file is removed); files numbered `keep - 1` and above that are left from a
 * larger `keep` are removed. Each step is one rename(2), so a reader holding a file open keeps
 * reading it and a line is never split between two files. The writer opens a fresh live file.
 * @throws {CellError} CELL_UNSAFE_PATH (a link on the way beneath `beneath`), CELL_IO.
 */
export async function rotateLogFiles(
  path: string,
  options: LogFilesOptions & { keep: number },
): Promise<void> {
  const naming = options.naming ?? 'infix';
  const nameOf = (index: number) => basename(rotatedLogPath(path, index, naming));
  try {
    await withLogDirectory(path, options.beneath, async (entry) => {
      for (let index = options.keep; index < MAX_GENERATIONS; index += 1) {
        const gone = await fs.unlink(entry(nameOf(index))).then(
          () => false,
          (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
        );
        if (gone) break;
      }
      for (let index = options.keep - 2; index >= 1; index -= 1)
        await fs.rename(entry(nameOf(index)), entry(nameOf(index + 1))).catch(ignoreMissing);
      if (options.keep >= 2)
        await fs.rename(entry(nameOf(0)), entry(nameOf(1))).catch(ignoreMissing);
      else await fs.unlink(entry(nameOf(0))).catch(ignoreMissing);
    });
  } catch (error) {
    throw toCellError(error, path, 'rotate');
  }
}

/** One file of a log, open for reading. */
export interface LogFile {
  /** `0`: the live file; `n`: its `n`-th older file, when it was opened. */
  index: number;
  /** Its path when it was opened (for messages; a rotation may have renamed it since). */
  path: string;
  handle: fs.FileHandle;
  /** Its inode: the same file whatever it is called later. */
  ino: number;
  /** Its size when opened (bytes). */
  size: number;
  /** Its last modification when opened (ms). */
  mtimeMs: number;
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Opens one file of a log for reading; `undefined` when it does not exist. */
export async function openLogFile(
  path: string,
  index: number,
  options: LogFilesOptions = {},
): Promise<LogFile | undefined> {
  const filePath = rotatedLogPath(path, index, options.naming);
  let handle: fs.FileHandle | undefined;
  try {
    handle =
      options.beneath !== undefined
        ? await openFileBeneath(options.beneath, filePath, { flags: READ_FLAGS })
        : await fs.open(filePath, READ_FLAGS);
    const stat = await handle.stat();
    if (!stat.isFile())
      throw new CellError('CELL_UNSAFE_PATH', `${filePath}: expected a regular file; refused`);
    return {
      index,
      path: filePath,
      handle,
      ino: stat.ino,
      size: stat.size,
      mtimeMs: stat.mtimeMs,
    };
  } catch (error) {
    await handle?.close().catch(() => undefined);
    const cellError = toCellError(error, filePath, 'open log');
    if (cellError.code === 'CELL_NOT_FOUND') return undefined;
    throw cellError;
  }
}

/**
 * Opens every file of a log, returned oldest first. They are opened newest first and kept by
 * inode, so a rotation in between neither repeats a file (the live one renamed to `.1` is seen
 * once) nor leaves a gap (what was `.1` is then found as `.2`). Close each `handle`.
 * @throws {CellError} CELL_UNSAFE_PATH, CELL_IO (a missing file is no error: it is left out).
 */
export async function openLogFiles(
  path: string,
  options: LogFilesOptions = {},
): Promise<LogFile[]> {
  const files: LogFile[] = [];
  const seen = new Set<number>();
  try {
    for (let index = 0; index < MAX_GENERATIONS; index += 1) {
      const file = await openLogFile(path, index, options);
      if (!file) {
        if (index === 0) continue;
        break;
      }
      if (seen.has(file.ino)) {
        await file.handle.close();
        continue;
      }
      seen.add(file.ino);
      files.push(file);
    }
  } catch (error) {
    await Promise.all(files.map((file) => file.handle.close().catch(() => undefined)));
    throw error;
  }
  return files.reverse();
}
