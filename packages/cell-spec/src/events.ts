import { createReadStream, promises as fs, constants } from 'node:fs';
import { z } from 'zod';
import { AgentNameSchema } from './agent-name.js';
import { CellError, toCellError } from './errors.js';
import { formatIssues } from './format-issues.js';
import { IsoTimestampSchema } from './manifest.js';

const Sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be a hex sha256' });

/** Fields every event line has. Events are open objects: a newer writer may add fields. */
const base = { ts: IsoTimestampSchema };
const agentBase = { ...base, agent: AgentNameSchema };

/** Files restored by a config rollback. */
export const RolledBackFileSchema = z.looseObject({ path: z.string().min(1), old_sha256: Sha256Schema.nullable(), new_sha256: Sha256Schema });

/** One known event of `events.jsonl`, discriminated on `event`. */
export const CellEventSchema = z.discriminatedUnion('event', [
  z.looseObject({ ...base, event: z.literal('cell_created'), uuid: z.string(), mission: z.string(), created_by: z.string() }),
  z.looseObject({ ...base, event: z.literal('cell_activated') }),
  z.looseObject({ ...base, event: z.literal('cell_frozen'), reason: z.string().optional() }),
  z.looseObject({ ...base, event: z.literal('cell_archived'), reason: z.string().optional() }),
  z.looseObject({ ...base, event: z.literal('cell_destroyed') }),
  z.looseObject({ ...agentBase, event: z.literal('agent_joined'), role: z.string() }),
  z.looseObject({ ...agentBase, event: z.literal('agent_left'), reason: z.string().optional() }),
  z.looseObject({ ...agentBase, event: z.literal('heartbeat'), cycle: z.number().int().optional(), status: z.string().optional() }),
  z.looseObject({ ...agentBase, event: z.literal('agent_healthy') }),
  z.looseObject({ ...agentBase, event: z.literal('agent_degraded'), reason: z.string().optional() }),
  z.looseObject({ ...agentBase, event: z.literal('agent_dead'), reason: z.string() }),
  z.looseObject({ ...agentBase, event: z.literal('decision'), action: z.string(), reason: z.string() }),
  z.looseObject({ ...agentBase, event: z.literal('revive_requested'), approval_id: z.string().optional(), reason: z.string().optional() }),
  z.looseObject({ ...agentBase, event: z.literal('revive_approved'), approval_id: z.string().optional(), by: z.string().optional(), channel: z.string().optional() }),
  z.looseObject({ ...agentBase, event: z.literal('revive_denied'), approval_id: z.string().optional(), by: z.string().optional(), channel: z.string().optional() }),
  z.looseObject({ ...agentBase, event: z.literal('agent_revived'), pid: z.number().int().optional(), attempt: z.number().int().optional() }),
  z.looseObject({ ...agentBase, event: z.literal('revive_failed'), reason: z.string() }),
  z.looseObject({ ...agentBase, event: z.literal('agent_substituted'), substitute: AgentNameSchema }),
  z.looseObject({ ...agentBase, event: z.literal('config_rolled_back'), files: z.array(RolledBackFileSchema), reason: z.string().optional() }),
  z.looseObject({ ...base, event: z.literal('checkpoint_created'), checkpoint: z.string(), sha256: Sha256Schema, bytes: z.number().int().nonnegative() }),
  z.looseObject({ ...base, event: z.literal('checkpoint_restored'), checkpoint: z.string() }),
]);
export type CellEvent = z.infer<typeof CellEventSchema>;
/** The event kinds this version knows. */
export type CellEventKind = CellEvent['event'];
/** The kinds this version knows, as a list. */
export const CELL_EVENT_KINDS: readonly string[] = CellEventSchema.options.map((option) => option.shape.event.value);

/** The minimum any line must have: a timestamp and an event name. */
export const AnyCellEventSchema = z.looseObject({ ts: IsoTimestampSchema, event: z.string().regex(/^[a-z][a-z0-9_]*$/, { message: 'must be a snake_case event name' }) });
export type AnyCellEvent = z.infer<typeof AnyCellEventSchema>;

/** What a writer passes to {@link appendEvent}: `ts` is filled in when missing. */
export interface CellEventInput {
  event: string;
  ts?: string;
  [field: string]: unknown;
}

/** A single event line larger than this is refused (it could not be appended atomically). */
export const EVENT_LINE_MAX_BYTES = 64 * 1024;

/**
 * Validates an event and renders it as one line. Known kinds are checked against their
 * schema; other kinds need only `ts` and a snake_case `event`.
 * @throws {CellError} CELL_INVALID naming the field.
 */
export function serializeEvent(input: CellEventInput, where = 'event', now: () => Date = () => new Date()): string {
  const candidate = { ...input, ts: input.ts ?? now().toISOString() };
  const known = CELL_EVENT_KINDS.includes(candidate.event);
  const parsed = known ? CellEventSchema.safeParse(candidate) : AnyCellEventSchema.safeParse(candidate);
  if (!parsed.success) throw new CellError('CELL_INVALID', `${where}: ${candidate.event}: ${formatIssues(parsed.error)}`);
  const line = `${JSON.stringify(parsed.data)}\n`;
  if (Buffer.byteLength(line) > EVENT_LINE_MAX_BYTES) throw new CellError('CELL_TOO_LARGE', `${where}: ${candidate.event}: line of ${Buffer.byteLength(line)} bytes exceeds ${EVENT_LINE_MAX_BYTES}`);
  return line;
}

/** Options of {@link appendEvent}. */
export interface AppendEventOptions {
  /** fsync after the write (durable across power loss; slower). @default false */
  fsync?: boolean;
  /** Clock for a missing `ts`. */
  now?: () => Date;
}

/**
 * Appends one event as one whole line (`O_APPEND`, a single write), so concurrent
 * appenders in several processes never interleave within a line. Fills in `ts`.
 * @returns the event as written.
 * @throws {CellError} CELL_INVALID for a bad event (nothing written); CELL_IO.
 * @example
 * await appendEvent(cellPaths(dir).events, { event: 'agent_dead', agent: 'forge', reason: 'heartbeat stale 95 s' });
 */
export async function appendEvent(eventsPath: string, input: CellEventInput, options: AppendEventOptions = {}): Promise<AnyCellEvent> {
  const line = serializeEvent(input, eventsPath, options.now);
  const appender = createEventAppender(eventsPath, options);
  try {
    await appender.appendLine(line);
  } finally {
    await appender.close();
  }
  return JSON.parse(line) as AnyCellEvent;
}

/** A kept-open appender for a hot path (one open per many appends). */
export interface EventAppender {
  /** Validates and appends one event. */
  append(input: CellEventInput): Promise<AnyCellEvent>;
  /** Appends a line already produced by {@link serializeEvent}. */
  appendLine(line: string): Promise<void>;
  close(): Promise<void>;
}

/** Opens `events.jsonl` for appending, keeping the descriptor open across calls. */
export function createEventAppender(eventsPath: string, options: AppendEventOptions = {}): EventAppender {
  let handlePromise: Promise<fs.FileHandle> | undefined;
  const open = () =>
    (handlePromise ??= fs.open(eventsPath, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644).catch((error) => {
      handlePromise = undefined;
      throw toCellError(error, eventsPath, 'open for append');
    }));
  const appendLine = async (line: string) => {
    const handle = await open();
    const buffer = Buffer.from(line);
    try {
      // One write() of the whole line: with O_APPEND the kernel places it atomically at the end.
      const { bytesWritten } = await handle.write(buffer, 0, buffer.length);
      if (bytesWritten !== buffer.length) throw new Error(`short write: ${bytesWritten} of ${buffer.length} bytes`);
      if (options.fsync) await handle.sync();
    } catch (error) {
      throw toCellError(error, eventsPath, 'append');
    }
  };
  return {
    appendLine,
    async append(input) {
      const line = serializeEvent(input, eventsPath, options.now);
      await appendLine(line);
      return JSON.parse(line) as AnyCellEvent;
    },
    async close() {
      const pending = handlePromise;
      handlePromise = undefined;
      if (pending) await (await pending.catch(() => undefined))?.close();
    },
  };
}

/** One line read back from `events.jsonl`. */
export type EventLogEntry =
  | {
      ok: true;
      /** 1-based line number. */
      line: number;
      /** Byte offset of the line's start. */
      offset: number;
      /** `true` when the kind is one this version knows (and it matched its schema). */
      known: boolean;
      event: AnyCellEvent;
    }
  | {
      ok: false;
      line: number;
      offset: number;
      /** `true` for a last line without its newline (a writer died mid-line, or is writing it now). */
      torn: boolean;
      reason: string;
      raw: string;
    };

/** Options of {@link readEvents}. */
export interface ReadEventsOptions {
  /** Start reading at this byte offset (a line start from an earlier read). @default 0 */
  fromOffset?: number;
  /** Line number of the line at `fromOffset`. @default 1 */
  fromLine?: number;
  /** Read buffer size. @default 64 KiB */
  highWaterMark?: number;
}

/**
 * Streams `events.jsonl`, yielding each line as a parsed event or as a problem with its line
 * number (malformed JSON, a bad event, a torn last line). Never loads the whole file;
 * never throws away good lines because of a bad one.
 * @throws {CellError} CELL_NOT_FOUND / CELL_UNSAFE_PATH / CELL_IO when the file cannot be opened.
 * @example
 * for await (const entry of readEvents(paths.events)) {
 *   if (entry.ok) console.log(entry.event.event); else console.warn(`line ${entry.line}: ${entry.reason}`);
 * }
 */
export async function* readEvents(eventsPath: string, options: ReadEventsOptions = {}): AsyncGenerator<EventLogEntry> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(eventsPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    const stat = await handle.stat();
    if (!stat.isFile()) throw new CellError('CELL_UNSAFE_PATH', `${eventsPath}: expected a regular file`);
  } catch (error) {
    throw toCellError(error, eventsPath, 'read events');
  }
  const stream = createReadStream('', { fd: handle.fd, autoClose: false, start: options.fromOffset ?? 0, highWaterMark: options.highWaterMark ?? 64 * 1024 });
  let lineNumber = options.fromLine ?? 1;
  let offset = options.fromOffset ?? 0;
  let pending: Buffer[] = [];
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (;;) {
        const newline = chunk.indexOf(10, start);
        if (newline === -1) break;
        const piece = chunk.subarray(start, newline);
        const lineBuffer = pending.length ? Buffer.concat([...pending, piece]) : piece;
        pending = [];
        yield parseLine(lineBuffer.toString('utf8'), lineNumber, offset, false);
        offset += lineBuffer.length + 1;
        lineNumber += 1;
        start = newline + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    }
    if (pending.length) {
      const rest = Buffer.concat(pending).toString('utf8');
      yield parseLine(rest, lineNumber, offset, true);
    }
  } finally {
    stream.destroy();
    await handle.close().catch(() => undefined);
  }
}

function parseLine(text: string, line: number, offset: number, torn: boolean): EventLogEntry {
  if (torn) return { ok: false, line, offset, torn: true, reason: 'torn last line (no trailing newline)', raw: text };
  if (text.trim() === '') return { ok: false, line, offset, torn: false, reason: 'empty line', raw: text };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { ok: false, line, offset, torn: false, reason: `not valid JSON: ${(error as Error).message}`, raw: text };
  }
  const basic = AnyCellEventSchema.safeParse(raw);
  if (!basic.success) return { ok: false, line, offset, torn: false, reason: formatIssues(basic.error), raw: text };
  if (!CELL_EVENT_KINDS.includes(basic.data.event)) return { ok: true, line, offset, known: false, event: basic.data };
  const full = CellEventSchema.safeParse(raw);
  if (!full.success) return { ok: false, line, offset, torn: false, reason: `${basic.data.event}: ${formatIssues(full.error)}`, raw: text };
  return { ok: true, line, offset, known: true, event: full.data };
}
