import { constants, promises as fs } from 'node:fs';
import {
  cellPaths,
  CellUuidSchema,
  discoverCells,
  parseCellEvent,
  type AnyCellEvent,
} from '@pit/cell-spec';

/** One event of a cell's `events.jsonl`, with a cursor to resume after it. */
export interface FeedEvent {
  cell: string;
  /** `<uuid>:<byte offset after this line>`: resuming from it yields the next event exactly. */
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
}

/**
 * Follows cells' `events.jsonl` files: first what is there (from `since` or the resume
 * point), then every new whole line as it is appended. A torn last line is left until its
 * writer finishes it; a line is read by cell-spec's rule (`parseCellEvent`): a kind this
 * version does not know is streamed (`known: false`), a malformed line is skipped. Resuming by `lastEventId` is exact for a
 * single-cell stream; an all-cells stream resumes the named cell exactly and the others from
 * `since`.
 * @example
 * for await (const item of feed({ cell: uuid }, controller.signal)) console.log(item.event.event);
 */
export function createCellEventFeed(options: CellEventFeedOptions): EventFeed {
  const pollMs = options.pollMs ?? 250;
  return async function* feed(query, signal) {
    const sinceMs = parseSince(query.since);
    const resume = parseCursor(query.lastEventId);
    const offsets = new Map<string, number>();
    const pending: FeedEvent[] = [];
    const cellsToFollow = async (): Promise<string[]> => {
      if (query.cell) return [query.cell];
      const discovery = await discoverCells(options.cellsRoot);
      return discovery.supervised.map((cell) => cell.uuid);
    };
    while (!signal.aborted) {
      for (const uuid of await cellsToFollow()) {
        if (!offsets.has(uuid)) offsets.set(uuid, resume?.cell === uuid ? resume.offset : 0);
        const from = offsets.get(uuid)!;
        const { lines, next } = await readNewLines(cellPaths(options.cellsRoot, uuid).events, from);
        offsets.set(uuid, next);
        for (const line of lines) {
          const read = readLine(line.text);
          if (!read) continue;
          const parsed = read.event;
          const before =
            resume?.cell === uuid
              ? false
              : sinceMs !== undefined && Date.parse(parsed.ts) < sinceMs;
          if (before) continue;
          pending.push({ cell: uuid, id: `${uuid}:${line.end}`, event: parsed, known: read.known });
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

/** Reads the whole lines appended since `offset`; a trailing partial line is left for later. */
async function readNewLines(
  path: string,
  offset: number,
): Promise<{ lines: Array<{ text: string; end: number }>; next: number }> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    const { size } = await handle.stat();
    if (size < offset) offset = 0; // the file was replaced: start again
    if (size === offset) return { lines: [], next: offset };
    const buffer = Buffer.alloc(Math.min(size - offset, 8 * 1024 * 1024));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
    const chunk = buffer.subarray(0, bytesRead);
    const lines: Array<{ text: string; end: number }> = [];
    let start = 0;
    for (let index = chunk.indexOf(10); index !== -1; index = chunk.indexOf(10, start)) {
      lines.push({ text: chunk.subarray(start, index).toString('utf8'), end: offset + index + 1 });
      start = index + 1;
    }
    return { lines, next: offset + start };
  } catch {
    return { lines: [], next: offset };
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

function parseSince(since: string | undefined): number | undefined {
  if (since === undefined || since === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(since)) return Number(since) * 1000;
  const ms = Date.parse(since);
  return Number.isNaN(ms) ? undefined : ms;
}

function parseCursor(id: string | undefined): { cell: string; offset: number } | undefined {
  const match = id ? /^([0-9a-f-]{36}):(\d+)$/.exec(id) : null;
  if (!match || !CellUuidSchema.safeParse(match[1]).success) return undefined;
  return { cell: match[1]!, offset: Number(match[2]) };
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
