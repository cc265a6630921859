/**
 * An agent's output log (`logs/<agent>.log` in its cell, or `<state_dir>/logs/<agent>.log`
 * outside cells) across its rotations (`<agent>.log.N` … oldest first): finding it from a
 * reference (`name` or `cell/name`), reading whole lines from an open file, and the last lines
 * of the whole log. Read by `pit logs` and the MCP tool `pit_logs`. It reads files only (beneath
 * the cell, never through a link out of it) and never writes. A running agent's log is rotated by
 * copy (log-copy-rotation.ts): a read is taken again when a rotation happened while it ran
 * ({@link readSteady}).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  assertAgentName,
  cellPaths,
  discoverCells,
  openLogFiles,
  rotatedLogPath,
  type LogFile,
} from '@pit/cell-spec';
import { ROTATING_SUFFIX } from './log-copy-rotation.js';

/** One agent log found. */
export interface FoundLog {
  /** `cell/name`, or `name` outside cells. */
  label: string;
  path: string;
  /** The cell the log lies in (read beneath it, never through a link). */
  beneath?: string;
}

/** A line longer than this is returned in pieces. */
const MAX_LINE_BYTES = 64 * 1024;

/**
 * Finds the log of `ref` (`name`, or `cell/name` with a cell uuid or a unique prefix of one) in
 * the cells and outside cells. Absence and ambiguity are values, with a message naming where it
 * looked or the candidates.
 * @throws {CellSpecError} CELL_BAD_NAME when the name is not an agent name.
 */
export async function findAgentLog(options: {
  cellsRoot: string;
  stateDir: () => Promise<string>;
  ref: string;
}): Promise<
  | { ok: true; log: FoundLog }
  | { ok: false; reason: 'not_found' | 'ambiguous'; message: string; candidates: string[] }
> {
  const { ref } = options;
  const slash = ref.indexOf('/');
  const cellPart = slash === -1 ? undefined : ref.slice(0, slash);
  const name = assertAgentName(slash === -1 ? ref : ref.slice(slash + 1), 'AGENT');
  const found: FoundLog[] = [];
  const discovery = await discoverCells(options.cellsRoot);
  for (const cell of [...discovery.supervised, ...discovery.unsupervised]) {
    if (cellPart !== undefined && !cell.uuid.startsWith(cellPart.toLowerCase())) continue;
    const path = cellPaths(cell.dir).agentLog(name);
    if (await hasLog(path, cell.dir))
      found.push({ label: `${cell.uuid}/${name}`, path, beneath: cell.dir });
  }
  if (cellPart === undefined) {
    const path = join(await options.stateDir(), 'logs', `${name}.log`);
    if (await hasLog(path)) found.push({ label: name, path });
  }
  if (found.length === 1) return { ok: true, log: found[0]! };
  if (found.length === 0)
    return {
      ok: false,
      reason: 'not_found',
      candidates: [],
      message: `${ref}: no log found (looked for logs/${name}.log in ${cellPart === undefined ? 'every cell' : `cells starting ${cellPart}`} under ${options.cellsRoot}${cellPart === undefined ? ' and in the state directory' : ''})`,
    };
  const candidates = found.map((log) => log.label);
  return {
    ok: false,
    reason: 'ambiguous',
    candidates,
    message: `${ref}: logs in ${found.length} places; name one as CELL/AGENT: ${candidates.join(', ')}`,
  };
}

async function hasLog(path: string, beneath?: string): Promise<boolean> {
  const files = await openLogFiles(path, {
    naming: 'suffix',
    ...(beneath ? { beneath } : {}),
  }).catch(() => []);
  await Promise.all(files.map((file) => file.handle.close()));
  return files.length > 0;
}

/**
 * Reads the lines of an open file from `offset`: whole lines, and the partial last one only
 * when `partial` (a file that will not grow any more). Returns where the next read starts.
 */
export async function readLogLines(
  file: LogFile,
  offset: number,
  partial: boolean,
): Promise<{ lines: string[]; next: number }> {
  const { size } = await file.handle.stat();
  const lines: string[] = [];
  let rest = Buffer.alloc(0);
  let position = offset;
  const buffer = Buffer.alloc(64 * 1024);
  let next = offset;
  while (position < size) {
    const { bytesRead } = await file.handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    let chunk = Buffer.concat([rest, buffer.subarray(0, bytesRead)]);
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10)) {
      lines.push(chunk.subarray(0, newline).toString('utf8'));
      chunk = chunk.subarray(newline + 1);
    }
    while (chunk.length > MAX_LINE_BYTES) {
      lines.push(chunk.subarray(0, MAX_LINE_BYTES).toString('utf8'));
      chunk = chunk.subarray(MAX_LINE_BYTES);
    }
    rest = Buffer.from(chunk);
    next = position - rest.length;
  }
  if (partial && rest.length > 0) {
    lines.push(rest.toString('utf8'));
    next = position;
  }
  return { lines, next };
}

/**
 * What tells a reader a log was rotated: the inode of its `.1` (a new file at each rotation),
 * and whether a rotation by copy is under way (its `.rotating` file exists; one older than
 * {@link STALE_ROTATION_MS} was left by a crash and is not waited on).
 */
export interface RotationMark {
  rotated: number | undefined;
  busy: boolean;
}

const STALE_ROTATION_MS = 30_000;
/** How many times a read is taken again while rotations keep happening under it. */
const STEADY_ATTEMPTS = 100;

/** The {@link RotationMark} of the log at `path` now. */
export async function rotationMark(path: string): Promise<RotationMark> {
  const rotated = await fs.lstat(rotatedLogPath(path, 1, 'suffix')).then(
    (stat) => stat.ino,
    () => undefined,
  );
  const busy = await fs.lstat(path + ROTATING_SUFFIX).then(
    (stat) => Date.now() - stat.mtimeMs < STALE_ROTATION_MS,
    () => false,
  );
  return { rotated, busy };
}

/**
 * Runs `read` (which reads the log at `path`) until no rotation began or ended while it ran,
 * waiting while one is under way; after {@link STEADY_ATTEMPTS} the last result is taken.
 * @returns what `read` returned and the mark it was taken under.
 */
export async function readSteady<T>(
  path: string,
  read: (mark: RotationMark) => Promise<T>,
): Promise<{ result: T; mark: RotationMark }> {
  for (let attempt = 1; ; attempt += 1) {
    const before = await rotationMark(path);
    if (before.busy && attempt < STEADY_ATTEMPTS) {
      await sleep(10);
      continue;
    }
    const result = await read(before);
    const after = await rotationMark(path);
    if ((after.rotated === before.rotated && !after.busy) || attempt >= STEADY_ATTEMPTS)
      return { result, mark: before };
  }
}

/**
 * The last `count` lines of a found log across its rotations (newest file last), reading the
 * files newest first and stopping once it has enough, so a long history costs only its tail.
 */
export async function readLogTail(
  log: FoundLog,
  count: number,
): Promise<{ lines: string[]; truncated: boolean }> {
  return (await readSteady(log.path, () => readTailOnce(log, count))).result;
}

async function readTailOnce(
  log: FoundLog,
  count: number,
): Promise<{ lines: string[]; truncated: boolean }> {
  const files = await openLogFiles(log.path, {
    naming: 'suffix',
    ...(log.beneath !== undefined ? { beneath: log.beneath } : {}),
  });
  try {
    let lines: string[] = [];
    for (const file of [...files].reverse()) {
      const read = await readLogLines(file, 0, true);
      lines = [...read.lines, ...lines];
      if (lines.length > count) break;
    }
    return { lines: lines.slice(-count), truncated: lines.length > count };
  } finally {
    await Promise.all(files.map((file) => file.handle.close().catch(() => undefined)));
  }
}
