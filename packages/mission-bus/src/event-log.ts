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
