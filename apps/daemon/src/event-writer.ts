/**
 * Appends the loop's events to the event logs (each cell's `logs/events.jsonl`, and
 * `<state_dir>/logs/events.jsonl` for agents outside cells) through one queue per file: the
 * order in a log is the order of the calls, so a caller on the hot path (an exit, its decision,
 * the restart) need not wait for the write. `ts` is taken when the event is queued. A failed
 * append is logged, never thrown. It rotates each log by size (`[logs] max_bytes`, `keep`):
 * the queue makes it the only rotator of its logs. It decides nothing about what to write.
 */
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  appendEvent,
  cellPaths,
  ensureCellSubdir,
  PitError,
  type AgentEventInput,
  type CellEventInput,
  type LogRotationLimits,
} from '@pit/cell-spec';
import type { Logger } from './logger.js';
import type { Slot } from './slot.js';

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

/** Creates the writer; the host log's directory is made once here, not before every append. */
export async function createEventWriter(options: {
  stateDir: string;
  logger: Logger;
  /** Size rotation of every log written (`[logs]`). @default no rotation */
  rotate?: LogRotationLimits;
}): Promise<EventWriter> {
  const hostEvents = join(options.stateDir, 'logs', 'events.jsonl');
  await fs.mkdir(dirname(hostEvents), { recursive: true });
  const queues = new Map<string, Promise<void>>();

  const write = async (path: string, record: CellEventInput) => {
    try {
      // A cell's log (`<cell>/logs/events.jsonl`) is opened beneath the cell: no component is
      // followed if an agent made it a link.
      await appendEvent(path, record, {
        ...(path === hostEvents ? {} : { beneath: dirname(dirname(path)) }),
        ...(options.rotate ? { rotate: options.rotate } : {}),
      });
    } catch (error) {
      if (!isMissing(error)) throw error;
      // The host log's directory removed while running: make it again, once.
      if (path === hostEvents) {
        await fs.mkdir(dirname(hostEvents), { recursive: true });
        await appendEvent(path, record, options.rotate ? { rotate: options.rotate } : {});
        return;
      }
      // A cell without `logs/` (a seed-format cell from an older fleet): made as provisioning
      // makes it, never through a link, once.
      const cellDir = dirname(dirname(path));
      await ensureCellSubdir(cellDir, ['logs'], { create: true });
      await appendEvent(path, record, {
        beneath: cellDir,
        ...(options.rotate ? { rotate: options.rotate } : {}),
      });
    }
  };

  const append: EventWriter['append'] = (path, input, agentKey) => {
    const record = { ...input, ts: input.ts ?? new Date().toISOString() };
    const next = (queues.get(path) ?? Promise.resolve())
      .then(() => write(path, record))
      .catch((error: unknown) =>
        options.logger.error('cannot append event', {
          agent: agentKey,
          event: input.event,
          path,
          ...(isRefusedPath(error) ? { refused: 'unsafe path in the cell' } : {}),
          error: String(error),
        }),
      );
    queues.set(path, next);
    void next.then(() => {
      if (queues.get(path) === next) queues.delete(path);
    });
    return next;
  };

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
    flush: () => Promise.all([...queues.values()]).then(() => undefined),
  };
}
