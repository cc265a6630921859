import {
  createEventAppender,
  readEvents,
  serializeLogRecord,
  type AnyCellEvent,
  type EventAppender,
  type LogRecordInput,
} from '@pit/cell-spec';
import { describeError, type BusLogger } from './logger.js';

/** One line of the audit trail (`bus/audit.jsonl`): `{ ts, event, ... }`. */
export type AuditEntry = AnyCellEvent;

/**
 * What the bus records beside the stream, for participants with the `audit` capability:
 * `bus_denied` (an operation refused: who, what, why), `bus_auth_failed`, `bus_log_repaired`
 * and `bus_inbox_failed`. Appended whole lines, never fsynced; a torn last line is skipped on read.
 */
export class AuditTrail {
  private readonly appender: EventAppender;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly logger: BusLogger,
    private readonly now: () => Date,
  ) {
    this.appender = createEventAppender(path, { now });
  }

  /** Queues one entry; failures are logged, never thrown (the audit trail must not stop the bus). */
  record(entry: LogRecordInput): void {
    this.chain = this.chain
      .then(() =>
        this.appender.appendLine(
          serializeLogRecord({ ts: this.now().toISOString(), ...entry }, this.path),
        ),
      )
      .then(
        () => undefined,
        (error: unknown) =>
          this.logger.warn('bus audit trail: append failed', {
            path: this.path,
            error: describeError(error),
          }),
      );
  }

  /** The last `limit` entries, oldest first. */
  async read(limit: number): Promise<AuditEntry[]> {
    await this.chain;
    const out: AuditEntry[] = [];
    try {
      for await (const entry of readEvents(this.path)) {
        if (!entry.ok) continue;
        out.push(entry.event);
        if (out.length > limit) out.shift();
      }
    } catch (error) {
      if ((error as { code?: string }).code === 'CELL_NOT_FOUND') return [];
      throw error;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.chain;
    await this.appender.close();
  }
}
