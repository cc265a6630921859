/**
 * Appends the loop's events to the event logs (each cell's `logs/events.jsonl`, and
 * `<state_dir>/logs/events.jsonl` for agents outside cells) through one queue per file: the
 * order in a log is the order of the calls, so a caller on the hot path (an exit, its decision,
 * the restart) need not wait for the write. `ts` is taken when the event is queued. What queues
 * while a write is in flight goes out in the next one, whole lines in one `write()` (at most
 * {@link BATCH_BYTES}): a burst (a fleet taken up, a death storm) costs one open per batch, not
 * one per event. A failed append is logged, never thrown; an invalid event is refused alone, its
 * neighbours are written. It rotates each log by size (`[logs] max_bytes`, `keep`): the queue
 * makes it the only rotator of its logs. It decides nothing about what to write.
 */
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  cellPaths,
  createEventAppender,
  ensureCellSubdir,
  PitError,
  serializeEvent,
  type AgentEventInput,
  type CellEventInput,
  type LogRotationLimits,
} from '@pit/cell-spec';
import type { Logger } from './logger.js';
import type { Slot } from './slot.js';

/** The most bytes of lines one write carries (a quarter of `[logs] max_bytes` when smaller). */
const BATCH_BYTES = 64 * 1024;

/** The event log writer of one daemon. */
export interface EventWriter {
  /** Appends `input` to the log at `path`; settles once written (or the failure logged). */
  append(path: string, input: CellEventInput, agentKey: string): Promise<void>;
  /** Appends an event of `slot` (with `agent` set to its name) to its cell's log, or the host log. */
  agentEvent(slot: Slot, input: AgentEventInput): Promise<void>;
  /** Waits for every queued append. */
  flush(): Promise<void>;
}

const isMissing = (error: unknown): boolean =>
  (error as NodeJS.ErrnoException).code === 'ENOENT' ||
  (PitError.is(error) && error.code === 'CELL_NOT_FOUND');

const isRefusedPath = (error: unknown): boolean =>
  PitError.is(error) && error.code === 'CELL_UNSAFE_PATH';

/** An event waiting in a file's queue. */
interface Queued {
  record: CellEventInput;
  agentKey: string;
  done: () => void;
}

/**
 * Appends whole lines to an event log (a cell's opened beneath the cell; the host log), making a
 * missing `logs/` directory once.
 */
function logFileWriter(hostEvents: string, rotate: LogRotationLimits | undefined) {
  const appendText = async (path: string, text: string, beneath: string | undefined) => {
    const appender = createEventAppender(path, {
      ...(beneath !== undefined ? { beneath } : {}),
      ...(rotate ? { rotate } : {}),
    });
    try {
      await appender.appendLine(text);
    } finally {
      await appender.close();
    }
  };

  const write = async (path: string, text: string) => {
    try {
      // A cell's log (`<cell>/logs/events.jsonl`) is opened beneath the cell: no component is
      // followed if an agent made it a link.
      await appendText(path, text, path === hostEvents ? undefined : dirname(dirname(path)));
    } catch (error) {
      if (!isMissing(error)) throw error;
      // The host log's directory removed while running: make it again, once.
      if (path === hostEvents) {
        await fs.mkdir(dirname(hostEvents), { recursive: true });
        await appendText(path, text, undefined);
        return;
      }
      // A cell without `logs/` (a seed-format cell from an older fleet): made as provisioning
      // makes it, never through a link, once.
      const cellDir = dirname(dirname(path));
      await ensureCellSubdir(cellDir, ['logs'], { create: true });
      await appendText(path, text, cellDir);
    }
  };

  return write;
}

/** Takes the next batch off `waiting`: its lines, and every event it settles (refused ones too). */
function takeBatch(
  path: string,
  waiting: Queued[],
  batchBytes: number,
  failed: (path: string, item: Queued, error: unknown) => void,
) {
  const written: Queued[] = [];
  let text = '';
  let bytes = 0;
  let taken = 0;
  for (; taken < waiting.length; taken++) {
    const item = waiting[taken]!;
    let line: string;
    try {
      line = serializeEvent(item.record, path);
    } catch (error) {
      failed(path, item, error);
      continue;
    }
    const lineBytes = Buffer.byteLength(line);
    if (bytes > 0 && bytes + lineBytes > batchBytes) break;
    text += line;
    bytes += lineBytes;
    written.push(item);
  }
  const settled = waiting.splice(0, taken);
  return { text, written, settled };
}

/** Creates the writer; the host log's directory is made once here, not before every append. */
export async function createEventWriter(options: {
  stateDir: string;
  logger: Logger;
  /** Size rotation of every log written (`[logs]`). @default no rotation */
  rotate?: LogRotationLimits;
}): Promise<EventWriter> {
  const hostEvents = join(options.stateDir, 'logs', 'events.jsonl');
  await fs.mkdir(dirname(hostEvents), { recursive: true });
  const batchBytes = Math.min(BATCH_BYTES, Math.floor((options.rotate?.maxBytes ?? Infinity) / 4));
  /** Per file: the events not written yet, and the drain writing them. */
  const queues = new Map<string, { waiting: Queued[]; drained: Promise<void> }>();

  const failed = (path: string, item: Queued, error: unknown) =>
    options.logger.error('cannot append event', {
      agent: item.agentKey,
      event: item.record.event,
      path,
      ...(isRefusedPath(error) ? { refused: 'unsafe path in the cell' } : {}),
      error: String(error),
    });

  const write = logFileWriter(hostEvents, options.rotate);
  const drain = async (path: string, waiting: Queued[]) => {
    while (waiting.length > 0) {
      const batch = takeBatch(path, waiting, batchBytes, failed);
      if (batch.text.length > 0)
        await write(path, batch.text).catch((error: unknown) => {
          for (const item of batch.written) failed(path, item, error);
        });
      for (const item of batch.settled) item.done();
    }
    if (queues.get(path)?.waiting === waiting) queues.delete(path);
  };

  const append: EventWriter['append'] = (path, input, agentKey) =>
    new Promise<void>((done) => {
      const record = { ...input, ts: input.ts ?? new Date().toISOString() };
      const queue = queues.get(path);
      if (queue) {
        queue.waiting.push({ record, agentKey, done });
        return;
      }
      const fresh = { waiting: [{ record, agentKey, done }], drained: Promise.resolve() };
      // In the map before the drain starts: a drain that ends at once (every event refused)
      // removes it, and the next append starts a new one.
      queues.set(path, fresh);
      fresh.drained = drain(path, fresh.waiting);
    });

  return {
    append,
    agentEvent: (slot, input) =>
      append(
        slot.cell ? cellPaths(slot.cell.dir).events : hostEvents,
        {
          ...input,
          agent: slot.name,
          ...(slot.incarnation
            ? { epoch: slot.incarnation.epoch, host: slot.incarnation.host }
            : {}),
        },
        slot.key,
      ),
    flush: () =>
      Promise.all([...queues.values()].map((queue) => queue.drained)).then(() => undefined),
  };
}
