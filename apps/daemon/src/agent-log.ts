/**
 * An agent's output logs (`logs/<agent>.log` in its cell, or `<state_dir>/logs/<agent>.log`
 * outside cells: its stdout, and its stderr too with `merge_stderr`; `<agent>.err.log` beside
 * it: its stderr) across their rotations (`<agent>.log.N`, `<agent>.err.log.N` … oldest first):
 * where they are ({@link agentLogPaths}, the one place the daemon names them), finding them from a
 * reference (`name` or `cell/name`), reading whole lines from an open file, and the last lines
 * of a whole log. Read by `pit logs`, the dashboard and the MCP tool `pit_logs`. It reads files only (beneath
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

/** An agent's output stream: each has its own log unless stderr is merged into stdout's. */
export type LogStream = 'stdout' | 'stderr';

/** One agent's logs found. */
export interface FoundLog {
  /** `cell/name`, or `name` outside cells. */
  label: string;
  /** Its stdout log (`<agent>.log`). */
  path: string;
  /** Its stderr log (`<agent>.err.log`; absent or empty when stderr is merged into `path`). */
  errorPath: string;
  /** The cell the logs lie in (read beneath it, never through a link). */
  beneath?: string;
}

/**
 * Where an agent's output goes: `stdout` is `<agent>.log` (in the cell's `logs/`, or
 * `<state_dir>/logs/` outside cells); `stderr` is `<agent>.err.log` beside it, or `undefined`
 * when `merged` (stderr then goes to the stdout log, in the order written).
 */
export function agentLogPaths(options: {
  stateDir: string;
  cell: { dir: string } | undefined;
  name: string;
  merged: boolean;
}): { stdout: string; stderr: string | undefined } {
  const { cell, name } = options;
  const paths = cell ? cellPaths(cell.dir) : undefined;
  const stdout =
    paths?.agentLog(name) ?? join(options.stateDir, 'logs', `${assertAgentName(name)}.log`);
  if (options.merged) return { stdout, stderr: undefined };
  return {
    stdout,
    stderr: paths?.agentErrorLog(name) ?? join(options.stateDir, 'logs', `${name}.err.log`),
  };
}

/** The one stream of a found agent's logs, as a log of its own (`path` is that stream's file). */
export function streamLog(log: FoundLog, stream: LogStream): FoundLog {
  return stream === 'stdout' ? log : { ...log, path: log.errorPath };
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
    const { stdout: path, stderr } = agentLogPaths({ stateDir: '', cell, name, merged: false });
    const errorPath = stderr!;
    if ((await hasLog(path, cell.dir)) || (await hasLog(errorPath, cell.dir)))
      found.push({ label: `${cell.uuid}/${name}`, path, errorPath, beneath: cell.dir });
  }
  if (cellPart === undefined) {
    const stateDir = await options.stateDir();
    const { stdout: path, stderr } = agentLogPaths({
      stateDir,
      cell: undefined,
      name,
      merged: false,
    });
    const errorPath = stderr!;
    if ((await hasLog(path)) || (await hasLog(errorPath)))
      found.push({ label: name, path, errorPath });
  }
  if (found.length === 1) return { ok: true, log: found[0]! };
  if (found.length === 0)
    return {
      ok: false,
      reason: 'not_found',
      candidates: [],
      message: `${ref}: no log found (looked for logs/${name}.log and logs/${name}.err.log in ${cellPart === undefined ? 'every cell' : `cells starting ${cellPart}`} under ${options.cellsRoot}${cellPart === undefined ? ' and in the state directory' : ''})`,
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
/** How long a reader waits, in all, for rotations under way to end (ms). */
const STEADY_WAIT_MS = 10_000;

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
 * Runs `read` (which reads the log at `path`) once no rotation is under way, again while a
 * rotation began or ended under it; waits while one is under way (a copy of a large log on a
 * busy machine can take seconds). After {@link STEADY_ATTEMPTS} reads, or
 * {@link STEADY_WAIT_MS} in all, the last result is taken with `steady: false`: it may repeat or
 * miss lines (a follower should drop it and try again).
 * @returns what `read` returned, the mark it was taken under, and whether it was steady.
 */
export async function readSteady<T>(
  path: string,
  read: (mark: RotationMark) => Promise<T>,
): Promise<{ result: T; mark: RotationMark; steady: boolean }> {
  const started = Date.now();
  for (let reads = 0; ;) {
    const before = await rotationMark(path);
    const late = Date.now() - started >= STEADY_WAIT_MS;
    if (before.busy && !late) {
      await sleep(10);
      continue;
    }
    reads += 1;
    const result = await read(before);
    const after = await rotationMark(path);
    const steady = !before.busy && !after.busy && after.rotated === before.rotated;
    if (steady || late || reads >= STEADY_ATTEMPTS) return { result, mark: before, steady };
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

/**
 * The last `count` lines of each asked stream of a found agent's logs, each stream held to
 * `maxBytes` (its newest lines kept). A stream with no file reads as no lines.
 */
export async function readStreamTails(
  log: FoundLog,
  options: { count: number; maxBytes: number; streams: LogStream[] },
): Promise<{ stdout?: string[]; stderr?: string[]; truncated: boolean }> {
  const result: { stdout?: string[]; stderr?: string[]; truncated: boolean } = {
    truncated: false,
  };
  for (const stream of options.streams) {
    const tail = await readLogTail(streamLog(log, stream), options.count);
    const kept: string[] = [];
    let bytes = 0;
    for (const line of [...tail.lines].reverse()) {
      bytes += Buffer.byteLength(line) + 1;
      if (bytes > options.maxBytes) break;
      kept.unshift(line);
    }
    result[stream] = kept;
    if (tail.truncated || kept.length < tail.lines.length) result.truncated = true;
  }
  return result;
}
