/**
 * A real NIP-01 relay for tests: `@nostr-relay/core` (signature checks, subscriptions,
 * duplicate detection) behind a `ws` server on 127.0.0.1, with an in-memory event store.
 * It can be stopped and restarted on the same port to exercise client reconnection.
 */
import type { AddressInfo } from 'node:net';
import {
  EventRepository,
  EventUtils,
  type Event,
  type EventRepositoryUpsertResult,
  type Filter,
} from '@nostr-relay/common';
import { NostrRelay } from '@nostr-relay/core';
import { Validator } from '@nostr-relay/validator';
import { WebSocketServer, type WebSocket } from 'ws';

/** Keeps every event in memory; enough for NIP-01 semantics in a test. */
class MemoryEventRepository extends EventRepository {
  readonly events = new Map<string, Event>();

  isSearchSupported(): boolean {
    return false;
  }

  upsert(event: Event): EventRepositoryUpsertResult {
    if (this.events.has(event.id)) return { isDuplicate: true };
    this.events.set(event.id, event);
    return { isDuplicate: false };
  }

  find(filter: Filter): Event[] {
    const matching = [...this.events.values()].filter((event) =>
      EventUtils.isMatchingFilter(event, filter),
    );
    matching.sort((a, b) => b.created_at - a.created_at);
    return filter.limit === undefined ? matching : matching.slice(0, filter.limit);
  }

  async destroy(): Promise<void> {}
}

const silentRelayLogger = {
  setLogLevel: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** A running test relay. */
export interface TestNostrRelay {
  /** `ws://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Every event the relay accepted, by id (survives stop/start). */
  readonly events: ReadonlyMap<string, Event>;
  /** Events accepted so far, optionally of one kind. */
  stored(kind?: number): Event[];
  /** Resolves with the first stored event matching `predicate` (waits up to `timeoutMs`). */
  waitForEvent(predicate: (event: Event) => boolean, timeoutMs?: number): Promise<Event>;
  /** Number of client connections accepted since start. */
  readonly connections: number;
  /** Closes every client connection and the listening socket (keeps the stored events). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** Stops for good. */
  close(): Promise<void>;
}

/** Starts a relay on 127.0.0.1 (port 0 unless `port` is given). */
export async function startNostrRelay(options: { port?: number } = {}): Promise<TestNostrRelay> {
  const repository = new MemoryEventRepository();
  const relay = new NostrRelay(repository, { logger: silentRelayLogger });
  const validator = new Validator();
  const waiters = new Set<{
    predicate: (event: Event) => boolean;
    resolve: (event: Event) => void;
  }>();
  let port = options.port ?? 0;
  let server: WebSocketServer | undefined;
  let connections = 0;

  const originalUpsert = repository.upsert.bind(repository);
  repository.upsert = (event: Event) => {
    const result = originalUpsert(event);
    if (!result.isDuplicate) {
      for (const waiter of [...waiters]) {
        if (waiter.predicate(event)) {
          waiters.delete(waiter);
          waiter.resolve(event);
        }
      }
    }
    return result;
  };

  function onConnection(ws: WebSocket): void {
    connections += 1;
    relay.handleConnection(ws);
    ws.on('message', (data) => void handle(data));
    const handle = async (data: unknown) => {
      try {
        const message = await validator.validateIncomingMessage(data as Buffer);
        await relay.handleMessage(ws, message);
      } catch (error) {
        ws.send(JSON.stringify(['NOTICE', error instanceof Error ? error.message : String(error)]));
      }
    };
    ws.on('close', () => relay.handleDisconnect(ws));
    ws.on('error', () => undefined);
  }

  async function start(): Promise<void> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    port = (wss.address() as AddressInfo).port;
    wss.on('connection', onConnection);
    server = wss;
  }

  async function stop(): Promise<void> {
    const wss = server;
    server = undefined;
    if (!wss) return;
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  }

  await start();

  return {
    get url() {
      return `ws://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get connections() {
      return connections;
    },
    events: repository.events,
    stored: (kind) =>
      [...repository.events.values()].filter((event) => kind === undefined || event.kind === kind),
    waitForEvent(predicate, timeoutMs = 10_000) {
      for (const event of repository.events.values())
        if (predicate(event)) return Promise.resolve(event);
      return new Promise<Event>((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (event: Event) => {
            clearTimeout(timer);
            resolve(event);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching event reached the relay within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    stop,
    start,
    async close() {
      await stop();
      await relay.destroy();
    },
  };
}
