/**
 * The storage seam of a mission bus: where its events are kept. The bus sequences, validates
 * and indexes events; an event log only stores them and reads them back. Two kinds:
 *
 * - **Owned** (the default, {@link openSegmentLog}: JSONL segments in the cell's `bus/`): this
 *   bus is the only writer, so it numbers events itself and appends them in order, pipelined.
 * - **Shared** (`@pit/mission-bus/jetstream`): several bus instances (one per host) append to
 *   one log. The log numbers events: an append names the sequence it expects to take and is
 *   refused (a value, not an exception) when another writer took it first; an append repeated
 *   with the same event id is stored once. Every instance follows the log and delivers every
 *   event, its own included, in the log's order.
 */
import type { BusEvent } from './bus-event.js';
import { BusError } from './errors.js';
import type { BusConfig } from './config.js';
import type { BusLogger } from './logger.js';
import { SegmentLog, type LogRepair, type StoredEvent } from './segment-log.js';

/** What a bus needs of any log. */
export interface BusEventLogBase {
  /** The last sequence number stored (owned logs: or queued). */
  readonly lastSeq: number;
  /**
   * Events after `after` up to `upTo` (inclusive), in order, at most `limit` of them or about
   * `maxBytes` of lines.
   * @throws {BusError} BUS_CORRUPT, BUS_IO (or BUS_TIMEOUT for a remote log).
   */
  read(after: number, upTo: number, limit: number, maxBytes: number): Promise<StoredEvent[]>;
  /** Every event up to `upTo`, synchronously (for export); a log that cannot leaves it out. */
  readAllSync?(upTo: number): BusEvent[];
  /** Makes everything appended so far durable. @throws {BusError} the log's failure. */
  flush(): Promise<void>;
  /** Flushes and lets go of the log (a shared log stops following); idempotent. */
  close(): Promise<void>;
}

/** A log only this bus writes: it appends `seq` = last + 1, and appends resolve in order. */
export interface OwnedBusEventLog extends BusEventLogBase {
  readonly kind: 'owned';
  /**
   * Appends one event line (without its newline) at `seq`, the next sequence number.
   * @throws {BusError} BUS_CLOSED, BUS_CORRUPT (not the next number), BUS_IO; a failure fails the bus.
   */
  append(seq: number, line: string): Promise<void>;
}

/** The outcome of a {@link SharedBusEventLog.append}. */
export type SharedAppendResult =
  /** Stored at `seq` (`duplicate`: an append with this event id was stored before, at `seq`). */
  | { ok: true; seq: number; duplicate: boolean }
  /** Another writer took the sequence: catch up to {@link SharedBusEventLog.latestSeq} and build again. */
  | { ok: false; reason: 'taken' };

/** A log several bus instances write (see the module header). */
export interface SharedBusEventLog extends BusEventLogBase {
  readonly kind: 'shared';
  /**
   * Appends `line` (the event `id`, numbered `seq`) only if the log's last sequence is `seq - 1`,
   * deduplicated by `id`. Requests that time out are repeated with the same id.
   * @throws {BusError} BUS_TIMEOUT (retryable: the log did not answer), BUS_TOO_LARGE, BUS_IO.
   */
  append(seq: number, line: string, id: string): Promise<SharedAppendResult>;
  /** The log's last sequence number now, asked of the log (not what was delivered). */
  latestSeq(): Promise<number>;
  /**
   * Delivers every event after `after`, in the log's order, once each, to `deliver` (awaited
   * before the next), until closed. A `deliver` that throws stops the following and `onError` is told.
   */
  follow(
    after: number,
    deliver: (stored: StoredEvent) => Promise<void>,
    onError: (error: unknown) => void,
  ): void;
}

/** Either kind of log. */
export type BusEventLog = OwnedBusEventLog | SharedBusEventLog;

/** What a log factory is given when a bus opens. */
export interface OpenBusEventLogOptions {
  /** The bus directory (`bus/` of the cell, reached through its open descriptor). */
  dir: string;
  /** The mission the bus belongs to. */
  missionId: string;
  config: BusConfig;
  logger: BusLogger;
  now: () => Date;
  /** Called for every event already in the log, in order, before the factory resolves. */
  onEvent: (event: BusEvent) => void;
}

/**
 * Opens a bus's log; the bus calls it once, with its lock held.
 * @returns the log and the torn lines it repaired (none for a remote log).
 */
export type BusEventLogFactory = (
  options: OpenBusEventLogOptions,
) => Promise<{ log: BusEventLog; repairs: LogRepair[] }>;

/** The default log: append-only JSONL segments in the cell's `bus/` (see {@link SegmentLog}). */
export const openSegmentLog: BusEventLogFactory = async (options) => {
  const { log, repairs } = await SegmentLog.open({
    dir: options.dir,
    fsync: options.config.log.fsync,
    segmentMaxBytes: options.config.log.segment_max_bytes,
    logger: options.logger,
    now: options.now,
    onEvent: options.onEvent,
  });
  return { log, repairs };
};

/**
 * Keeps a copy of a shared log in the cell's own segments (`bus/stream-*.jsonl`), so that what
 * reads a cell's log directly (`readBusLog`, `pit bus tail`, exports) sees the stream, and reads
 * of past events stay local. On open the local segments are checked against the shared log (the
 * same id at every sequence both hold) and the shared log's newer events are copied; a shared log
 * that is still empty gets the cell's events first (a cell whose bus becomes shared keeps its
 * history). Every event delivered afterwards is written locally before the bus acknowledges it.
 * @throws {BusError} BUS_CORRUPT when the two disagree, or the cell holds events the (non-empty)
 *   shared log lacks; BUS_CONFLICT when another writer appended while the cell's events were copied.
 */
export function withLocalCopy(factory: BusEventLogFactory): BusEventLogFactory {
  return async (options) => {
    const localIds: string[] = [];
    const { log: local, repairs } = await openSegmentLog({
      ...options,
      onEvent: (event) => {
        localIds.push(event.id);
        options.onEvent(event);
      },
    });
    const held = local.lastSeq;
    const copies: Array<Promise<void>> = [];
    let shared: BusEventLog | undefined;
    try {
      ({ log: shared } = await factory({
        ...options,
        onEvent: (event) => {
          if (event.seq <= held) {
            if (localIds[event.seq - 1] !== event.id)
              throw new BusError(
                'BUS_CORRUPT',
                `${options.dir}: event ${event.seq} is ${localIds[event.seq - 1]} in the cell's segments but ${event.id} in the shared log of mission ${options.missionId}`,
              );
            return;
          }
          options.onEvent(event);
          copies.push((local as OwnedBusEventLog).append(event.seq, JSON.stringify(event)));
        },
      }));
      await Promise.all(copies);
      if (shared.kind !== 'shared')
        throw new BusError(
          'BUS_INVALID',
          `withLocalCopy: the log of mission ${options.missionId} is not shared`,
        );
      if (shared.lastSeq < held) await seedShared(shared, local as OwnedBusEventLog, options);
      return { log: new LocalCopyLog(local as OwnedBusEventLog, shared), repairs };
    } catch (error) {
      await shared?.close().catch(() => undefined);
      await local.close().catch(() => undefined);
      throw error;
    }
  };
}

/** Appends the cell's events to a shared log that has none yet. */
async function seedShared(
  shared: SharedBusEventLog,
  local: OwnedBusEventLog,
  options: OpenBusEventLogOptions,
): Promise<void> {
  if (shared.lastSeq > 0)
    throw new BusError(
      'BUS_CORRUPT',
      `${options.dir}: the cell's segments hold ${local.lastSeq} events, the shared log of mission ${options.missionId} only ${shared.lastSeq}`,
    );
  options.logger.info("bus: copying the cell's events into the empty shared log", {
    mission: options.missionId,
    events: local.lastSeq,
  });
  let after = 0;
  while (after < local.lastSeq) {
    const page = await local.read(after, local.lastSeq, 512, 4 * 1024 * 1024);
    if (page.length === 0) break;
    for (const { event, line } of page) {
      const result = await shared.append(event.seq, line, event.id);
      if (!result.ok || result.seq !== event.seq)
        throw new BusError(
          'BUS_CONFLICT',
          `${options.dir}: another writer appended to the shared log of mission ${options.missionId} while the cell's events were copied into it (at ${event.seq})`,
        );
      after = event.seq;
    }
  }
}

/** A shared log with the cell's own segments as its local copy (see {@link withLocalCopy}). */
class LocalCopyLog implements SharedBusEventLog {
  readonly kind = 'shared' as const;

  constructor(
    private readonly local: OwnedBusEventLog,
    private readonly shared: SharedBusEventLog,
  ) {}

  get lastSeq(): number {
    return this.local.lastSeq;
  }

  append(seq: number, line: string, id: string): Promise<SharedAppendResult> {
    return this.shared.append(seq, line, id);
  }

  latestSeq(): Promise<number> {
    return this.shared.latestSeq();
  }

  follow(
    after: number,
    deliver: (stored: StoredEvent) => Promise<void>,
    onError: (error: unknown) => void,
  ): void {
    this.shared.follow(
      after,
      async (stored) => {
        if (stored.event.seq > this.local.lastSeq)
          await this.local.append(stored.event.seq, JSON.stringify(stored.event));
        await deliver(stored);
      },
      onError,
    );
  }

  read(after: number, upTo: number, limit: number, maxBytes: number): Promise<StoredEvent[]> {
    return this.local.read(after, upTo, limit, maxBytes);
  }

  readAllSync(upTo: number): BusEvent[] {
    return (this.local.readAllSync as (upTo: number) => BusEvent[])(upTo);
  }

  flush(): Promise<void> {
    return this.local.flush();
  }

  async close(): Promise<void> {
    await this.shared.close();
    await this.local.close();
  }
}
