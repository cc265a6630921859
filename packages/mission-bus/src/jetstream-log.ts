/**
 * A shared event log on NATS JetStream (`@pit/mission-bus/jetstream`): one stream per mission,
 * replicated (3 replicas by default), which the bus instances of one mission on several hosts all
 * append to and all follow. It owns the stream and its consumers; it never opens or closes the
 * NATS connection (the caller's).
 *
 * - **Append**: a JetStream publish with the event id as message id (the stream stores an id once
 *   within its duplicate window) and the expected last sequence `seq - 1` (the stream refuses an
 *   append after another writer's, JetStream error 10071: the bus catches up and builds again).
 *   So every stored event's `seq` is its stream sequence, and no event is stored twice. A request
 *   that fails for any other reason (a timeout while a node dies and a new stream leader is
 *   elected, 2–4 s) is repeated with the same id and expectation until `appendDeadlineMs`.
 * - **Follow**: an ordered consumer from the bus's head; it is made again from the last delivered
 *   sequence after any error, so each event is delivered once, in stream order.
 */
import { createHash } from 'node:crypto';
import { formatIssues } from '@pit/cell-spec';
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { BusEventSchema } from './bus-event.js';
import { BusError } from './errors.js';
import {
  withLocalCopy,
  type BusEventLogFactory,
  OpenBusEventLogOptions,
  SharedAppendResult,
  SharedBusEventLog,
} from './event-log.js';
import { describeError, type BusLogger } from './logger.js';
import { natsToken, repeatRequest } from './jetstream-requests.js';
import type { StoredEvent } from './segment-log.js';

/** A NATS connection (from `@nats-io/transport-node`'s `connect`). */
export type NatsConnection = Parameters<typeof jetstream>[0];

/** Options of {@link createJetStreamEventLog}. */
export interface JetStreamEventLogOptions {
  /** An open NATS connection to the cluster; the log never closes it. */
  connection: NatsConnection;
  /** Replicas of each mission's stream (1, 3 or 5; at most the number of nodes). @default 3 */
  replicas?: number;
  /** Stream names are `<PREFIX>_<mission>` (upper-cased) and subjects `<prefix>.<mission>`. @default 'pit_bus' */
  prefix?: string;
  /** How long one JetStream request may take, ms. @default 2000 */
  requestTimeoutMs?: number;
  /** How long an append (or a read of the stream's state) keeps repeating a failed request, ms. @default 30000 */
  appendDeadlineMs?: number;
  /** The stream's duplicate window: an event id appended again within it is stored once, ms. @default 120000 */
  duplicateWindowMs?: number;
  /**
   * Keep a copy of the stream in the cell's own segments (see `withLocalCopy`): `readBusLog`,
   * `pit bus tail` and `toJSON()` see the stream, past events are read locally, and a cell's
   * existing events seed an empty stream. @default true
   */
  localCopy?: boolean;
}

/** The stream and subject of a mission (a mission id's `.`, `:` and `_` escaped as `_XX`). */
export function missionStream(
  missionId: string,
  prefix = 'pit_bus',
): { stream: string; subject: string } {
  const token = natsToken(missionId);
  // Stream names are limited in length by the server's store (file names): long ids are hashed.
  const name =
    token.length <= 100 ? token : createHash('sha256').update(missionId).digest('hex').slice(0, 40);
  return { stream: `${prefix.toUpperCase()}_${name}`, subject: `${prefix}.${name}` };
}

/**
 * The factory to pass as {@link OpenMissionBusOptions.eventLog}: each bus opened with it keeps its
 * events in its mission's JetStream stream (created when missing), replayed on open.
 * @example
 * const nc = await connect({ servers: ['nats://127.0.0.1:4222'] });
 * const bus = await MissionBus.open({ cellDir, eventLog: createJetStreamEventLog({ connection: nc }) });
 */
export function createJetStreamEventLog(options: JetStreamEventLogOptions): BusEventLogFactory {
  const factory = openJetStreamLog(options);
  return options.localCopy === false ? factory : withLocalCopy(factory);
}

function openJetStreamLog(options: JetStreamEventLogOptions): BusEventLogFactory {
  return async (open) => {
    const settings = {
      timeout: options.requestTimeoutMs ?? 2_000,
      deadline: options.appendDeadlineMs ?? 30_000,
    };
    const js = jetstream(options.connection, { timeout: settings.timeout });
    const jsm = await jetstreamManager(options.connection, { timeout: settings.timeout });
    const { stream, subject } = missionStream(open.missionId, options.prefix);
    const context: StreamContext = { js, jsm, stream, subject, logger: open.logger, ...settings };
    await ensureStream(context, {
      replicas: options.replicas ?? 3,
      duplicateWindowMs: options.duplicateWindowMs ?? 120_000,
    });
    const last = await repeat(context, 'read the stream state', async () => {
      const info = await jsm.streams.info(stream);
      return info.state.last_seq;
    });
    await replay(context, last, open);
    return { log: new JetStreamEventLog(context, last), repairs: [] };
  };
}

interface StreamContext {
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  subject: string;
  logger: BusLogger;
  /** ms per request */
  timeout: number;
  /** ms a request is repeated for */
  deadline: number;
}

/** The mission's stream, created when missing (by whichever host gets there first). */
async function ensureStream(
  context: StreamContext,
  settings: { replicas: number; duplicateWindowMs: number },
): Promise<void> {
  const { jsm, stream, subject } = context;
  await repeat(context, 'create the stream', async () => {
    try {
      await jsm.streams.info(stream);
      return;
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound))
        throw error;
    }
    try {
      await jsm.streams.add({
        name: stream,
        subjects: [subject],
        num_replicas: settings.replicas,
        storage: StorageType.File,
        duplicate_window: settings.duplicateWindowMs * 1_000_000,
        allow_direct: false,
      });
    } catch (error) {
      // Another host created it meanwhile: the next round finds it.
      if (/already in use/i.test(String(error))) await jsm.streams.info(stream);
      else throw error;
    }
  });
}

/** Feeds every event up to `last` to `open.onEvent`, in order. */
async function replay(
  context: StreamContext,
  last: number,
  open: OpenBusEventLogOptions,
): Promise<void> {
  if (last === 0) return;
  let cursor = 0;
  const started = Date.now();
  while (cursor < last) {
    if (Date.now() - started > context.deadline * 4)
      throw new BusError(
        'BUS_TIMEOUT',
        `stream ${context.stream}: replay stopped at ${cursor} of ${last}`,
        { retryable: true },
      );
    await consumeFrom(context, cursor, async (stored) => {
      open.onEvent(stored.event);
      cursor = stored.event.seq;
      return cursor < last;
    }).catch((error: unknown) => {
      if (error instanceof BusError) throw error;
      context.logger.warn('bus: stream replay interrupted; resuming', {
        stream: context.stream,
        at: cursor,
        error: describeError(error),
      });
    });
  }
}

/**
 * Runs one ordered consumer from `after + 1`, handing each event to `handle` until it returns
 * false, the consumer ends, or `stop` says so. A gap (which an ordered consumer should never
 * give) ends it too: the caller starts again from its cursor.
 * @throws {BusError} BUS_CORRUPT for a message that is not an event of its sequence; the
 *   consumer's errors as they are.
 */
async function consumeFrom(
  context: StreamContext,
  after: number,
  handle: (stored: StoredEvent) => Promise<boolean>,
  register?: (messages: ConsumerMessages) => void,
): Promise<void> {
  const consumer = await context.js.consumers.get(
    context.stream,
    after === 0
      ? { deliver_policy: DeliverPolicy.All }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 },
  );
  const messages = await consumer.consume({ expires: 2_000, max_messages: 256 });
  register?.(messages);
  let cursor = after;
  try {
    for await (const message of messages) {
      if (message.seq <= cursor) continue;
      if (message.seq !== cursor + 1) {
        context.logger.warn('bus: the stream consumer skipped events; starting it again', {
          stream: context.stream,
          expected: cursor + 1,
          got: message.seq,
        });
        return;
      }
      const stored = parseMessage(context.stream, message.seq, message.string());
      cursor = message.seq;
      if (!(await handle(stored))) return;
    }
  } finally {
    messages.stop();
  }
}

function parseMessage(stream: string, seq: number, text: string): StoredEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new BusError(
      'BUS_CORRUPT',
      `stream ${stream}: message ${seq}: not valid JSON: ${(error as Error).message}`,
    );
  }
  const parsed = BusEventSchema.safeParse(raw);
  if (!parsed.success)
    throw new BusError(
      'BUS_CORRUPT',
      `stream ${stream}: message ${seq}: ${formatIssues(parsed.error)}`,
    );
  if (parsed.data.seq !== seq)
    throw new BusError(
      'BUS_CORRUPT',
      `stream ${stream}: message ${seq} holds event seq ${parsed.data.seq} (appended without its expected sequence)`,
    );
  return { event: parsed.data, line: text };
}

function isWrongLastSequence(error: unknown): boolean {
  if (error instanceof JetStreamApiError)
    return (
      error.code === JetStreamApiCodes.StreamWrongLastSequence ||
      error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown
    );
  return /wrong last sequence/i.test(String(error));
}

function isTooLarge(error: unknown): boolean {
  return /maximum (payload|message size)|message size exceeds/i.test(String(error));
}

/** {@link repeatRequest} on the context's stream. */
function repeat<T>(
  context: StreamContext,
  what: string,
  request: () => Promise<T>,
  keep?: (error: unknown) => boolean,
): Promise<T> {
  const settings = {
    label: `stream ${context.stream}`,
    deadlineMs: context.deadline,
    logger: context.logger,
    fields: { stream: context.stream },
  };
  return repeatRequest(settings, what, request, keep);
}

/** How long a consumer may deliver nothing while the stream holds more before it is made again, ms. */
const STALL_MS = 3_000;
/** How often a quiet consumer asks the stream whether it holds more, ms. */
const IDLE_PROBE_MS = 15_000;

/** See the module header. */
class JetStreamEventLog implements SharedBusEventLog {
  readonly kind = 'shared' as const;
  private appended: number;
  private closed = false;
  private following: Promise<void> | undefined;
  private messages: ConsumerMessages | undefined;

  constructor(
    private readonly context: StreamContext,
    last: number,
  ) {
    this.appended = last;
  }

  get lastSeq(): number {
    return this.appended;
  }

  async append(seq: number, line: string, id: string): Promise<SharedAppendResult> {
    const { js, subject, stream, timeout } = this.context;
    let taken = false;
    const ack = await repeat(
      this.context,
      `append event ${id}`,
      () => js.publish(subject, line, { msgID: id, expect: { lastSequence: seq - 1 }, timeout }),
      (error) => {
        if (isWrongLastSequence(error)) taken = true;
        else if (isTooLarge(error))
          throw new BusError(
            'BUS_TOO_LARGE',
            `stream ${stream}: event ${id} (${Buffer.byteLength(line)} bytes) exceeds the NATS message limit`,
            { cause: error },
          );
        return !taken;
      },
    ).catch((error: unknown) => {
      if (taken) return undefined;
      throw error;
    });
    if (!ack) return { ok: false, reason: 'taken' };
    this.appended = Math.max(this.appended, ack.seq);
    return { ok: true, seq: ack.seq, duplicate: ack.duplicate };
  }

  latestSeq(): Promise<number> {
    return repeat(this.context, 'read the stream state', async () => {
      const info = await this.context.jsm.streams.info(this.context.stream);
      this.appended = Math.max(this.appended, info.state.last_seq);
      return info.state.last_seq;
    });
  }

  async read(after: number, upTo: number, limit: number, maxBytes: number): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    let bytes = 0;
    for (let seq = after + 1; seq <= upTo && out.length < limit && bytes < maxBytes; seq += 1) {
      const message = await repeat(this.context, `read event ${seq}`, () =>
        this.context.jsm.streams.getMessage(this.context.stream, { seq }),
      );
      if (!message)
        throw new BusError('BUS_NOT_FOUND', `stream ${this.context.stream}: no message ${seq}`);
      const stored = parseMessage(this.context.stream, seq, message.string());
      out.push(stored);
      bytes += stored.line.length;
    }
    return out;
  }

  follow(
    after: number,
    deliver: (stored: StoredEvent) => Promise<void>,
    onError: (error: unknown) => void,
  ): void {
    let cursor = after;
    let progressAt = Date.now();
    let probedAt = Date.now();
    let probing = false;
    // A consumer that stalls (its server died and the client did not notice) while the stream
    // holds events past the cursor is stopped, and made again from the cursor. What this bus
    // appended is known at once; what other hosts appended is asked of the stream when the
    // consumer has been quiet for IDLE_PROBE_MS.
    const restart = (appended: number) => {
      this.context.logger.warn('bus: the stream consumer stalled; starting it again', {
        stream: this.context.stream,
        at: cursor,
        appended,
      });
      progressAt = Date.now();
      this.messages?.stop();
    };
    const watchdog = setInterval(() => {
      const now = Date.now();
      if (this.appended > cursor && now - progressAt > STALL_MS) restart(this.appended);
      else if (!probing && now - progressAt > IDLE_PROBE_MS && now - probedAt > IDLE_PROBE_MS) {
        probing = true;
        probedAt = now;
        this.context.jsm.streams
          .info(this.context.stream)
          .then((info) => {
            const last = info.state.last_seq;
            if (last > cursor && Date.now() - progressAt > STALL_MS) restart(last);
          })
          .catch(() => undefined)
          .finally(() => {
            probing = false;
          });
      }
    }, 500);
    watchdog.unref();
    this.following = (async () => {
      while (!this.closed) {
        progressAt = Date.now();
        try {
          await consumeFrom(
            this.context,
            cursor,
            async (stored) => {
              if (this.closed) return false;
              await deliver(stored);
              cursor = stored.event.seq;
              progressAt = Date.now();
              this.appended = Math.max(this.appended, cursor);
              return !this.closed;
            },
            (messages) => {
              this.messages = messages;
              if (this.closed) messages.stop();
            },
          );
        } catch (error) {
          if (this.closed) return;
          if (error instanceof BusError) {
            onError(error);
            return;
          }
          this.context.logger.warn('bus: following the stream failed; starting again', {
            stream: this.context.stream,
            at: cursor,
            error: describeError(error),
          });
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    })()
      .catch(onError)
      .finally(() => clearInterval(watchdog));
  }

  async flush(): Promise<void> {
    // Every append is acknowledged once stored by a quorum of the stream's replicas.
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.messages?.stop();
    await this.following;
  }
}
