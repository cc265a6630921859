import { constants, promises as fs, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir, formatIssues, readEvents, writeFileAtomic } from '@pit/cell-spec';
import { BusEventSchema, type BusEvent } from './bus-event.js';
import type { FsyncPolicy } from './config.js';
import { BusError, toBusError } from './errors.js';
import type { OwnedBusEventLog } from './event-log.js';
import type { BusLogger } from './logger.js';

/** A torn or unreadable last line found when the log was opened, and what was done about it. */
export interface LogRepair {
  /** The segment file it was found in. */
  segment: string;
  /** 1-based line number of the removed line. */
  line: number;
  /** Byte offset the segment was truncated to. */
  offset: number;
  /** How many bytes were removed. */
  bytes: number;
  /** What was wrong with the line. */
  reason: string;
  /** The file the removed bytes were saved to (nothing is thrown away unseen). */
  savedTo: string;
}

/** An event with its JSON line as stored. */
export interface StoredEvent {
  event: BusEvent;
  line: string;
  /** The wire frame of the event, built once for all subscribers. */
  frame?: string;
}

interface Mark {
  seq: number;
  offset: number;
  line: number;
}

interface Segment {
  path: string;
  firstSeq: number;
  /** `firstSeq - 1` while empty. */
  lastSeq: number;
  bytes: number;
  lines: number;
  /** Every {@link MARK_EVERY}th event's byte offset, so a read need not scan a segment from its start. */
  marks: Mark[];
}

interface QueuedLine {
  seq: number;
  data: Buffer;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export const SEGMENT_PATTERN = /^stream-(\d{20})\.jsonl$/;
const MARK_EVERY = 256;
/** The most bytes written in one write() call. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/** Lines longer than this are never buffered whole when reading (the largest `max_event_bytes`). */
const READ_MAX_LINE_BYTES = 64 * 1024 * 1024 + 1;

/** The file name of the segment whose first event is `firstSeq`. */
export function segmentFileName(firstSeq: number): string {
  return `stream-${String(firstSeq).padStart(20, '0')}.jsonl`;
}

/** Options of {@link SegmentLog.open}. */
export interface SegmentLogOptions {
  /** The bus directory holding the segments. */
  dir: string;
  fsync: FsyncPolicy;
  /** Rotate once the active segment reaches this size (bytes). */
  segmentMaxBytes: number;
  logger: BusLogger;
  /** Called for every event found while opening, in order. */
  onEvent: (event: BusEvent) => void;
  /** Clock for naming saved torn bytes. */
  now: () => Date;
}

/**
 * The durable part of a bus: append-only JSONL segments `stream-<first seq>.jsonl` in the
 * bus directory, written by one writer with group commit and the configured fsync policy.
 * Appends resolve in sequence order once as durable as the policy promises.
 */
export class SegmentLog implements OwnedBusEventLog {
  /** An owned log: this bus is its only writer. */
  readonly kind = 'owned' as const;
  private readonly segments: Segment[];
  private handle: fs.FileHandle;
  private queue: QueuedLine[] = [];
  private draining: Promise<void> | undefined;
  private nextSeq: number;
  private dirty = false;
  private syncing: Promise<void> | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private closing = false;
  /** Set once a write or fsync failed: the log refuses everything after it. */
  failure: BusError | undefined;

  private constructor(
    private readonly options: SegmentLogOptions,
    segments: Segment[],
    handle: fs.FileHandle,
  ) {
    this.segments = segments;
    this.handle = handle;
    this.nextSeq = (segments.at(-1)?.lastSeq ?? 0) + 1;
  }

  /**
   * Opens (or creates) the log in `options.dir`: checks every segment, feeds each event to
   * `onEvent`, repairs a torn or unreadable last line of the last segment by saving its bytes
   * beside it (`<segment>.torn-<offset>`) and truncating, and reports each repair.
   * @throws {BusError} BUS_CORRUPT when a segment is missing, a line in the middle is bad, or
   *   sequence numbers do not follow each other; BUS_IO.
   */
  static async open(
    options: SegmentLogOptions,
  ): Promise<{ log: SegmentLog; repairs: LogRepair[] }> {
    const { dir } = options;
    let names: string[];
    try {
      names = (await fs.readdir(dir)).filter((name) => SEGMENT_PATTERN.test(name)).sort();
    } catch (error) {
      throw toBusError(error, dir);
    }
    const segments: Segment[] = [];
    const repairs: LogRepair[] = [];
    let expected = 1;
    for (const [index, name] of names.entries()) {
      const path = join(dir, name);
      const firstSeq = Number(SEGMENT_PATTERN.exec(name)?.[1]);
      if (firstSeq !== expected) {
        throw new BusError(
          'BUS_CORRUPT',
          `${path}: starts at seq ${firstSeq}, expected ${expected} (a segment is missing or misnamed)`,
        );
      }
      const segment = await scanSegment(
        path,
        firstSeq,
        index === names.length - 1,
        options,
        repairs,
      );
      segments.push(segment);
      expected = segment.lastSeq + 1;
    }
    let handle: fs.FileHandle;
    try {
      if (segments.length === 0) segments.push(emptySegment(join(dir, segmentFileName(1)), 1));
      const active = segments.at(-1) as Segment;
      handle = await fs.open(
        active.path,
        constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
        0o644,
      );
      if (names.length === 0) await fsyncDir(dir);
    } catch (error) {
      throw toBusError(error, dir);
    }
    return { log: new SegmentLog(options, segments, handle), repairs };
  }

  /** The last sequence number written or queued. */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** The segment files, oldest first. */
  segmentPaths(): string[] {
    return this.segments.map((segment) => segment.path);
  }

  /**
   * Appends one event line (without its newline). `seq` must be the next sequence number.
   * Resolves once the line is as durable as the fsync policy promises; appends resolve in order.
   * @throws {BusError} BUS_CLOSED after close or a failure; BUS_IO when the write fails.
   */
  append(seq: number, line: string): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing)
      return Promise.reject(new BusError('BUS_CLOSED', `${this.options.dir}: the log is closed`));
    if (seq !== this.nextSeq)
      return Promise.reject(
        new BusError(
          'BUS_CORRUPT',
          `${this.options.dir}: append of seq ${seq}, expected ${this.nextSeq}`,
        ),
      );
    this.nextSeq += 1;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ seq, data: Buffer.from(`${line}\n`, 'utf8'), resolve, reject });
      // Coalesce everything appended in this tick (e.g. all frames of one socket read) into one write.
      this.draining ??= new Promise<void>((done) => process.nextTick(done)).then(() =>
        this.drain(),
      );
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.failure) {
        const active = this.segments.at(-1) as Segment;
        if (active.bytes >= this.options.segmentMaxBytes && active.lastSeq >= active.firstSeq) {
          try {
            await this.rotate();
          } catch (error) {
            this.fail(toBusError(error, active.path));
            return;
          }
        }
        const batch = this.takeBatch(
          Math.max(1, this.options.segmentMaxBytes - (this.segments.at(-1) as Segment).bytes),
        );
        const segment = this.segments.at(-1) as Segment;
        try {
          const data =
            batch.length === 1
              ? (batch[0] as QueuedLine).data
              : Buffer.concat(batch.map((item) => item.data));
          // A synchronous write: appending to the page cache takes microseconds, and skipping the
          // thread pool keeps an acknowledgement in the same turn of the event loop as its publish.
          writeAllSync(this.handle.fd, data);
          this.dirty = true;
          let offset = segment.bytes;
          for (const item of batch) {
            segment.lines += 1;
            if ((item.seq - segment.firstSeq) % MARK_EVERY === 0)
              segment.marks.push({ seq: item.seq, offset, line: segment.lines });
            offset += item.data.length;
          }
          segment.bytes = offset;
          segment.lastSeq = (batch.at(-1) as QueuedLine).seq;
          if (this.options.fsync.mode === 'always') await this.syncNow();
          else if (this.options.fsync.mode === 'batch')
            this.scheduleSync(this.options.fsync.interval_ms);
        } catch (error) {
          const failure = toBusError(error, segment.path);
          for (const item of batch) item.reject(failure);
          this.fail(failure);
          return;
        }
        for (const item of batch) item.resolve();
      }
    } finally {
      this.draining = undefined;
    }
  }

  /** Takes queued lines up to `room` bytes (at least one, at most {@link MAX_BATCH_BYTES}) so a batch never runs far past a segment's end. */
  private takeBatch(room: number): QueuedLine[] {
    const limit = Math.min(room, MAX_BATCH_BYTES);
    let bytes = 0;
    let count = 0;
    for (const item of this.queue) {
      if (count > 0 && bytes + item.data.length > limit) break;
      bytes += item.data.length;
      count += 1;
    }
    if (count === this.queue.length) {
      const all = this.queue;
      this.queue = [];
      return all;
    }
    return this.queue.splice(0, count);
  }

  private scheduleSync(intervalMs: number): void {
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.syncNow().catch((error: unknown) =>
        this.fail(toBusError(error, (this.segments.at(-1) as Segment).path)),
      );
    }, intervalMs);
    this.syncTimer.unref();
  }

  /** fsyncs the active segment if anything was written since the last fsync began. */
  private async syncNow(): Promise<void> {
    while (this.syncing) await this.syncing;
    if (!this.dirty) return;
    this.dirty = false;
    this.syncing = this.handle.sync().finally(() => {
      this.syncing = undefined;
    });
    await this.syncing;
  }

  private async rotate(): Promise<void> {
    const current = this.segments.at(-1) as Segment;
    this.dirty = true; // a rotated segment is always fsynced, whatever the policy
    await this.syncNow();
    await this.handle.close();
    const next = emptySegment(
      join(this.options.dir, segmentFileName(current.lastSeq + 1)),
      current.lastSeq + 1,
    );
    this.handle = await fs.open(
      next.path,
      constants.O_WRONLY |
        constants.O_APPEND |
        constants.O_CREAT |
        constants.O_EXCL |
        constants.O_NOFOLLOW,
      0o644,
    );
    this.segments.push(next);
    await fsyncDir(this.options.dir);
    this.options.logger.debug('bus log rotated', {
      from: current.path,
      to: next.path,
      bytes: current.bytes,
    });
  }

  private fail(error: BusError): void {
    if (this.failure) return;
    this.failure = error;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    const queued = this.queue;
    this.queue = [];
    for (const item of queued) item.reject(error);
    this.options.logger.error('bus log failed; refusing further appends', {
      dir: this.options.dir,
      error: error.message,
    });
  }

  /**
   * Writes everything queued and fsyncs it, whatever the policy.
   * @throws {BusError} the log's failure, if it failed.
   */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
    if (this.failure) throw this.failure;
    this.dirty = true;
    await this.syncNow().catch((error: unknown) => {
      throw toBusError(error, (this.segments.at(-1) as Segment).path);
    });
  }

  /** Flushes (see {@link flush}) and closes the active segment; idempotent. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    try {
      if (!this.failure) await this.flush();
    } finally {
      if (this.syncTimer) clearTimeout(this.syncTimer);
      this.syncTimer = undefined;
      while (this.syncing) await this.syncing.catch(() => undefined);
      await this.handle.close().catch(() => undefined);
    }
  }

  /**
   * Reads the events after `after` up to `upTo` (inclusive) from disk, across segments, at
   * most `limit` of them or about `maxBytes` of lines.
   * @throws {BusError} BUS_CORRUPT, BUS_IO.
   */
  async read(after: number, upTo: number, limit: number, maxBytes: number): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    let want = after + 1;
    let bytes = 0;
    let index = this.segmentIndexOf(want);
    while (index < this.segments.length && want <= upTo && out.length < limit && bytes < maxBytes) {
      const segment = this.segments[index] as Segment;
      index += 1;
      if (segment.lastSeq < want) continue;
      const mark = nearestMark(segment, want);
      for await (const entry of readEvents(segment.path, {
        fromOffset: mark.offset,
        fromLine: mark.line,
        maxLineBytes: READ_MAX_LINE_BYTES,
      })) {
        if (!entry.ok) {
          if (entry.torn) break; // a line being written right now
          throw new BusError('BUS_CORRUPT', `${segment.path}: line ${entry.line}: ${entry.reason}`);
        }
        const parsed = BusEventSchema.safeParse(entry.event);
        if (!parsed.success)
          throw new BusError(
            'BUS_CORRUPT',
            `${segment.path}: line ${entry.line}: ${formatIssues(parsed.error)}`,
          );
        const event = parsed.data;
        if (event.seq < want) continue;
        if (event.seq !== want)
          throw new BusError(
            'BUS_CORRUPT',
            `${segment.path}: line ${entry.line}: seq ${event.seq}, expected ${want}`,
          );
        if (event.seq > upTo) break;
        const line = JSON.stringify(event);
        out.push({ event, line });
        bytes += line.length;
        want += 1;
        if (want > upTo || out.length >= limit || bytes >= maxBytes) break;
      }
    }
    return out;
  }

  /**
   * Reads every event up to `upTo` synchronously (for export).
   * @throws {BusError} BUS_CORRUPT, BUS_IO.
   */
  readAllSync(upTo: number): BusEvent[] {
    const out: BusEvent[] = [];
    for (const segment of this.segments) {
      if (segment.firstSeq > upTo) break;
      let text: string;
      try {
        text = readFileSync(segment.path, 'utf8');
      } catch (error) {
        throw toBusError(error, segment.path);
      }
      const lines = text.split('\n');
      for (const [index, line] of lines.entries()) {
        if (index === lines.length - 1) break; // after the last newline: empty, or a line being written
        let raw: unknown;
        try {
          raw = JSON.parse(line);
        } catch (error) {
          throw new BusError(
            'BUS_CORRUPT',
            `${segment.path}: line ${index + 1}: not valid JSON: ${(error as Error).message}`,
          );
        }
        const parsed = BusEventSchema.safeParse(raw);
        if (!parsed.success)
          throw new BusError(
            'BUS_CORRUPT',
            `${segment.path}: line ${index + 1}: ${formatIssues(parsed.error)}`,
          );
        if (parsed.data.seq > upTo) return out;
        out.push(parsed.data);
      }
    }
    return out;
  }

  private segmentIndexOf(seq: number): number {
    let low = 0;
    let high = this.segments.length - 1;
    let found = 0;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if ((this.segments[middle] as Segment).firstSeq <= seq) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found;
  }
}

function emptySegment(path: string, firstSeq: number): Segment {
  return { path, firstSeq, lastSeq: firstSeq - 1, bytes: 0, lines: 0, marks: [] };
}

function nearestMark(segment: Segment, seq: number): Mark {
  let best: Mark = { seq: segment.firstSeq, offset: 0, line: 1 };
  let low = 0;
  let high = segment.marks.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const mark = segment.marks[middle] as Mark;
    if (mark.seq <= seq) {
      best = mark;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return best;
}

function writeAllSync(fd: number, data: Buffer): void {
  let written = 0;
  while (written < data.length) {
    const bytesWritten = writeSync(fd, data, written, data.length - written);
    if (bytesWritten === 0)
      throw new Error(`write made no progress at byte ${written} of ${data.length}`);
    written += bytesWritten;
  }
}

interface Problem {
  line: number;
  offset: number;
  reason: string;
}

async function scanSegment(
  path: string,
  firstSeq: number,
  isLast: boolean,
  options: SegmentLogOptions,
  repairs: LogRepair[],
): Promise<Segment> {
  const segment = emptySegment(path, firstSeq);
  let problem: Problem | undefined;
  try {
    for await (const entry of readEvents(path, { maxLineBytes: READ_MAX_LINE_BYTES })) {
      if (problem) {
        throw new BusError(
          'BUS_CORRUPT',
          `${path}: line ${problem.line}: ${problem.reason}; lines follow it, so it is not a torn write and is not repaired`,
        );
      }
      if (!entry.ok) {
        problem = { line: entry.line, offset: entry.offset, reason: entry.reason };
        continue;
      }
      const parsed = BusEventSchema.safeParse(entry.event);
      if (!parsed.success) {
        problem = { line: entry.line, offset: entry.offset, reason: formatIssues(parsed.error) };
        continue;
      }
      const event = parsed.data;
      if (event.seq !== segment.lastSeq + 1) {
        throw new BusError(
          'BUS_CORRUPT',
          `${path}: line ${entry.line}: seq ${event.seq}, expected ${segment.lastSeq + 1}`,
        );
      }
      if ((event.seq - firstSeq) % MARK_EVERY === 0)
        segment.marks.push({ seq: event.seq, offset: entry.offset, line: entry.line });
      segment.lastSeq = event.seq;
      segment.lines = entry.line;
      options.onEvent(event);
    }
    if (problem) {
      if (!isLast)
        throw new BusError(
          'BUS_CORRUPT',
          `${path}: line ${problem.line}: ${problem.reason}; only the last segment's last line can be a torn write`,
        );
      repairs.push(await repairTail(path, problem, options));
    }
    const stat = await fs.lstat(path);
    if (!stat.isFile()) throw new BusError('BUS_CORRUPT', `${path}: expected a regular file`);
    segment.bytes = stat.size;
  } catch (error) {
    throw toBusError(error, path);
  }
  return segment;
}

async function repairTail(
  path: string,
  problem: Problem,
  options: SegmentLogOptions,
): Promise<LogRepair> {
  const handle = await fs.open(path, constants.O_RDWR | constants.O_NOFOLLOW);
  try {
    const { size } = await handle.stat();
    const bytes = size - problem.offset;
    const removed = Buffer.alloc(bytes);
    await handle.read(removed, 0, bytes, problem.offset);
    const stamp = options.now().toISOString().replace(/[:.]/g, '-');
    const savedTo = `${path}.torn-${problem.offset}-${stamp}`;
    await writeFileAtomic(savedTo, removed, { mode: 0o600 });
    await handle.truncate(problem.offset);
    await handle.sync();
    const repair: LogRepair = {
      segment: path,
      line: problem.line,
      offset: problem.offset,
      bytes,
      reason: problem.reason,
      savedTo,
    };
    options.logger.warn('bus log: repaired a torn last line', { ...repair });
    return repair;
  } finally {
    await handle.close();
  }
}
