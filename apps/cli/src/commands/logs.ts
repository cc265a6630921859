/**
 * `pit logs AGENT`: prints an agent's output logs (in its cell's `logs/`, or `<state_dir>/logs/`
 * outside cells: `<agent>.log` its stdout, `<agent>.err.log` its stderr, unless `merge_stderr`
 * puts both in `<agent>.log`) across their rotations (`<agent>.log.N` … oldest first), the
 * agent's stdout on this process's stdout and its stderr on this process's stderr, and follows
 * them with `-f`, also through a rotation. It reads files only: it works with or without a daemon.
 * It never writes. Finding and reading the logs are @pit/daemon's (agent-log.ts, shared with the
 * MCP tool `pit_logs`).
 */
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openLogFiles, type LogFile, type LogFilesOptions } from '@pit/cell-spec';
import {
  findAgentLog,
  readLogLines,
  readSteady,
  streamLog,
  type FoundLog,
  type LogStream,
} from '@pit/daemon';
import { RefusedError, UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import type { Output } from '../output.js';

/** Options of `pit logs`. */
export interface LogsOptions {
  /** How many of the last lines to print (of each stream). @default '100' */
  lines?: string;
  follow?: boolean;
  since?: string;
  /** Only the agent's stderr. */
  stderr?: boolean;
}

/** How often `-f` looks for new output (ms). */
const FOLLOW_POLL_MS = 250;
/** The start header the daemon writes before each run: `--- pit: starting NAME at level N (ISO): …`. */
const HEADER = /^--- pit: starting \S+ at level \d \(([^)]+)\)/;

/** One stream being printed: its log, and where its lines go. */
interface Printed {
  log: FoundLog;
  write: (line: string) => void;
}

/**
 * `pit logs AGENT [-n N] [-f] [--since T] [--stderr]`: the agent's output; its stdout's last N
 * lines, then its stderr's (`--stderr`: only those). AGENT is `name`, or `cell/name` (a cell uuid
 * or a unique prefix of one) when several cells have that agent. `mergesStderr` says whether an
 * agent's config puts its stderr in its stdout log (then `--stderr` is refused).
 * @throws {UsageError} for bad options, an ambiguous agent, or `--stderr` of a merged agent.
 * @throws {RefusedError} when no log is found.
 */
export async function logs(
  context: {
    cellsRoot: string;
    stateDir: () => Promise<string>;
    output: Output;
    mergesStderr?: (agent: string) => Promise<boolean>;
  },
  agent: string,
  options: LogsOptions,
  signal?: AbortSignal,
): Promise<number> {
  const count = parseCount(options.lines);
  const sinceMs = options.since === undefined ? undefined : parseSince(options.since, Date.now());
  const found = await findAgentLog({
    cellsRoot: context.cellsRoot,
    stateDir: context.stateDir,
    ref: agent,
  });
  if (!found.ok)
    throw found.reason === 'ambiguous'
      ? new UsageError(found.message)
      : new RefusedError(found.message);
  const { log } = found;
  const name = log.label.split('/').at(-1)!;
  // Asked only for --stderr: without it both files are read, and a merged agent has no .err.log.
  const merged = options.stderr ? ((await context.mergesStderr?.(name)) ?? false) : false;
  if (merged)
    throw new UsageError(
      `--stderr: ${log.label}: stderr is merged into logs/${name}.log for this agent (merge_stderr = true in [agents.${name}] or [logs]); pit logs ${agent} shows both. To keep stderr apart in logs/${name}.err.log, set merge_stderr = false and restart the agent`,
    );
  const streams: LogStream[] = options.stderr ? ['stderr'] : ['stdout', 'stderr'];
  const printed: Printed[] = streams.map((stream) => ({
    log: streamLog(log, stream),
    write: (line) => (stream === 'stderr' ? context.output.err(line) : context.output.out(line)),
  }));
  const positions: Array<FollowPosition | undefined> = [];
  for (const each of printed) {
    const readOptions = readOptionsOf(each.log);
    const { result: initial, mark } = await readSteady(each.log.path, () =>
      readAll(each.log, readOptions, sinceMs, options.follow ?? false),
    );
    const fromSince = sinceMs === undefined ? initial.lines : linesSince(initial.lines, sinceMs);
    for (const line of count === 0 ? fromSince : fromSince.slice(-count)) each.write(line);
    positions.push(initial.position && { ...initial.position, rotated: mark.rotated });
  }
  if (options.follow) await follow(printed, positions, context.output, signal);
  return EXIT.ok;
}

const readOptionsOf = (log: FoundLog): LogFilesOptions => ({
  naming: 'suffix',
  ...(log.beneath !== undefined ? { beneath: log.beneath } : {}),
});

/** Every line of the log's files (those written since `sinceMs`), and where the live file ends. */
async function readAll(
  log: FoundLog,
  readOptions: LogFilesOptions,
  sinceMs: number | undefined,
  follow: boolean,
): Promise<{ lines: string[]; position: ReadEnd | undefined }> {
  const files = await openLogFiles(log.path, readOptions);
  try {
    const lines: string[] = [];
    let position: ReadEnd | undefined;
    for (const file of files) {
      const live = file === files.at(-1);
      if (!live && sinceMs !== undefined && file.mtimeMs < sinceMs) continue;
      // Followed, the live file's partial last line is printed once it is whole.
      const read = await readLogLines(file, 0, !(live && follow));
      if (live)
        position = { ino: file.ino, offset: read.next, print: await printOf(file, read.next) };
      if (live && sinceMs !== undefined && file.mtimeMs < sinceMs) continue;
      lines.push(...read.lines);
    }
    return { lines, position };
  } finally {
    await Promise.all(files.map((file) => file.handle.close().catch(() => undefined)));
  }
}

/** `-n`: a whole number ≥ 0 (0: everything). */
function parseCount(value: string | undefined): number {
  if (value === undefined) return 100;
  if (!/^\d+$/.test(value))
    throw new UsageError(`-n: expected a whole number of lines, got ${JSON.stringify(value)}`);
  return Number(value);
}

/**
 * `--since`: a duration back from now (`90s`, `10m`, `2h`, `1d`) or an ISO-8601 time.
 * @throws {UsageError} for anything else.
 */
export function parseSince(value: string, now: number): number {
  const duration = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(value);
  if (duration) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
      duration[2] as 's' | 'm' | 'h' | 'd'
    ];
    return now - Number(duration[1]) * unit;
  }
  const ms = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms))
    throw new UsageError(
      `--since: expected a duration (90s, 10m, 2h, 1d) or an ISO-8601 time, got ${JSON.stringify(value)}`,
    );
  return ms;
}

/**
 * Agent output carries no timestamps of its own; the daemon's start headers do. The lines kept
 * are the runs started at or after `sinceMs` (from the first such header on); when no run
 * started since, the last run (the one still writing). Files last written before `sinceMs` are
 * skipped before this (nothing in them is newer).
 */
function linesSince(lines: string[], sinceMs: number): string[] {
  let last = 0;
  for (const [index, line] of lines.entries()) {
    const started = HEADER.exec(line)?.[1];
    if (started === undefined) continue;
    if (Date.parse(started) >= sinceMs) return lines.slice(index);
    last = index;
  }
  return lines.slice(last);
}

/** Where a read ended: the file (by inode), the offset, and that file's bytes around it. */
interface ReadEnd {
  ino: number;
  offset: number;
  /** The file's first and last {@link PRINT_BYTES} bytes before `offset` (see {@link printOf}). */
  print: Buffer;
}

/** Where `-f` is: where it has read to, and the `.1` it saw then. */
interface FollowPosition extends ReadEnd {
  rotated: number | undefined;
}

/** Bytes of each end of what was read that tell the copy made of it from later ones. */
const PRINT_BYTES = 64;

/**
 * The bytes of `file` at its start and just before `offset` (up to {@link PRINT_BYTES} each): a
 * copy rotation copies the live file's start unchanged, so the first copy made after a read has
 * them at the same places, and a later copy (of what was written after a cut) almost never does.
 */
async function printOf(file: LogFile, offset: number): Promise<Buffer> {
  const length = Math.min(PRINT_BYTES, offset);
  const print = Buffer.alloc(2 * length);
  const [head, tail] = await Promise.all([
    file.handle.read(print, 0, length, 0),
    file.handle.read(print, length, length, offset - length),
  ]);
  return print.subarray(
    0,
    head.bytesRead === length && tail.bytesRead === length ? print.length : 0,
  );
}

/** Whether `file` holds, up to `end.offset`, what was read up to `end` in another file. */
async function continues(file: LogFile | undefined, end: ReadEnd): Promise<boolean> {
  if (file === undefined || file.size < end.offset || end.print.length === 0) return false;
  return (await printOf(file, end.offset)).equals(end.print);
}

/**
 * The index in `files` (oldest first, the live file last) of the first copy rotation made since
 * `position` was read, -1 when it is gone (removed by `keep`: lines were lost). It is the file
 * after the `.1` seen then, if that file holds what was read (see {@link continues}); else that
 * `.1` was removed, or a later copy was given its inode number, and it is the oldest copy that
 * holds what was read.
 */
async function firstCopySince(files: LogFile[], position: FollowPosition): Promise<number> {
  const seen = files.findIndex((file) => file.ino === position.rotated);
  const next = seen + 1;
  const copies = files.length - 1;
  // Nothing read yet to recognise the copy by: the inode alone tells.
  if (position.print.length === 0) return seen === -1 && position.rotated !== undefined ? -1 : next;
  if (next < copies && (await continues(files[next], position))) return next;
  for (let index = 0; index < copies; index += 1)
    if (await continues(files[index], position)) return index;
  return -1;
}

/**
 * `-f`: prints new whole lines of each stream as they are appended. Each file is followed by
 * inode, through both kinds of rotation: renamed at a start (the live file became
 * `<agent>.log.1`: the rest of it, then the new file from its start), and copied while the agent
 * runs (the live file is the same but no longer holds what was read, or there is a new `.1`: what
 * had not been read is in the first copy made since, from the same offset, then in the later
 * copies and the live file from their starts; see {@link firstCopySince}). A poll during which a rotation happened is
 * read again; one that found no steady moment prints nothing and leaves the next poll to read.
 * Runs until `signal` aborts (or the process is interrupted).
 */
async function follow(
  printed: Printed[],
  start: Array<FollowPosition | undefined>,
  output: Output,
  signal: AbortSignal | undefined,
): Promise<void> {
  const positions = [...start];
  while (!signal?.aborted) {
    for (const [index, each] of printed.entries()) {
      const readOptions = readOptionsOf(each.log);
      const { result, mark, steady } = await readSteady(each.log.path, () =>
        readNew(readOptions, each.log.path, positions[index]),
      );
      // Rotations kept happening under the read: it may repeat lines; the next poll reads again.
      if (!steady) continue;
      if (result.fellBehind)
        output.err(
          `pit logs: ${each.log.label}: ${basename(each.log.path)}: fell behind the rotation; going on from the oldest file left`,
        );
      for (const line of result.lines) each.write(line);
      if (result.position) positions[index] = { ...result.position, rotated: mark.rotated };
    }
    await sleep(FOLLOW_POLL_MS, undefined, signal ? { signal } : {}).catch(() => undefined);
  }
}

/**
 * The lines appended since `position`, where they end, and whether lines were lost (more copy
 * rotations than the files kept since `position`); see {@link follow}, which says so only when
 * the read was steady.
 */
async function readNew(
  readOptions: LogFilesOptions,
  path: string,
  position: FollowPosition | undefined,
): Promise<{ lines: string[]; position: ReadEnd | undefined; fellBehind: boolean }> {
  const files = await openLogFiles(path, readOptions).catch(() => []);
  try {
    const live = files.at(-1);
    let at = position ? files.findIndex((file) => file.ino === position.ino) : 0;
    let offset = position?.offset ?? 0;
    // Copied away while the agent ran (a new `.1`, or the live file no longer holds what was read:
    // a removed file's inode number is given to the next new file, so the `.1` may look the same):
    // read on from the first copy made since.
    if (
      position !== undefined &&
      live?.ino === position.ino &&
      live.index === 0 &&
      (files.find((file) => file.index === 1)?.ino !== position.rotated ||
        (position.print.length > 0 && !(await continues(live, position))))
    )
      at = await firstCopySince(files, position);
    const fellBehind = at === -1;
    if (fellBehind) {
      at = 0;
      offset = 0;
    }
    const lines: string[] = [];
    let last: { file: LogFile; offset: number } | undefined;
    for (const [index, file] of files.entries()) {
      if (index < at) continue;
      const newest = index === files.length - 1;
      const read = await readLogLines(file, index === at ? offset : 0, !newest);
      lines.push(...read.lines);
      last = { file, offset: read.next };
    }
    if (last === undefined) return { lines, position, fellBehind };
    // Nothing new (most polls): the bytes around the same place in the same file are the same.
    const unchanged =
      lines.length === 0 && last.file.ino === position?.ino && last.offset === position.offset;
    const print = unchanged ? position.print : await printOf(last.file, last.offset);
    return { lines, position: { ino: last.file.ino, offset: last.offset, print }, fellBehind };
  } finally {
    await Promise.all(files.map((file) => file.handle.close().catch(() => undefined)));
  }
}
