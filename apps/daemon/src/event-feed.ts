import {
  cellPaths,
  CellUuidSchema,
  discoverCells,
  openLogFile,
  openLogFiles,
  parseCellEvent,
  type AnyCellEvent,
  type LogFile,
  type Logger,
} from '@pit/cell-spec';

/** One event of a cell's `events.jsonl`, with a cursor to resume after it. */
export interface FeedEvent {
  cell: string;
  /**
   * `<uuid>:<inode of the file>:<byte offset after this line>`: resuming from it yields the next
   * event exactly, across rotations of the log (as long as that file is still kept).
   */
  id: string;
  /** A known kind (checked against @pit/cell-spec's list) or one this version does not know. */
  event: AnyCellEvent;
  /** Whether the kind is in `CELL_EVENT_KINDS`; an unknown kind is streamed all the same. */
  known: boolean;
}

/** What a subscriber asks for. */
export interface FeedQuery {
  /** One cell's uuid; all supervised cells when absent. */
  cell?: string;
  /** Only events at or after this time (ISO-8601 or unix seconds). */
  since?: string;
  /** An `id` from an earlier event (SSE `Last-Event-ID`): resume right after it. */
  lastEventId?: string;
}

/** A source of cell events for the HTTP `/api/events` stream. */
export type EventFeed = (query: FeedQuery, signal: AbortSignal) => AsyncIterable<FeedEvent>;

/** Options of {@link createCellEventFeed}. */
export interface CellEventFeedOptions {
  cellsRoot: string;
  /** How often files are checked for new lines (and the root for new cells). @default 250 (ms) */
  pollMs?: number;
  /** A longer line is skipped, and said at `warn`, instead of stalling the feed. @default 1048576 (bytes, as `pit why`) */
  maxLineBytes?: number;
  /** Where skipped lines are reported. */
  logger?: Logger;
}

/**
 * Follows cells' `events.jsonl` files: first what is there (from the oldest rotated file, or the
 * first written at or after `since`, or the resume point), then every new whole line as it is
 * appended. A rotation is followed: the rest of the renamed file is read, then the new one from
 * its start, so no event is skipped or repeated (unless the feed falls more than `keep` files
 * behind: then it says so at `warn` and goes on from the oldest file left). A torn last line is left until its
 * writer finishes it; a line is read by cell-spec's rule (`parseCellEvent`): a kind this
 * version does not know is streamed (`known: false`), a malformed line is skipped, and so is a
 * line over `maxLineBytes` (reported). Reads are bounded: a poll reads at most 4 MiB of a file
 * in 64 KiB chunks, and keeps at most `maxLineBytes` of an unfinished line. Resuming by `lastEventId` is exact for a
 * single-cell stream; an all-cells stream resumes the named cell exactly and the others from
 * `since`.
 * @example
 * for await (const item of feed({ cell: uuid }, controller.signal)) console.log(item.event.event);
 */
export function createCellEventFeed(options: CellEventFeedOptions): EventFeed {
  const pollMs = options.pollMs ?? 250;
  const maxLineBytes = options.maxLineBytes ?? 1024 * 1024;
  return async function* feed(query, signal) {
    const sinceMs = parseSince(query.since);
    const resume = parseCursor(query.lastEventId);
    const cursors = new Map<string, FileCursor>();
    const pending: FeedEvent[] = [];
    const cellsToFollow = async (): Promise<string[]> => {
      if (query.cell) return [query.cell];
      const discovery = await discoverCells(options.cellsRoot);
      return discovery.supervised.map((cell) => cell.uuid);
    };
    while (!signal.aborted) {
      for (const uuid of await cellsToFollow()) {
        let cursor = cursors.get(uuid);
        if (!cursor) {
          cursor =
            resume?.cell === uuid
              ? { offset: resume.offset, ...(resume.ino !== undefined ? { ino: resume.ino } : {}) }
              : { offset: 0, ...(sinceMs !== undefined ? { sinceMs } : {}), fromOldest: true };
          cursors.set(uuid, cursor);
        }
        const paths = cellPaths(options.cellsRoot, uuid);
        const path = paths.events;
        const lines = await readNewLines(path, cursor, {
          // Reached from the cell without following a link at any component (an agent's `logs/`).
          beneath: paths.dir,
          maxLineBytes,
          onSkip: (skip) =>
            options.logger?.warn('event feed skipped an over-long line', {
              path,
              offset: skip.offset,
              bytes: skip.bytes,
              limit: maxLineBytes,
            }),
          onLost: () =>
            options.logger?.warn('event feed fell behind the rotation: older lines are gone', {
              path,
            }),
        });
        for (const line of lines) {
          const read = readLine(line.text);
          if (!read) continue;
          const parsed = read.event;
          const before =
            resume?.cell === uuid
              ? false
              : sinceMs !== undefined && Date.parse(parsed.ts) < sinceMs;
          if (before) continue;
          pending.push({
            cell: uuid,
            id: `${uuid}:${line.ino}:${line.end}`,
            event: parsed,
            known: read.known,
          });
        }
      }
      pending.sort((a, b) => a.event.ts.localeCompare(b.event.ts));
      while (pending.length > 0) {
        if (signal.aborted) return;
        yield pending.shift()!;
      }
      await sleep(pollMs, signal);
    }
  };
}

function readLine(text: string): { event: AnyCellEvent; known: boolean } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = parseCellEvent(value);
  return parsed.ok ? { event: parsed.event, known: parsed.known } : undefined;
}

/** Where a feed is in one cell's log: the file (by inode, whatever it is called now) and the start of its next line. */
interface FileCursor {
  /** The inode of the file being read; unset until the first read. */
  ino?: number;
  /** Byte offset of the next line to read. */
  offset: number;
  /** Set while the line at `offset` is over-long: scanning for its end resumes here. */
  skippedTo?: number;
  /** Before the first read: start at the log's oldest file (or the oldest written at or after `sinceMs`), not the live one. */
  fromOldest?: boolean;
  sinceMs?: number;
}

/** Read size, and how much of one log a poll reads at most (the rest waits for the next poll). */
const CHUNK_BYTES = 64 * 1024;
const POLL_BUDGET_BYTES = 4 * 1024 * 1024;

interface ReadLimits {
  /** The cell: every component from it down to the log is opened without following a link. */
  beneath: string;
  maxLineBytes: number;
  onSkip: (skip: { offset: number; bytes: number }) => void;
  /** The file the cursor was in has been rotated away before it was read to its end. */
  onLost: () => void;
}

type FeedLine = { text: string; end: number; ino: number };

/**
 * Reads the whole lines appended to a log since the cursor, across its rotations: the cursor
 * names its file by inode, so when the live file has been renamed to `events.1.jsonl` the rest
 * of it is read there, then the newer files in order, each from its start. In the usual case
 * (no rotation since the last poll) only the live file is opened.
 */
async function readNewLines(
  path: string,
  cursor: FileCursor,
  limits: ReadLimits,
): Promise<FeedLine[]> {
  const lines: FeedLine[] = [];
  let files: LogFile[] = [];
  try {
    files = await filesToRead(path, cursor, limits);
    let budget = POLL_BUDGET_BYTES;
    for (const [index, file] of files.entries()) {
      if (file.ino !== cursor.ino)
        Object.assign(cursor, { ino: file.ino, offset: 0, skippedTo: undefined });
      const read = await readFileLines(file, cursor, limits, { lines, budget });
      budget -= read.bytes;
      if (!read.atEnd || budget <= 0 || index === files.length - 1) break;
    }
  } catch {
    // Unreadable now (missing, replaced by a link): nothing new; tried again at the next poll.
  } finally {
    await Promise.all(files.map((file) => file.handle.close().catch(() => undefined)));
  }
  return lines;
}

/** The files a poll reads, oldest first, starting with the cursor's own. */
async function filesToRead(path: string, cursor: FileCursor, limits: ReadLimits) {
  const live = await openLogFile(path, 0, { beneath: limits.beneath });
  if (live && cursor.ino === undefined && !cursor.fromOldest) cursor.ino = live.ino;
  if (live && cursor.ino === live.ino) return [live];
  await live?.handle.close();
  const files = await openLogFiles(path, { beneath: limits.beneath });
  if (files.length === 0) return files;
  let at = files.findIndex((file) => file.ino === cursor.ino);
  if (cursor.ino === undefined) {
    // A first read: skip whole files last written before `since` (their events are all older).
    at = files.findIndex((file) => cursor.sinceMs === undefined || file.mtimeMs >= cursor.sinceMs);
    if (at === -1) at = files.length - 1;
    Object.assign(cursor, { ino: files[at]!.ino, offset: 0, fromOldest: false });
  } else if (at === -1) {
    limits.onLost();
    at = 0;
    Object.assign(cursor, { ino: files[0]!.ino, offset: 0, skippedTo: undefined });
  }
  await Promise.all(files.slice(0, at).map((file) => file.handle.close()));
  return files.slice(at);
}

/**
 * Reads the whole lines of one open file from the cursor, in bounded chunks. A trailing partial
 * line is left for later (read again from its start, so never more than `maxLineBytes` of it); a
 * line longer than `maxLineBytes` is skipped (its bytes are scanned once, not kept) and reported.
 */
async function readFileLines(
  file: LogFile,
  cursor: FileCursor,
  limits: ReadLimits,
  into: { lines: FeedLine[]; budget: number },
): Promise<{ bytes: number; atEnd: boolean }> {
  const { handle, size, ino } = file;
  if (size < cursor.offset) Object.assign(cursor, { offset: 0, skippedTo: undefined }); // truncated: start again
  let position = cursor.skippedTo ?? cursor.offset;
  const first = position;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const buffer = Buffer.alloc(CHUNK_BYTES);
  const stop = Math.min(size, position + into.budget);
  while (position < stop) {
    const { bytesRead } = await handle.read(
      buffer,
      0,
      Math.min(CHUNK_BYTES, stop - position),
      position,
    );
    if (bytesRead === 0) break;
    const chunk = buffer.subarray(0, bytesRead);
    let start = 0;
    for (let index = chunk.indexOf(10); index !== -1; index = chunk.indexOf(10, start)) {
      const end = position + index + 1;
      if (cursor.skippedTo !== undefined) {
        limits.onSkip({ offset: cursor.offset, bytes: end - 1 - cursor.offset });
        cursor.skippedTo = undefined;
      } else {
        const piece = chunk.subarray(start, index);
        const text = pending.length ? Buffer.concat([...pending, piece]) : piece;
        into.lines.push({ text: text.toString('utf8'), end, ino });
      }
      pending = [];
      pendingBytes = 0;
      cursor.offset = end;
      start = index + 1;
    }
    position += bytesRead;
    if (cursor.skippedTo !== undefined) cursor.skippedTo = position;
    else if (start < bytesRead) {
      pending.push(Buffer.from(chunk.subarray(start)));
      pendingBytes += bytesRead - start;
      if (pendingBytes > limits.maxLineBytes) {
        cursor.skippedTo = position;
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  return { bytes: position - first, atEnd: position >= size };
}

function parseSince(since: string | undefined): number | undefined {
  if (since === undefined || since === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(since)) return Number(since) * 1000;
  const ms = Date.parse(since);
  return Number.isNaN(ms) ? undefined : ms;
}

/** An event id: `<uuid>:<inode>:<offset>`, or `<uuid>:<offset>` (the live file) from older daemons. */
function parseCursor(
  id: string | undefined,
): { cell: string; ino?: number; offset: number } | undefined {
  const match = id ? /^([0-9a-f-]{36}):(?:(\d+):)?(\d+)$/.exec(id) : null;
  if (!match || !CellUuidSchema.safeParse(match[1]).success) return undefined;
  return {
    cell: match[1]!,
    offset: Number(match[3]),
    ...(match[2] !== undefined ? { ino: Number(match[2]) } : {}),
  };
}

/** Whether `since` is a usable value (for HTTP validation). */
export function isValidSince(since: string): boolean {
  return parseSince(since) !== undefined;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
