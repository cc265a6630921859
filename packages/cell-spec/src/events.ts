/**
 * Appending to and streaming `events.jsonl`: whole lines, validated against the one list of
 * event kinds (`event-kinds.ts`) on the way in, read back tolerantly on the way out.
 */
import { promises as fs, constants } from 'node:fs';
import { openFileBeneath } from './beneath.js';
import { CellError, toCellError } from './errors.js';
import { formatIssues } from './format-issues.js';
import { openLogFiles, rotateLogFiles, type LogRotationLimits } from './log-rotation.js';
import {
  AnyCellEventSchema,
  CellEventSchema,
  isCellEventKind,
  parseCellEvent,
  type AnyCellEvent,
  type CellEvent,
  type CellEventInput,
  type KnownCellEvent,
} from './event-kinds.js';

/** A single event line larger than this is refused (it could not be appended atomically). */
export const EVENT_LINE_MAX_BYTES = 64 * 1024;

/**
 * Validates an event and renders it as one line. The event must be of a known kind with
 * exactly its fields (see {@link CellEventSchema}); an unknown kind or field is refused.
 * @throws {CellError} CELL_INVALID naming the kind and field; CELL_TOO_LARGE over 64 KiB.
 */
export function serializeEvent(
  input: CellEventInput,
  where = 'event',
  now: () => Date = () => new Date(),
): string {
  const candidate: unknown = { ...input, ts: input.ts ?? now().toISOString() };
  const kind: unknown = (input as { event?: unknown }).event;
  if (!isCellEventKind(kind))
    throw new CellError(
      'CELL_INVALID',
      `${where}: event: ${JSON.stringify(kind)} is not a known event kind (see CELL_EVENT_KINDS)`,
    );
  const parsed = CellEventSchema.safeParse(candidate);
  if (!parsed.success)
    throw new CellError('CELL_INVALID', `${where}: ${kind}: ${formatIssues(parsed.error)}`);
  const line = `${JSON.stringify(parsed.data)}\n`;
  if (Buffer.byteLength(line) > EVENT_LINE_MAX_BYTES)
    throw new CellError(
      'CELL_TOO_LARGE',
      `${where}: ${kind}: line of ${Buffer.byteLength(line)} bytes exceeds ${EVENT_LINE_MAX_BYTES}`,
    );
  return line;
}

/** A line of another log in the same format (`{ ts, event, ... }`), such as the bus audit trail. */
export interface LogRecordInput {
  event: string;
  ts?: string;
  [field: string]: unknown;
}

/**
 * Renders one record of a JSON-lines log that shares `events.jsonl`'s line format but not its
 * kinds (the mission bus's `audit.jsonl`): `ts` (filled in) and a snake_case `event` are
 * checked, nothing else. Never use it for `events.jsonl`: {@link serializeEvent} is for that.
 * @throws {CellError} CELL_INVALID; CELL_TOO_LARGE over 64 KiB.
 */
export function serializeLogRecord(
  input: LogRecordInput,
  where = 'log',
  now: () => Date = () => new Date(),
): string {
  const parsed = AnyCellEventSchema.safeParse({ ...input, ts: input.ts ?? now().toISOString() });
  if (!parsed.success)
    throw new CellError('CELL_INVALID', `${where}: ${formatIssues(parsed.error)}`);
  const line = `${JSON.stringify(parsed.data)}\n`;
  if (Buffer.byteLength(line) > EVENT_LINE_MAX_BYTES)
    throw new CellError(
      'CELL_TOO_LARGE',
      `${where}: ${parsed.data.event}: line of ${Buffer.byteLength(line)} bytes exceeds ${EVENT_LINE_MAX_BYTES}`,
    );
  return line;
}

/** Options of {@link appendEvent}. */
export interface AppendEventOptions {
  /** fsync after the write (durable across power loss; slower). @default false */
  fsync?: boolean;
  /** Clock for a missing `ts`. */
  now?: () => Date;
  /**
   * A directory (the cell) that `eventsPath` lies beneath: every component from it down is
   * opened without following a symbolic link (see `openFileBeneath`), so a `logs/` swapped
   * for a link is refused (`CELL_UNSAFE_PATH`) instead of written through. Without it only
   * the last component is checked.
   */
  beneath?: string;
  /**
   * Rotate the log by size: when this line would take `events.jsonl` over `maxBytes`, the file
   * is renamed to `events.1.jsonl` (older ones shifted, at most `keep` files in all) and the
   * line starts a fresh file. Only one process should rotate a log (the daemon); other writers
   * leave this out. Lines are never split between files. @default no rotation
   */
  rotate?: LogRotationLimits;
}

/**
 * Appends one event as one whole line (`O_APPEND`, a single write), so concurrent
 * appenders in several processes never interleave within a line. Fills in `ts`.
 * @returns the event as written.
 * @throws {CellError} CELL_INVALID for a bad event (nothing written); CELL_IO.
 * @example
 * await appendEvent(cellPaths(dir).events, { event: 'agent_dead', agent: 'forge', reason: 'heartbeat stale 95 s', failing: ['heartbeat'] });
 */
export async function appendEvent(
  eventsPath: string,
  input: CellEventInput,
  options: AppendEventOptions = {},
): Promise<CellEvent> {
  const line = serializeEvent(input, eventsPath, options.now);
  const appender = createEventAppender(eventsPath, options);
  try {
    await appender.appendLine(line);
  } finally {
    await appender.close();
  }
  return JSON.parse(line) as CellEvent;
}

/** A kept-open appender for a hot path (one open per many appends). */
export interface EventAppender {
  /** Validates and appends one event. */
  append(input: CellEventInput): Promise<CellEvent>;
  /** Appends a line already produced by {@link serializeEvent}. */
  appendLine(line: string): Promise<void>;
  close(): Promise<void>;
}

/** Read-write: the last byte is read before each append to find a torn tail. O_NONBLOCK: a FIFO planted at the path must not hang the open; it is refused. */
const APPEND_FLAGS =
  constants.O_RDWR |
  constants.O_APPEND |
  constants.O_CREAT |
  constants.O_NOFOLLOW |
  constants.O_NONBLOCK;

async function openForAppend(eventsPath: string, beneath?: string): Promise<fs.FileHandle> {
  if (beneath !== undefined)
    return openFileBeneath(beneath, eventsPath, { flags: APPEND_FLAGS }).catch((error: unknown) => {
      throw toCellError(error, eventsPath, 'open for append');
    });
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(eventsPath, APPEND_FLAGS, 0o644);
    const stat = await handle.stat();
    if (!stat.isFile())
      throw new CellError(
        'CELL_UNSAFE_PATH',
        `${eventsPath}: expected a regular file to append events to; refused`,
      );
    return handle;
  } catch (error) {
    await handle?.close().catch(() => undefined);
    throw toCellError(error, eventsPath, 'open for append');
  }
}

/**
 * Opens `events.jsonl` for appending, keeping the descriptor open across calls (one open for
 * many appends). Each append is still one whole line in one `write()`. The file is opened on
 * the first append; a symlink or a non-regular file there is refused.
 * @example
 * const log = createEventAppender(cellPaths(dir).events);
 * try { await log.append({ event: 'heartbeat', agent: 'forge', cycle: 3 }); } finally { await log.close(); }
 */
export function createEventAppender(
  eventsPath: string,
  options: AppendEventOptions = {},
): EventAppender {
  let handlePromise: Promise<fs.FileHandle> | undefined;
  const open = () =>
    (handlePromise ??= openForAppend(eventsPath, options.beneath).catch((error: unknown) => {
      handlePromise = undefined;
      throw error;
    }));
  const appendLine = async (line: string) => {
    const handle = await open();
    try {
      let target = handle;
      if (options.rotate && (await wouldExceed(handle, line, options.rotate.maxBytes))) {
        await close();
        await rotateLogFiles(eventsPath, {
          keep: options.rotate.keep,
          ...(options.beneath !== undefined ? { beneath: options.beneath } : {}),
        });
        target = await open();
      }
      // A writer that died mid-line left a torn tail: end it first, so this event is not merged into it.
      const buffer = Buffer.from((await endsTorn(target)) ? `\n${line}` : line);
      // One write() of the whole line: with O_APPEND the kernel places it atomically at the end.
      const { bytesWritten } = await target.write(buffer, 0, buffer.length);
      if (bytesWritten !== buffer.length)
        throw new Error(`short write: ${bytesWritten} of ${buffer.length} bytes`);
      if (options.fsync) await target.sync();
    } catch (error) {
      throw toCellError(error, eventsPath, 'append');
    }
  };
  return {
    appendLine,
    async append(input) {
      const line = serializeEvent(input, eventsPath, options.now);
      await appendLine(line);
      return JSON.parse(line) as CellEvent;
    },
    close,
  };
  async function close() {
    const pending = handlePromise;
    handlePromise = undefined;
    if (pending) await (await pending.catch(() => undefined))?.close();
  }
}

/** Whether appending `line` would take a non-empty file over `maxBytes`. */
async function wouldExceed(handle: fs.FileHandle, line: string, maxBytes: number) {
  const { size } = await handle.stat();
  return size > 0 && size + Buffer.byteLength(line) + 1 > maxBytes;
}

/** Whether the file's last byte is not a newline (a torn last line); an empty file is not torn. */
async function endsTorn(handle: fs.FileHandle): Promise<boolean> {
  const { size } = await handle.stat();
  if (size === 0) return false;
  const last = Buffer.alloc(1);
  const { bytesRead } = await handle.read(last, 0, 1, size - 1);
  return bytesRead === 1 && last[0] !== 10;
}

/** One line read back from `events.jsonl`. */
export type EventLogEntry =
  | {
      ok: true;
      /** 1-based line number. */
      line: number;
      /** Byte offset of the line's start. */
      offset: number;
      /** The kind is one this version knows, and the line has its fields (extra ones kept). */
      known: true;
      event: KnownCellEvent;
    }
  | {
      ok: true;
      line: number;
      offset: number;
      /** A kind this version does not know (an agent's, or a newer writer's): kept whole. */
      known: false;
      event: AnyCellEvent;
    }
  | {
      ok: false;
      line: number;
      offset: number;
      /** `true` for a last line without its newline (a writer died mid-line, or is writing it now). */
      torn: boolean;
      /** What is wrong, naming the field and what was expected. */
      reason: string;
      /** The line as read (at most its first 4 KiB). */
      raw: string;
    };

/** Options of {@link readEvents}. */
export interface ReadEventsOptions {
  /** Start reading at this byte offset (a line start from an earlier read). @default 0 */
  fromOffset?: number;
  /** Line number of the line at `fromOffset`. @default 1 */
  fromLine?: number;
  /** Read size (bytes). @default 65536 */
  highWaterMark?: number;
  /**
   * A line longer than this is reported as a problem without being buffered whole, so a
   * corrupt log without newlines cannot exhaust memory. @default 1048576 (bytes)
   */
  maxLineBytes?: number;
}

/** How much of a bad line is kept in `raw`. */
const RAW_KEEP_BYTES = 4096;

/**
 * Streams `events.jsonl`, yielding each line as a parsed event or as a problem with its line
 * number (malformed JSON, a bad event, an oversized line, a torn last line). Never loads the
 * whole file; never throws away good lines because of a bad one. An event kind this version
 * does not know is yielded with `known: false`, not rejected. A zero-length line is skipped (its
 * number still counts): appenders end a torn last line before theirs, and one that saw another
 * writer's line still landing leaves an empty line, never a merged one.
 * @throws {CellError} CELL_NOT_FOUND / CELL_UNSAFE_PATH / CELL_IO when the file cannot be opened.
 * @example
 * for await (const entry of readEvents(paths.events)) {
 *   if (entry.ok) console.log(entry.event.event); else console.warn(`line ${entry.line}: ${entry.reason}`);
 * }
 */
export async function* readEvents(
  eventsPath: string,
  options: ReadEventsOptions = {},
): AsyncGenerator<EventLogEntry> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(
      eventsPath,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
    const stat = await handle.stat();
    if (!stat.isFile())
      throw new CellError(
        'CELL_UNSAFE_PATH',
        `${eventsPath}: expected a regular file of events; refused`,
      );
  } catch (error) {
    await handle?.close().catch(() => undefined);
    throw toCellError(error, eventsPath, 'read events');
  }
  yield* readOpenEvents(handle, eventsPath, options);
}

/** One line of a rotated event log, with the file it was read from. */
export type EventLogFileEntry = EventLogEntry & {
  /** The file's path when it was opened (`events.jsonl`, `events.1.jsonl`, …). */
  path: string;
};

/**
 * Streams a whole event log across its rotations: `events.N.jsonl` … `events.1.jsonl`, then
 * `events.jsonl`, oldest first (see {@link readEvents} for how each line is read). The files
 * are all opened before the first line is read (see `openLogFiles`), so a rotation while
 * reading neither repeats nor skips an event. A log with no file at all yields nothing.
 * @throws {CellError} CELL_UNSAFE_PATH / CELL_IO when a file cannot be opened.
 * @example
 * for await (const entry of readEventLog(cellPaths(dir).events)) if (entry.ok) console.log(entry.event.event);
 */
export async function* readEventLog(
  eventsPath: string,
  options: Omit<ReadEventsOptions, 'fromOffset' | 'fromLine'> & { beneath?: string } = {},
): AsyncGenerator<EventLogFileEntry> {
  const { beneath, ...readOptions } = options;
  const files = await openLogFiles(eventsPath, beneath === undefined ? {} : { beneath });
  try {
    while (files.length > 0) {
      const file = files.shift()!;
      for await (const entry of readOpenEvents(file.handle, file.path, readOptions))
        yield { ...entry, path: file.path };
    }
  } finally {
    await Promise.all(files.map((file) => file.handle.close().catch(() => undefined)));
  }
}

/** {@link readEvents} of a file already open; closes it. */
async function* readOpenEvents(
  handle: fs.FileHandle,
  eventsPath: string,
  options: ReadEventsOptions,
): AsyncGenerator<EventLogEntry> {
  const maxLineBytes = options.maxLineBytes ?? 1024 * 1024;
  const chunkBytes = options.highWaterMark ?? 64 * 1024;
  let position = options.fromOffset ?? 0;
  const file = handle;
  // Plain positioned reads into a fresh buffer each time (lines keep slices of it).
  async function* chunks(): AsyncGenerator<Buffer> {
    for (;;) {
      const buffer = Buffer.allocUnsafe(chunkBytes);
      let bytesRead: number;
      try {
        ({ bytesRead } = await file.read(buffer, 0, chunkBytes, position));
      } catch (error) {
        throw toCellError(error, eventsPath, 'read events');
      }
      if (bytesRead === 0) return;
      position += bytesRead;
      yield bytesRead === chunkBytes ? buffer : buffer.subarray(0, bytesRead);
    }
  }
  let lineNumber = options.fromLine ?? 1;
  let offset = options.fromOffset ?? 0;
  // The part of the current line read so far (unless it is oversized: then only its head).
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let oversizedHead: Buffer | undefined;
  try {
    for await (const chunk of chunks()) {
      let start = 0;
      for (;;) {
        const newline = chunk.indexOf(10, start);
        if (newline === -1) break;
        const lineBytes = pendingBytes + newline - start;
        let entry: EventLogEntry;
        if (oversizedHead !== undefined || lineBytes > maxLineBytes) {
          const head =
            oversizedHead ??
            Buffer.concat([...pending, chunk.subarray(start, newline)]).subarray(0, RAW_KEEP_BYTES);
          entry = {
            ok: false,
            line: lineNumber,
            offset,
            torn: false,
            reason: `line of ${lineBytes} bytes exceeds the limit of ${maxLineBytes} bytes`,
            raw: head.toString('utf8'),
          };
        } else {
          const piece = chunk.subarray(start, newline);
          const lineBuffer = pending.length ? Buffer.concat([...pending, piece]) : piece;
          entry = parseLine(lineBuffer.toString('utf8'), lineNumber, offset);
        }
        pending = [];
        pendingBytes = 0;
        oversizedHead = undefined;
        // A zero-length line carries nothing: an appender ended what looked like a torn tail while another writer's line was still landing.
        if (lineBytes > 0) yield entry;
        offset += lineBytes + 1;
        lineNumber += 1;
        start = newline + 1;
      }
      if (start < chunk.length) {
        const rest = chunk.subarray(start);
        if (oversizedHead === undefined && pendingBytes + rest.length > maxLineBytes) {
          oversizedHead = Buffer.concat([...pending, rest]).subarray(0, RAW_KEEP_BYTES);
          pending = [];
        } else if (oversizedHead === undefined) {
          pending.push(rest);
        }
        pendingBytes += rest.length;
      }
    }
    if (pendingBytes > 0) {
      const raw = (oversizedHead ?? Buffer.concat(pending)).toString('utf8');
      yield {
        ok: false,
        line: lineNumber,
        offset,
        torn: true,
        reason: `torn last line (${pendingBytes} bytes without a trailing newline)`,
        raw,
      };
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function keep(text: string): string {
  return text.length > RAW_KEEP_BYTES ? `${text.slice(0, RAW_KEEP_BYTES)}…` : text;
}

function parseLine(text: string, line: number, offset: number): EventLogEntry {
  if (text.trim() === '')
    return { ok: false, line, offset, torn: false, reason: 'empty line', raw: text };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return {
      ok: false,
      line,
      offset,
      torn: false,
      reason: `not valid JSON: ${(error as Error).message}`,
      raw: keep(text),
    };
  }
  const parsed = parseCellEvent(raw);
  if (!parsed.ok)
    return { ok: false, line, offset, torn: false, reason: parsed.reason, raw: keep(text) };
  return parsed.known
    ? { ok: true, line, offset, known: true, event: parsed.event }
    : { ok: true, line, offset, known: false, event: parsed.event };
}
