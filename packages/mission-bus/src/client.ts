import { randomUUID } from 'node:crypto';
import { AnyCellEventSchema, formatIssues } from '@pit/cell-spec';
import type WebSocket from 'ws';
import { z } from 'zod';
import type { AuditEntry } from './audit-trail.js';
import type {
  BusEvent,
  CheckpointInput,
  ConfigureIsolationInput,
  HandoffInput,
  PublishInput,
} from './bus-event.js';
import type { MissionInfo } from './config.js';
import { BusError } from './errors.js';
import { describeError, silentLogger, type BusLogger } from './logger.js';
import {
  BUS_CLOSE_CODES,
  ClientFrameSchema,
  GrantResultSchema,
  ParticipantsResultSchema,
  PROTOCOL_VERSION,
  ServerFrameSchema,
  type GrantResult,
  type ParticipantsResult,
  type ServerFrame,
  type WelcomeFrame,
} from './protocol.js';
import { ResumePacketSchema, type ResumePacket } from './resume-packet.js';
import type { Capability, Role } from './roles.js';

/** Backoff between reconnection attempts: `initialDelayMs · factor^attempt`, capped, with jitter. */
export interface ReconnectOptions {
  /** @default 100 (ms) */
  initialDelayMs?: number;
  /** @default 5000 (ms) */
  maxDelayMs?: number;
  /** @default 2 */
  factor?: number;
  /** Each delay is scaled by a random factor in `1 ± jitter`. @default 0.2 */
  jitter?: number;
}

/** Options of {@link connectBus}. */
export interface ConnectBusOptions {
  /** The server's URL, e.g. `ws://127.0.0.1:7400`. */
  url: string;
  /** The mission id (the cell uuid by default). */
  mission: string;
  /** This participant's name. */
  participant: string;
  /** This participant's token (the server stores only its sha256). */
  token: string;
  /** Reconnect automatically after a lost connection, resuming the subscription; `false` to end instead. @default {} */
  reconnect?: ReconnectOptions | false;
  /** How long `connectBus` keeps trying to reach the server the first time (ms). @default 10000 */
  connectTimeoutMs?: number;
  /**
   * A request unanswered this long is rejected with BUS_TIMEOUT (its outcome is then unknown:
   * the event may be in the stream). 0 waits for ever (ms). @default 30000
   */
  requestTimeoutMs?: number;
  /** Requests allowed to wait for an answer at once; more are refused with BUS_BACKPRESSURE. @default 10000 */
  maxPendingRequests?: number;
  /** Events buffered for a subscription the application has not consumed yet before the client stops reading the socket. @default 10000 */
  maxQueuedEvents?: number;
  /** Largest frame accepted from the server (bytes). @default 67108864 (64 MiB) */
  maxIncomingFrameBytes?: number;
  /**
   * This participant's incarnation epoch (a clustered daemon gives its agents `PIT_EPOCH`): sent
   * with every publish, checkpoint and handoff that names none, so that the server refuses them
   * (BUS_STALE_EPOCH) once a newer incarnation of this participant exists.
   */
  epoch?: number;
  logger?: BusLogger;
  /** Called on every state change. */
  onStateChange?: (state: BusClientState) => void;
}

/** Where a client stands. */
export type BusClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** An acknowledged event: durable as the server's fsync policy promises. */
export interface BusAck {
  seq: number;
  id: string;
  ts: string;
}

/** Options of {@link BusClient.subscribe}. */
export interface ClientSubscribeOptions {
  /** Receive events after this sequence number. @default 0 */
  after?: number;
}

/**
 * A subscription: an async iterable of events in sequence order, with no gap and no
 * duplicate, across reconnects (it resumes after the last sequence number received).
 */
export interface BusSubscription extends AsyncIterable<BusEvent> {
  /** The last sequence number received. */
  readonly lastSeq: number;
  /** Ends the subscription; a pending `next()` completes. */
  close(): void;
}

/** A connection to a mission bus server. */
export interface BusClient {
  readonly state: BusClientState;
  readonly participant: string;
  /** The mission, from the server's welcome. */
  readonly mission: MissionInfo;
  /** This participant's role (`null`: not a participant, it can do nothing). */
  readonly role: Role | null;
  readonly capabilities: readonly Capability[];
  /**
   * Publishes a message (with `to`: a direct message). Resends after a reconnect carry the same
   * id, so the server records it once.
   * @throws {BusError} the server's refusal (BUS_FORBIDDEN, BUS_INVALID, …), BUS_TOO_LARGE, BUS_TIMEOUT, BUS_BACKPRESSURE, BUS_CLOSED.
   */
  publish(input: PublishInput): Promise<BusAck>;
  /** Records a checkpoint. @throws {BusError} as {@link publish}. */
  checkpoint(input: CheckpointInput): Promise<BusAck>;
  /** Hands work off at a checkpoint. @throws {BusError} as {@link publish}, BUS_NOT_FOUND, BUS_UNKNOWN_PARTICIPANT. */
  handoff(input: HandoffInput): Promise<BusAck>;
  /** Sets or clears a participant's isolation profile. @throws {BusError} as {@link publish}. */
  configureIsolation(input: ConfigureIsolationInput): Promise<BusAck>;
  /** The resume packet of a handoff (needs `read`). @throws {BusError} BUS_NOT_FOUND, BUS_FORBIDDEN. */
  resumePacket(handoffId: string): Promise<ResumePacket>;
  /** Participants, roles and isolation profiles (needs `read`). */
  participants(): Promise<ParticipantsResult>;
  /** The last entries of the audit trail (needs `audit`). */
  audit(options?: { limit?: number }): Promise<AuditEntry[]>;
  /**
   * Gives `participant` a role, or removes it with `null` (needs `grant`: a lead by default).
   * @returns the `participant` event's sequence number, `null` when it already had that role.
   * @throws {BusError} BUS_FORBIDDEN, BUS_INVALID, BUS_TIMEOUT, BUS_CLOSED.
   */
  grant(participant: string, role: Role | null): Promise<GrantResult>;
  /**
   * Subscribes to the stream after `after`: backlog, then live events.
   * @throws {BusError} BUS_ALREADY_SUBSCRIBED while another subscription of this client is open.
   */
  subscribe(options?: ClientSubscribeOptions): BusSubscription;
  /** Closes the connection; waiting requests are rejected with BUS_CLOSED. */
  close(): Promise<void>;
}

interface PendingRequest {
  ref: number;
  text: string;
  sent: boolean;
  accept: (frame: ServerFrame) => void;
  reject: (error: BusError) => void;
  timer: NodeJS.Timeout | undefined;
}

class Subscription implements BusSubscription {
  lastSeq: number;
  ref: number | undefined;
  private queue: BusEvent[] = [];
  private waiter:
    | { resolve: (result: IteratorResult<BusEvent>) => void; reject: (error: unknown) => void }
    | undefined;
  private done = false;
  private error: BusError | undefined;

  constructor(
    private readonly client: Client,
    after: number,
  ) {
    this.lastSeq = after;
  }

  get active(): boolean {
    return !this.done;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Takes an event from the wire; false when it breaks the order (a gap). */
  push(event: BusEvent): boolean {
    if (this.done || event.seq <= this.lastSeq) return true; // a duplicate is dropped
    if (event.seq !== this.lastSeq + 1) return false;
    this.lastSeq = event.seq;
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve({ value: event, done: false });
    } else {
      this.queue.push(event);
    }
    return true;
  }

  fail(error: BusError): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    this.client.forget(this);
    if (this.waiter && this.queue.length === 0) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.reject(error);
    }
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.client.unsubscribe(this);
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve({ value: undefined, done: true });
    }
  }

  private next(): Promise<IteratorResult<BusEvent>> {
    const event = this.queue.shift();
    if (event) {
      this.client.consumed(this);
      return Promise.resolve({ value: event, done: false });
    }
    if (this.error) {
      const error = this.error;
      this.error = undefined;
      return Promise.reject(error);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<BusEvent> {
    return {
      next: () => this.next(),
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/** The `ws` constructor, loaded by the first {@link connectBus}. */
let WebSocketImpl: typeof WebSocket | undefined;

class Client implements BusClient {
  private ws: WebSocket | undefined;
  private welcome: WelcomeFrame | undefined;
  private nextRef = 1;
  private readonly requests = new Map<number, PendingRequest>();
  private subscription: Subscription | undefined;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private deadTimer: NodeJS.Timeout | undefined;
  private stateValue: BusClientState = 'connecting';
  private readonly started = Date.now();
  private readonly logger: BusLogger;
  private settleFirst: { resolve: () => void; reject: (error: BusError) => void } | undefined;
  readonly opened: Promise<void>;

  constructor(private readonly options: ConnectBusOptions) {
    this.logger = options.logger ?? silentLogger;
    this.opened = new Promise<void>((resolve, reject) => {
      this.settleFirst = { resolve, reject };
    });
    this.connect();
  }

  get state(): BusClientState {
    return this.stateValue;
  }

  get participant(): string {
    return this.options.participant;
  }

  get mission(): MissionInfo {
    return (this.welcome as WelcomeFrame).mission;
  }

  get role(): Role | null {
    return this.welcome?.role ?? null;
  }

  get capabilities(): readonly Capability[] {
    return this.welcome?.capabilities ?? [];
  }

  publish(input: PublishInput): Promise<BusAck> {
    return this.ack({
      ...this.epochField(),
      ...input,
      op: 'publish',
      id: input.id ?? randomUUID(),
    });
  }

  checkpoint(input: CheckpointInput): Promise<BusAck> {
    return this.ack({
      ...this.epochField(),
      ...input,
      op: 'checkpoint',
      id: input.id ?? randomUUID(),
    });
  }

  handoff(input: HandoffInput): Promise<BusAck> {
    return this.ack({
      ...this.epochField(),
      ...input,
      op: 'handoff',
      id: input.id ?? randomUUID(),
    });
  }

  private epochField(): { epoch?: number } {
    return this.options.epoch === undefined ? {} : { epoch: this.options.epoch };
  }

  configureIsolation(input: ConfigureIsolationInput): Promise<BusAck> {
    return this.ack({ ...input, op: 'configure_isolation', id: input.id ?? randomUUID() });
  }

  resumePacket(handoffId: string): Promise<ResumePacket> {
    return this.result({ op: 'resume_packet', handoff: handoffId }, ResumePacketSchema);
  }

  participants(): Promise<ParticipantsResult> {
    return this.result({ op: 'participants' }, ParticipantsResultSchema);
  }

  grant(participant: string, role: Role | null): Promise<GrantResult> {
    return this.result({ op: 'grant', participant, role }, GrantResultSchema);
  }

  audit(options: { limit?: number } = {}): Promise<AuditEntry[]> {
    return this.result({ op: 'audit', limit: options.limit ?? 100 }, z.array(AnyCellEventSchema));
  }

  subscribe(options: ClientSubscribeOptions = {}): BusSubscription {
    if (this.stateValue === 'closed')
      throw new BusError('BUS_CLOSED', `${this.options.url}: the client is closed`);
    if (this.subscription?.active)
      throw new BusError(
        'BUS_ALREADY_SUBSCRIBED',
        `${this.options.url}: this client already has a subscription; close it first`,
      );
    const after = options.after ?? 0;
    if (!Number.isSafeInteger(after) || after < 0)
      throw new BusError(
        'BUS_INVALID',
        `subscribe: after: must be a non-negative integer, got ${after}`,
      );
    const subscription = new Subscription(this, after);
    this.subscription = subscription;
    if (this.stateValue === 'open') this.sendSubscribe(subscription);
    return subscription;
  }

  async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    this.shutdown(new BusError('BUS_CLOSED', `${this.options.url}: the client was closed`));
  }

  /** @internal The application took an event: read the socket again once the queue has room. */
  consumed(subscription: Subscription): void {
    const limit = this.options.maxQueuedEvents ?? 10_000;
    if (subscription === this.subscription && this.ws?.isPaused && subscription.queued < limit / 2)
      this.ws.resume();
  }

  /** @internal */
  unsubscribe(subscription: Subscription): void {
    if (this.subscription !== subscription) return;
    this.subscription = undefined;
    if (this.stateValue === 'open' && subscription.ref !== undefined) {
      this.result({ op: 'unsubscribe' }, z.unknown()).catch(() => undefined);
    }
    if (this.ws?.isPaused) this.ws.resume();
  }

  /** @internal */
  forget(subscription: Subscription): void {
    if (this.subscription === subscription) this.subscription = undefined;
    if (this.ws?.isPaused) this.ws.resume();
  }

  private setState(state: BusClientState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    try {
      this.options.onStateChange?.(state);
    } catch (error) {
      this.logger.warn('bus client: onStateChange threw', { error: describeError(error) });
    }
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    const ws = new WebSocketImpl!(this.options.url, {
      maxPayload: this.options.maxIncomingFrameBytes ?? 64 * 1024 * 1024,
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
    });
    this.ws = ws;
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          op: 'hello',
          v: PROTOCOL_VERSION,
          mission: this.options.mission,
          participant: this.options.participant,
          token: this.options.token,
        }),
      );
    });
    ws.on('message', (data, isBinary) => {
      if (ws !== this.ws) return;
      this.armDeadTimer();
      if (isBinary) {
        this.logger.warn('bus client: ignoring a binary frame');
        return;
      }
      this.receive(
        Array.isArray(data)
          ? Buffer.concat(data).toString('utf8')
          : Buffer.from(data as ArrayBuffer).toString('utf8'),
      );
    });
    ws.on('ping', () => {
      if (ws === this.ws) this.armDeadTimer();
    });
    ws.on('error', (error) =>
      this.logger.debug('bus client: socket error', {
        url: this.options.url,
        error: error.message,
      }),
    );
    ws.on('close', (code, reason) => this.lost(ws, code, reason.toString('utf8')));
  }

  private armDeadTimer(): void {
    if (!this.welcome) return;
    if (this.deadTimer) clearTimeout(this.deadTimer);
    const limit = this.welcome.heartbeat_ms * 2 + 1000;
    const ws = this.ws;
    this.deadTimer = setTimeout(() => {
      this.logger.warn('bus client: no ping from the server; reconnecting', {
        url: this.options.url,
        silentMs: limit,
      });
      ws?.terminate();
    }, limit);
    this.deadTimer.unref();
  }

  private receive(text: string): void {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      this.logger.warn('bus client: ignoring a frame that is not JSON', {
        error: describeError(error),
      });
      return;
    }
    const parsed = ServerFrameSchema.safeParse(raw);
    if (!parsed.success) {
      this.logger.warn('bus client: ignoring a malformed frame', {
        issues: formatIssues(parsed.error),
      });
      return;
    }
    const frame = parsed.data;
    switch (frame.type) {
      case 'welcome':
        this.opened_(frame);
        return;
      case 'event':
      case 'events': {
        const subscription = this.subscription;
        if (!subscription) return;
        for (const event of frame.type === 'event' ? [frame.event] : frame.events) {
          if (!subscription.push(event)) {
            this.logger.error('bus client: gap in the stream; resubscribing', {
              expected: subscription.lastSeq + 1,
              got: event.seq,
            });
            this.ws?.terminate();
            return;
          }
        }
        if (
          subscription.queued >= (this.options.maxQueuedEvents ?? 10_000) &&
          this.ws &&
          !this.ws.isPaused
        )
          this.ws.pause();
        return;
      }
      case 'subscribed':
        return;
      case 'error': {
        const error = new BusError(frame.code, frame.message);
        if (frame.ref !== null) {
          const request = this.requests.get(frame.ref);
          if (request) {
            this.finish(request);
            request.reject(error);
            return;
          }
          if (this.subscription && this.subscription.ref === frame.ref) {
            this.subscription.fail(error);
            return;
          }
        }
        this.logger.warn('bus client: error from the server', {
          code: frame.code,
          message: frame.message,
        });
        return;
      }
      default: {
        const request = this.requests.get(frame.ref);
        if (!request) return;
        this.finish(request);
        request.accept(frame);
      }
    }
  }

  private opened_(welcome: WelcomeFrame): void {
    this.welcome = welcome;
    this.attempt = 0;
    this.setState('open');
    this.armDeadTimer();
    const first = this.settleFirst;
    this.settleFirst = undefined;
    first?.resolve();
    // Requests that were never answered go again, in their original order, with their ids.
    for (const request of this.requests.values()) this.transmit(request);
    if (this.subscription?.active) this.sendSubscribe(this.subscription);
  }

  private sendSubscribe(subscription: Subscription): void {
    subscription.ref = this.nextRef++;
    this.ws?.send(
      JSON.stringify({ op: 'subscribe', ref: subscription.ref, after: subscription.lastSeq }),
    );
    if (subscription.queued >= (this.options.maxQueuedEvents ?? 10_000)) this.ws?.pause();
  }

  private lost(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = undefined;
    if (this.deadTimer) clearTimeout(this.deadTimer);
    this.deadTimer = undefined;
    for (const request of this.requests.values()) request.sent = false;
    if (this.stateValue === 'closed') return;
    this.logger.info('bus client: connection lost', { url: this.options.url, code, reason });
    if (code === BUS_CLOSE_CODES.unauthenticated) {
      const error = new BusError(
        'BUS_UNAUTHENTICATED',
        `${this.options.url}: mission ${this.options.mission}, participant ${this.options.participant}: ${reason || 'unauthenticated'}`,
      );
      this.shutdown(error);
      return;
    }
    if (this.options.reconnect === false) {
      this.shutdown(
        new BusError(
          'BUS_CLOSED',
          `${this.options.url}: connection closed (${code}${reason ? ` ${reason}` : ''}) and reconnect is off`,
        ),
      );
      return;
    }
    if (this.settleFirst && Date.now() - this.started > (this.options.connectTimeoutMs ?? 10_000)) {
      this.shutdown(
        new BusError(
          'BUS_UNREACHABLE',
          `${this.options.url}: no connection within ${this.options.connectTimeoutMs ?? 10_000} ms (last close ${code}${reason ? ` ${reason}` : ''})`,
          { retryable: true },
        ),
      );
      return;
    }
    this.setState(this.settleFirst ? 'connecting' : 'reconnecting');
    const backoff = this.options.reconnect ?? {};
    const base = Math.min(
      backoff.maxDelayMs ?? 5000,
      (backoff.initialDelayMs ?? 100) * (backoff.factor ?? 2) ** this.attempt,
    );
    const jitter = backoff.jitter ?? 0.2;
    const delay = Math.max(0, Math.round(base * (1 - jitter + Math.random() * 2 * jitter)));
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private shutdown(error: BusError): void {
    if (this.stateValue === 'closed') return;
    this.setState('closed');
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.deadTimer) clearTimeout(this.deadTimer);
    const first = this.settleFirst;
    this.settleFirst = undefined;
    first?.reject(error);
    for (const request of [...this.requests.values()]) {
      this.finish(request);
      request.reject(error);
    }
    const subscription = this.subscription;
    if (subscription) {
      if (error.code === 'BUS_CLOSED') subscription.close();
      else subscription.fail(error);
    }
    const ws = this.ws;
    this.ws = undefined;
    if (ws && ws.readyState === ws.OPEN) ws.close(1000, 'client closed');
    else ws?.terminate();
  }

  private finish(request: PendingRequest): void {
    if (request.timer) clearTimeout(request.timer);
    this.requests.delete(request.ref);
  }

  private transmit(request: PendingRequest): void {
    if (request.sent || this.stateValue !== 'open' || !this.ws || !this.welcome) return;
    if (Buffer.byteLength(request.text, 'utf8') > this.welcome.max_frame_bytes) {
      this.finish(request);
      request.reject(
        new BusError(
          'BUS_TOO_LARGE',
          `request ${request.ref}: frame of ${Buffer.byteLength(request.text, 'utf8')} bytes exceeds the server's limit of ${this.welcome.max_frame_bytes}`,
        ),
      );
      return;
    }
    request.sent = true;
    this.ws.send(request.text);
  }

  private send(
    body: Record<string, unknown>,
    accept: (frame: ServerFrame) => void,
    reject: (error: BusError) => void,
  ): void {
    if (this.stateValue === 'closed')
      return reject(new BusError('BUS_CLOSED', `${this.options.url}: the client is closed`));
    if (this.requests.size >= (this.options.maxPendingRequests ?? 10_000)) {
      return reject(
        new BusError(
          'BUS_BACKPRESSURE',
          `${this.options.url}: ${this.requests.size} requests are already waiting for an answer`,
          { retryable: true },
        ),
      );
    }
    const ref = this.nextRef++;
    const frame = { ...body, ref };
    const checked = ClientFrameSchema.safeParse(frame);
    if (!checked.success)
      return reject(
        new BusError('BUS_INVALID', `${String(body.op)}: ${formatIssues(checked.error)}`),
      );
    const timeoutMs = this.options.requestTimeoutMs ?? 30_000;
    const request: PendingRequest = {
      ref,
      text: JSON.stringify(frame),
      sent: false,
      accept,
      reject,
      timer: undefined,
    };
    if (timeoutMs > 0) {
      request.timer = setTimeout(() => {
        this.finish(request);
        reject(
          new BusError(
            'BUS_TIMEOUT',
            `${String(body.op)} (ref ${ref}): no answer within ${timeoutMs} ms; it may or may not have been applied`,
            { retryable: true },
          ),
        );
      }, timeoutMs);
    }
    this.requests.set(ref, request);
    this.transmit(request);
  }

  private ack(body: Record<string, unknown>): Promise<BusAck> {
    return new Promise<BusAck>((resolve, reject) =>
      this.send(
        body,
        (frame) => {
          if (frame.type === 'ack') resolve({ seq: frame.seq, id: frame.id, ts: frame.ts });
          else
            reject(
              new BusError(
                'BUS_BAD_FRAME',
                `${String(body.op)}: expected an ack, got a ${frame.type} frame`,
              ),
            );
        },
        reject,
      ),
    );
  }

  private result<T extends z.ZodType>(
    body: Record<string, unknown>,
    schema: T,
  ): Promise<z.output<T>> {
    return new Promise<z.output<T>>((resolve, reject) =>
      this.send(
        body,
        (frame) => {
          if (frame.type !== 'result')
            return reject(
              new BusError(
                'BUS_BAD_FRAME',
                `${String(body.op)}: expected a result, got a ${frame.type} frame`,
              ),
            );
          const parsed = schema.safeParse(frame.result);
          if (parsed.success) resolve(parsed.data);
          else
            reject(
              new BusError(
                'BUS_BAD_FRAME',
                `${String(body.op)}: result: ${formatIssues(parsed.error)}`,
              ),
            );
        },
        reject,
      ),
    );
  }
}

/**
 * Connects to a mission bus server and authenticates. Resolves once the server welcomed the
 * participant; keeps trying (with backoff) for `connectTimeoutMs` while the server is
 * unreachable. Afterwards the client reconnects by itself, resending unanswered requests with
 * their ids (the server records each once) and resuming its subscription after the last
 * sequence number it received.
 * @throws {BusError} BUS_UNAUTHENTICATED (unknown mission or bad token), BUS_UNREACHABLE.
 * @example
 * const client = await connectBus({ url: 'ws://127.0.0.1:7400', mission: cellUuid, participant: 'forge', token });
 * const { seq } = await client.publish({ topic: 'status', payload: { ok: true } });
 * for await (const event of client.subscribe({ after: 0 })) console.log(event.seq, event.event);
 */
export async function connectBus(options: ConnectBusOptions): Promise<BusClient> {
  // ws is loaded on the first connection, not at import: a process that only imports the package
  // (the daemon with its bus off) never pays for it.
  WebSocketImpl ??= (await import('ws')).default;
  const client = new Client(options);
  await client.opened;
  return client;
}
