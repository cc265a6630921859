import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatIssues } from '@pit/cell-spec';
import type { RawData, WebSocket } from 'ws';
import type { BusEvent } from './bus-event.js';
import { BusError, type BusErrorCode } from './errors.js';
import { describeError, silentLogger, type BusLogger } from './logger.js';
import type { MissionBus } from './mission-bus.js';
import {
  BUS_CLOSE_CODES,
  ClientFrameSchema,
  eventFrame,
  eventsFrame,
  type ClientFrame,
  type GrantResult,
  type ParticipantsResult,
} from './protocol.js';
import type { StoredEvent } from './segment-log.js';

/** Options of {@link createBusServer}. */
export interface BusServerOptions {
  /** The buses served from the start (one per cell; more with `addBus`). @default [] */
  buses?: MissionBus[];
  /** Interface to bind. @default '127.0.0.1' */
  host?: string;
  /** Port to bind; 0 picks a free one. @default 0 */
  port?: number;
  /** Frames larger than this are refused: ws closes the connection with 1009 (bytes). @default 2097152 (2 MiB) */
  maxFrameBytes?: number;
  /**
   * Per-client bound on bytes queued for sending. Delivery to a subscriber pauses while its
   * queue is over this; a subscriber that stays over it for `stallTimeoutMs` is disconnected
   * with close code 4008 (bytes). @default 8388608 (8 MiB)
   */
  maxBufferedBytes?: number;
  /** How long a subscriber may stay over `maxBufferedBytes` before it is disconnected (ms). @default 5000 */
  stallTimeoutMs?: number;
  /** Ping interval; a client that has not answered the previous ping is terminated (ms). @default 15000 */
  heartbeatMs?: number;
  /** A connection without a successful hello after this long is closed with 4408 (ms). @default 10000 */
  helloTimeoutMs?: number;
  /** Requests one connection may have in flight before the server stops reading from it. @default 1024 */
  maxInflight?: number;
  /** Close the buses on `close()` (otherwise they are flushed and left open). @default false */
  closeBuses?: boolean;
  logger?: BusLogger;
}

/** A connection as the server sees it. */
export interface BusConnectionInfo {
  mission: string | null;
  participant: string | null;
  /** The last sequence number sent to its subscription, or `null` without one. */
  cursor: number | null;
  bufferedBytes: number;
}

/** Counters of a running server. */
export interface BusServerStats {
  connections: number;
  /** The most bytes ever queued for one client. */
  peakBufferedBytes: number;
  /** Subscribers disconnected with 4008 for falling behind. */
  slowConsumersDisconnected: number;
  /** Frames refused as malformed. */
  badFrames: number;
}

/** A running mission-bus WebSocket server. */
export interface BusServer {
  /** `ws://host:port`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Serves another mission's bus. @throws {BusError} BUS_CONFLICT when that mission is already served. */
  addBus(bus: MissionBus): void;
  /** Stops serving a mission: its connections are closed with 4404. The bus is left open. */
  removeBus(missionId: string): void;
  connections(): BusConnectionInfo[];
  stats(): BusServerStats;
  /**
   * Graceful shutdown: stops accepting, refuses new requests (BUS_CLOSED), waits for the
   * requests in flight to be answered, closes connections with 1001, flushes (fsyncs) every bus's log,
   * and closes the buses when `closeBuses` is set.
   */
  close(): Promise<void>;
}

/** Most events in one `events` frame. */
const BATCH_MAX_EVENTS = 256;
/** Most bytes of event lines in one `events` frame. */
const BATCH_MAX_BYTES = 256 * 1024;

interface Subscription {
  ref: number;
  cursor: number;
  reading: boolean;
  stalledSince: number | undefined;
  poll: NodeJS.Timeout | undefined;
}

interface ServerContext {
  readonly options: Required<Omit<BusServerOptions, 'buses' | 'logger'>>;
  readonly logger: BusLogger;
  readonly buses: Map<string, MissionBus>;
  /** The connections subscribed to each bus, for live delivery. */
  readonly subscribers: Map<MissionBus, Set<Connection>>;
  readonly stats: BusServerStats;
  closing: boolean;
}

class Connection {
  bus: MissionBus | undefined;
  participant: string | undefined;
  alive = true;
  inflight = 0;
  subscription: Subscription | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  private readonly idle = new Set<() => void>();

  constructor(
    readonly ws: WebSocket,
    private readonly context: ServerContext,
  ) {
    this.helloTimer = setTimeout(() => {
      this.sendError(
        null,
        'BUS_UNAUTHENTICATED',
        `no hello within ${context.options.helloTimeoutMs} ms`,
      );
      ws.close(BUS_CLOSE_CODES.helloTimeout, 'hello timeout');
    }, context.options.helloTimeoutMs);
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', (error) =>
      context.logger.debug('bus server: connection error', {
        error: error.message,
        participant: this.participant,
      }),
    );
  }

  dispose(): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    this.endSubscription();
    for (const wake of [...this.idle]) wake();
  }

  info(): BusConnectionInfo {
    return {
      mission: this.bus?.mission.id ?? null,
      participant: this.participant ?? null,
      cursor: this.subscription?.cursor ?? null,
      bufferedBytes: this.ws.bufferedAmount,
    };
  }

  /** Resolves once no request of this connection is in flight. */
  async drained(timeoutMs: number): Promise<void> {
    if (this.inflight === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const self = this.idle;
      function done(): void {
        clearTimeout(timer);
        self.delete(done);
        resolve();
      }
      self.add(done);
    });
  }

  send(text: string): void {
    this.ws.send(text);
    const buffered = this.ws.bufferedAmount;
    if (buffered > this.context.stats.peakBufferedBytes)
      this.context.stats.peakBufferedBytes = buffered;
  }

  sendJson(frame: object): void {
    this.send(JSON.stringify(frame));
  }

  sendError(ref: number | null, code: BusErrorCode, message: string): void {
    this.sendJson({ type: 'error', ref, code, message });
  }

  private receive(data: RawData, isBinary: boolean): void {
    this.alive = true;
    if (isBinary) {
      this.context.stats.badFrames += 1;
      this.sendError(
        null,
        'BUS_BAD_FRAME',
        'binary frames are not accepted; send JSON text frames',
      );
      return;
    }
    const text = Array.isArray(data)
      ? Buffer.concat(data).toString('utf8')
      : Buffer.from(data as ArrayBuffer).toString('utf8');
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      this.context.stats.badFrames += 1;
      this.sendError(null, 'BUS_BAD_FRAME', `frame is not valid JSON: ${(error as Error).message}`);
      return;
    }
    const parsed = ClientFrameSchema.safeParse(raw);
    if (!parsed.success) {
      this.context.stats.badFrames += 1;
      const ref =
        typeof raw === 'object' &&
        raw !== null &&
        Number.isSafeInteger((raw as { ref?: unknown }).ref)
          ? ((raw as { ref: number }).ref as number)
          : null;
      this.sendError(
        ref !== null && ref >= 0 ? ref : null,
        'BUS_BAD_FRAME',
        `frame: ${formatIssues(parsed.error)}`,
      );
      return;
    }
    const frame = parsed.data;
    if (frame.op === 'hello') {
      this.hello(frame);
      return;
    }
    if (!this.bus || !this.participant) {
      this.sendError(
        frame.ref,
        'BUS_UNAUTHENTICATED',
        `${frame.op}: send a hello with a valid token first`,
      );
      return;
    }
    if (this.context.closing) {
      this.sendError(frame.ref, 'BUS_CLOSED', `${frame.op}: the server is shutting down`);
      return;
    }
    this.track(frame.ref, () => this.handle(frame));
  }

  private hello(frame: Extract<ClientFrame, { op: 'hello' }>): void {
    const ref = frame.ref ?? null;
    if (this.bus) {
      this.sendError(ref, 'BUS_BAD_FRAME', `hello: already authenticated as ${this.participant}`);
      return;
    }
    const bus = this.context.buses.get(frame.mission);
    if (bus?.closed) {
      this.sendError(
        ref,
        'BUS_CLOSED',
        `hello: mission ${frame.mission}: the bus is closed; try again later`,
      );
      this.ws.close(BUS_CLOSE_CODES.tryAgainLater, 'bus closed');
      return;
    }
    if (!bus || !bus.authenticate(frame.participant, frame.token)) {
      bus?.recordAuthFailure(frame.participant, 'bad token');
      this.context.logger.warn('bus server: authentication failed', {
        mission: frame.mission,
        participant: frame.participant,
      });
      this.sendError(
        ref,
        'BUS_UNAUTHENTICATED',
        `hello: mission ${frame.mission}, participant ${frame.participant}: unknown mission or bad token`,
      );
      this.ws.close(BUS_CLOSE_CODES.unauthenticated, 'unauthenticated');
      return;
    }
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    this.bus = bus;
    this.participant = frame.participant;
    const role = bus.roleOf(frame.participant) ?? null;
    this.sendJson({
      type: 'welcome',
      mission: bus.mission,
      participant: frame.participant,
      role,
      capabilities: role
        ? (bus.participants().find((participant) => participant.name === frame.participant)
            ?.capabilities ?? [])
        : [],
      head: bus.head,
      heartbeat_ms: this.context.options.heartbeatMs,
      max_frame_bytes: this.context.options.maxFrameBytes,
    });
  }

  private track(ref: number, work: () => Promise<void> | void): void {
    this.inflight += 1;
    if (this.inflight >= this.context.options.maxInflight && !this.ws.isPaused) this.ws.pause();
    let result: Promise<void> | void;
    try {
      result = work();
    } catch (error) {
      result = Promise.reject(error);
    }
    Promise.resolve(result)
      .catch((error: unknown) => {
        if (error instanceof BusError) this.sendError(ref, error.code, error.message);
        else {
          this.context.logger.error('bus server: request failed', { error: describeError(error) });
          this.sendError(ref, 'BUS_IO', describeError(error));
        }
      })
      .finally(() => {
        this.inflight -= 1;
        if (this.ws.isPaused && this.inflight < this.context.options.maxInflight / 2)
          this.ws.resume();
        if (this.inflight === 0) for (const wake of [...this.idle]) wake();
      });
  }

  private handle(frame: Exclude<ClientFrame, { op: 'hello' }>): Promise<void> | void {
    const bus = this.bus as MissionBus;
    const sender = this.participant as string;
    const ack = (event: BusEvent): void =>
      this.sendJson({ type: 'ack', ref: frame.ref, seq: event.seq, id: event.id, ts: event.ts });
    const result = (value: unknown): void =>
      this.sendJson({ type: 'result', ref: frame.ref, result: value });
    switch (frame.op) {
      // A write passed the same strict schema as the bus's input (extended with op and ref):
      // it goes to the bus without a second parse. The bus checks the sender's role.
      case 'publish': {
        const { op: _op, ref: _ref, ...input } = frame;
        return bus.submit(sender, { op: 'publish', input }).then(ack);
      }
      case 'checkpoint': {
        const { op: _op, ref: _ref, ...input } = frame;
        return bus.submit(sender, { op: 'checkpoint', input }).then(ack);
      }
      case 'handoff': {
        const { op: _op, ref: _ref, ...input } = frame;
        return bus.submit(sender, { op: 'handoff', input }).then(ack);
      }
      case 'configure_isolation': {
        const { op: _op, ref: _ref, ...input } = frame;
        return bus.submit(sender, { op: 'configure_isolation', input }).then(ack);
      }
      case 'subscribe':
        return this.subscribe(frame);
      case 'unsubscribe':
        this.endSubscription();
        return result({ unsubscribed: true });
      case 'resume_packet':
        bus.authorize(sender, 'read', 'resume_packet');
        return bus.buildResumePacket(frame.handoff).then(result);
      case 'participants': {
        bus.authorize(sender, 'read', 'participants');
        const value: ParticipantsResult = {
          participants: bus.participants(),
          roles: bus.roles(),
          isolation: bus.isolationProfiles(),
        };
        return result(value);
      }
      case 'grant': {
        const { participant, role } = frame;
        return bus.grant(sender, { participant, role }).then((event) => {
          const value: GrantResult = { seq: event?.seq ?? null };
          result(value);
        });
      }
      case 'audit':
        bus.authorize(sender, 'audit', 'audit');
        return bus.readAudit({ limit: frame.limit }).then(result);
    }
  }

  private subscribe(frame: Extract<ClientFrame, { op: 'subscribe' }>): void {
    const bus = this.bus as MissionBus;
    bus.authorize(this.participant as string, 'read', 'subscribe');
    if (this.subscription)
      throw new BusError(
        'BUS_ALREADY_SUBSCRIBED',
        `subscribe: this connection already has a subscription (ref ${this.subscription.ref}); unsubscribe first`,
      );
    if (frame.after > bus.head) {
      throw new BusError(
        'BUS_INVALID',
        `subscribe: after: ${frame.after} is beyond the end of the stream (${bus.head}); the server has fewer events than the client saw`,
      );
    }
    this.subscription = {
      ref: frame.ref,
      cursor: frame.after,
      reading: false,
      stalledSince: undefined,
      poll: undefined,
    };
    this.context.subscribers.get(bus)?.add(this);
    this.sendJson({ type: 'subscribed', ref: frame.ref, after: frame.after, head: bus.head });
    this.pump();
  }

  endSubscription(): void {
    const subscription = this.subscription;
    if (!subscription) return;
    if (subscription.poll) clearInterval(subscription.poll);
    this.subscription = undefined;
    if (this.bus) this.context.subscribers.get(this.bus)?.delete(this);
  }

  /**
   * Sends the subscription everything between its cursor and the head: from memory when
   * cached (synchronously, so live events go out as they are acknowledged), from the log in
   * pages otherwise; pauses while the client's send queue is over the bound.
   */
  pump(): void {
    const subscription = this.subscription;
    const bus = this.bus;
    if (!subscription || !bus || subscription.reading || subscription.poll) return;
    const { maxBufferedBytes } = this.context.options;
    while (this.subscription === subscription && subscription.cursor < bus.head) {
      if (!bus.can(this.participant as string, 'read')) {
        this.endSubscription();
        this.sendError(
          subscription.ref,
          'BUS_FORBIDDEN',
          `subscribe: ${this.participant} no longer has the read capability`,
        );
        return;
      }
      if (this.ws.bufferedAmount >= maxBufferedBytes) {
        this.stall(subscription);
        return;
      }
      const page = bus.readCached(subscription.cursor, 256);
      if (!page) {
        subscription.reading = true;
        bus.readStored(subscription.cursor, 256, 1024 * 1024).then(
          (stored) => {
            subscription.reading = false;
            this.sendPage(subscription, stored);
            this.pump();
          },
          (error: unknown) => {
            subscription.reading = false;
            if (this.subscription !== subscription) return;
            this.endSubscription();
            this.sendError(
              subscription.ref,
              error instanceof BusError ? error.code : 'BUS_IO',
              `subscribe: ${describeError(error)}`,
            );
          },
        );
        return;
      }
      if (page.length === 0) break;
      this.sendPage(subscription, page);
    }
    subscription.stalledSince = undefined;
  }

  /**
   * Sends a page of events, several at a time in one `events` frame when more than one is
   * ready (one write instead of one per event), stopping when the client's queue is full.
   */
  private sendPage(subscription: Subscription, page: StoredEvent[]): void {
    let start = page.findIndex((stored) => stored.event.seq === subscription.cursor + 1);
    if (start === -1) return;
    while (start < page.length && this.subscription === subscription) {
      let end = start + 1;
      let bytes = (page[start] as StoredEvent).line.length;
      while (end < page.length && end - start < BATCH_MAX_EVENTS) {
        const next = page[end] as StoredEvent;
        if (
          next.event.seq !== (page[end - 1] as StoredEvent).event.seq + 1 ||
          bytes + next.line.length > BATCH_MAX_BYTES
        )
          break;
        bytes += next.line.length;
        end += 1;
      }
      const first = page[start] as StoredEvent;
      if (end - start === 1) {
        first.frame ??= eventFrame(first.line);
        this.send(first.frame);
      } else {
        this.send(eventsFrame(page.slice(start, end).map((stored) => stored.line)));
      }
      subscription.cursor = (page[end - 1] as StoredEvent).event.seq;
      start = end;
      if (this.ws.bufferedAmount >= this.context.options.maxBufferedBytes) return;
    }
  }

  private stall(subscription: Subscription): void {
    subscription.stalledSince ??= Date.now();
    const { maxBufferedBytes, stallTimeoutMs } = this.context.options;
    subscription.poll = setInterval(() => {
      if (this.subscription !== subscription) {
        clearInterval(subscription.poll);
        return;
      }
      if (this.ws.bufferedAmount < maxBufferedBytes / 2) {
        clearInterval(subscription.poll);
        subscription.poll = undefined;
        subscription.stalledSince = undefined;
        this.pump();
        return;
      }
      if (Date.now() - (subscription.stalledSince ?? Date.now()) > stallTimeoutMs) {
        const behind = (this.bus?.head ?? 0) - subscription.cursor;
        this.context.stats.slowConsumersDisconnected += 1;
        this.context.logger.warn('bus server: disconnecting a slow consumer', {
          participant: this.participant,
          cursor: subscription.cursor,
          behind,
        });
        this.endSubscription();
        // Close with a reason; if the client does not read it within a second, drop the socket so its queue is freed.
        this.ws.close(
          BUS_CLOSE_CODES.slowConsumer,
          `BUS_SLOW_CONSUMER: ${behind} events behind after seq ${subscription.cursor}`.slice(
            0,
            120,
          ),
        );
        setTimeout(() => this.ws.terminate(), 1000).unref();
      }
    }, 20);
  }
}

/**
 * Starts a WebSocket server for one or many missions' buses, bound to 127.0.0.1 by default.
 * A client's first frame is a hello naming the mission, the participant and its token
 * (checked against the stored sha256 in constant time); every later request is checked
 * against the participant's role by the bus, on the server.
 * @throws {BusError} BUS_IO when the port cannot be bound.
 * @example
 * const bus = await MissionBus.open({ cellDir, config });
 * const server = await createBusServer({ buses: [bus], port: 7400 });
 * // ... later
 * await server.close();
 * await bus.close();
 */
export async function createBusServer(options: BusServerOptions = {}): Promise<BusServer> {
  // ws is loaded when a server starts, not at import (the daemon with its bus off never loads it).
  const { WebSocketServer } = await import('ws');
  const context: ServerContext = {
    options: {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 0,
      maxFrameBytes: options.maxFrameBytes ?? 2 * 1024 * 1024,
      maxBufferedBytes: options.maxBufferedBytes ?? 8 * 1024 * 1024,
      stallTimeoutMs: options.stallTimeoutMs ?? 5000,
      heartbeatMs: options.heartbeatMs ?? 15_000,
      helloTimeoutMs: options.helloTimeoutMs ?? 10_000,
      maxInflight: options.maxInflight ?? 1024,
      closeBuses: options.closeBuses ?? false,
    },
    logger: options.logger ?? silentLogger,
    buses: new Map(),
    subscribers: new Map(),
    stats: { connections: 0, peakBufferedBytes: 0, slowConsumersDisconnected: 0, badFrames: 0 },
    closing: false,
  };
  const connections = new Set<Connection>();
  const scheduled = new Set<Connection>();
  let flushScheduled = false;
  const flushPumps = (): void => {
    flushScheduled = false;
    for (const connection of scheduled) connection.pump();
    scheduled.clear();
  };
  const unsubscribers = new Map<string, () => void>();

  const addBus = (bus: MissionBus): void => {
    if (context.buses.has(bus.mission.id))
      throw new BusError('BUS_CONFLICT', `addBus: mission ${bus.mission.id} is already served`);
    context.buses.set(bus.mission.id, bus);
    const subscribers = new Set<Connection>();
    context.subscribers.set(bus, subscribers);
    unsubscribers.set(
      bus.mission.id,
      bus.onStored(() => {
        // Deliver after the current burst of acknowledgements, so that events acknowledged
        // together go out together.
        for (const connection of subscribers) scheduled.add(connection);
        if (!flushScheduled) {
          flushScheduled = true;
          queueMicrotask(flushPumps);
        }
      }),
    );
  };
  for (const bus of options.buses ?? []) addBus(bus);

  const http: Server = createServer((_request, response) => {
    response
      .writeHead(426, { 'content-type': 'text/plain' })
      .end('mission bus: connect with a WebSocket\n');
  });
  const wss = new WebSocketServer({
    server: http,
    maxPayload: context.options.maxFrameBytes,
    perMessageDeflate: false,
  });
  wss.on('connection', (ws: WebSocket, _request: IncomingMessage) => {
    if (context.closing) {
      ws.close(BUS_CLOSE_CODES.goingAway, 'server shutting down');
      return;
    }
    const connection = new Connection(ws, context);
    connections.add(connection);
    context.stats.connections = connections.size;
    ws.on('close', () => {
      connections.delete(connection);
      context.stats.connections = connections.size;
      connection.dispose();
    });
  });
  wss.on('error', (error) => context.logger.error('bus server: error', { error: error.message }));

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void =>
      reject(
        new BusError(
          'BUS_IO',
          `bus server: cannot listen on ${context.options.host}:${context.options.port}: ${error.message}`,
          { cause: error },
        ),
      );
    http.once('error', onError);
    http.listen(context.options.port, context.options.host, () => {
      http.off('error', onError);
      resolve();
    });
  });
  const address = http.address() as AddressInfo;
  const host = address.address;
  const port = address.port;

  const heartbeat = setInterval(() => {
    for (const connection of connections) {
      if (!connection.alive) {
        context.logger.info('bus server: terminating a connection that missed a heartbeat', {
          participant: connection.participant,
        });
        connection.ws.terminate();
        continue;
      }
      connection.alive = false;
      connection.ws.ping();
    }
  }, context.options.heartbeatMs);
  heartbeat.unref();

  let closed: Promise<void> | undefined;
  return {
    url: `ws://${host.includes(':') ? `[${host}]` : host}:${port}`,
    host,
    port,
    addBus,
    removeBus(missionId) {
      const bus = context.buses.get(missionId);
      if (!bus) return;
      context.buses.delete(missionId);
      context.subscribers.delete(bus);
      unsubscribers.get(missionId)?.();
      unsubscribers.delete(missionId);
      for (const connection of connections)
        if (connection.bus === bus)
          connection.ws.close(
            BUS_CLOSE_CODES.missionGone,
            `mission ${missionId} is no longer served`,
          );
    },
    connections: () => [...connections].map((connection) => connection.info()),
    stats: () => ({ ...context.stats }),
    close() {
      closed ??= (async () => {
        context.closing = true;
        clearInterval(heartbeat);
        const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()));
        // New requests are refused from here on (BUS_CLOSED); reading goes on so close frames get through.
        for (const connection of connections) if (connection.ws.isPaused) connection.ws.resume();
        await Promise.all([...connections].map((connection) => connection.drained(5000)));
        const socketsClosed = [...connections].map(
          (connection) =>
            new Promise<void>((resolve) => {
              if (connection.ws.readyState === connection.ws.CLOSED) return resolve();
              const timer = setTimeout(() => connection.ws.terminate(), 2000);
              connection.ws.once('close', () => {
                clearTimeout(timer);
                resolve();
              });
              connection.ws.close(BUS_CLOSE_CODES.goingAway, 'server shutting down');
            }),
        );
        await Promise.all(socketsClosed);
        wss.close();
        for (const unsubscribe of unsubscribers.values()) unsubscribe();
        const problems: unknown[] = [];
        for (const bus of context.buses.values()) {
          try {
            if (context.options.closeBuses) await bus.close();
            else if (!bus.closed) await bus.flush();
          } catch (error) {
            problems.push(error);
            context.logger.error('bus server: flushing a bus failed', {
              mission: bus.mission.id,
              error: describeError(error),
            });
          }
        }
        await httpClosed;
        if (problems.length > 0) throw problems[0];
      })();
      return closed;
    },
  };
}
