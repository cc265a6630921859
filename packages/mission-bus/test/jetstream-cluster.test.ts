import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  natsInstalled,
  startNatsCluster,
  tempDir,
  waitFor,
  type TestNatsCluster,
} from '@pit/test-kit';
import {
  BusError,
  MissionBus,
  type BusEvent,
  type BusLogger,
  type PublishInput,
} from '../src/index.js';
import { createJetStreamEventLog, missionStream } from '../src/jetstream.js';
import { readBusLog } from '../src/read-bus-log.js';

const installed = natsInstalled('the mission bus JetStream tests');

const debugLogger = Object.fromEntries(
  (['debug', 'info', 'warn', 'error'] as const).map((level) => [
    level,
    (message: string, fields?: Record<string, unknown>) =>
      console.error(new Date().toISOString(), level, message, JSON.stringify(fields ?? {})),
  ]),
) as unknown as BusLogger;

const participants = [
  { name: 'forge', role: 'write' as const },
  { name: 'smith', role: 'write' as const },
];

/** What a host's bus instance is in these tests: a bus on its own cell and connection, and what its subscriber saw. */
interface Host {
  cellDir: string;
  nc: NatsConnection;
  bus: MissionBus;
  seen: BusEvent[];
}

/**
 * What an agent does when a publish's outcome is unknown (BUS_TIMEOUT while the cluster elects
 * a leader): publish again with the same id. The bus returns the first event if it was stored.
 */
async function publishUntilAcknowledged(
  bus: MissionBus,
  sender: string,
  input: PublishInput & { id: string },
): Promise<BusEvent> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await bus.publish(sender, input);
    } catch (error) {
      if (!(error instanceof BusError && error.retryable) || attempt >= 5) throw error;
    }
  }
}

/** Every event once, numbered 1..n without a gap, each sender's messages in the order it sent them. */
function expectOneOrder(events: BusEvent[], total: number): void {
  expect(events.map((event) => event.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  expect(new Set(events.map((event) => event.id)).size).toBe(total);
  for (const sender of ['forge', 'smith']) {
    const indexes = events
      .filter((event) => event.sender === sender && event.event === 'message')
      .map((event) => (event.event === 'message' ? (event.payload as { i: number }).i : -1));
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
  }
}

describe.skipIf(!installed)('the mission bus on a replicated JetStream stream', () => {
  let cluster: TestNatsCluster;
  const hosts: Host[] = [];

  const openHost = async (
    missionId: string,
    dedupeWindow?: number,
    cellDir?: string,
  ): Promise<Host> => {
    const nc = await connect({
      servers: cluster.urls,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 2_000,
    });
    const dir = cellDir ?? (await tempDir('pit-jsbus-cell-'));
    const bus = await MissionBus.open({
      cellDir: dir,
      config: {
        mission: { id: missionId, title: 'jetstream bus' },
        participants,
        ...(dedupeWindow ? { log: { dedupe_window: dedupeWindow } } : {}),
      },
      ...(process.env.PIT_TEST_DEBUG ? { logger: debugLogger } : {}),
      eventLog: createJetStreamEventLog({ connection: nc, replicas: 3, requestTimeoutMs: 1_000 }),
    });
    const host: Host = { cellDir: dir, nc, bus, seen: [] };
    bus.onEvent((event) => host.seen.push(event));
    hosts.push(host);
    return host;
  };

  beforeAll(async () => {
    cluster = await startNatsCluster(await tempDir('pit-jsbus-nats-'));
  }, 150_000);
  afterAll(async () => {
    for (const host of hosts) {
      await host.bus.close().catch(() => {});
      await host.nc.close().catch(() => {});
    }
    await cluster?.stop();
  });

  it('two hosts publishing to one mission: each subscriber sees every event once, in one identical order', async () => {
    const a = await openHost('mission-two-hosts');
    const b = await openHost('mission-two-hosts');
    const perHost = 60;
    const sent = await Promise.all([
      Promise.all(
        Array.from({ length: perHost }, (_, i) =>
          a.bus.publish('forge', { id: `forge-${i}`, topic: 'work', payload: { i } }),
        ),
      ),
      Promise.all(
        Array.from({ length: perHost }, (_, i) =>
          b.bus.publish('smith', { id: `smith-${i}`, topic: 'work', payload: { i } }),
        ),
      ),
    ]);
    // The same id published from both hosts at once is stored once.
    const [first, second] = await Promise.all([
      a.bus.publish('forge', { id: 'once', topic: 'work', payload: { i: perHost } }),
      b.bus.publish('forge', { id: 'once', topic: 'work', payload: { i: perHost } }),
    ]);
    expect(second.seq).toBe(first.seq);
    const total = perHost * 2 + 1;
    await waitFor(
      () => a.seen.length >= total && b.seen.length >= total,
      20_000,
      'both subscribers to see every event',
    );
    expect(a.seen.length).toBe(total);
    expectOneOrder(a.seen, total);
    expect(b.seen).toEqual(a.seen);
    // Each acknowledgement names the event the subscribers saw at that sequence.
    for (const event of sent.flat()) expect(a.seen[event.seq - 1]?.id).toBe(event.id);
    // A bus opened afterwards (a third host) replays the same stream; read() gives the same.
    const c = await openHost('mission-two-hosts');
    expect(c.bus.head).toBe(total);
    expect(await c.bus.read({ after: 0, limit: total })).toEqual(a.seen);
    // Each host's cell holds a copy of the stream, for what reads a cell's log directly.
    const copied: BusEvent[] = [];
    for await (const entry of readBusLog(b.cellDir)) if (entry.ok) copied.push(entry.event);
    expect(copied).toEqual(a.seen);
  }, 60_000);

  it("a cell whose bus becomes shared seeds the empty stream with its events; another host's bus sees them", async () => {
    const missionId = 'mission-seeded';
    const cellDir = await tempDir('pit-jsbus-cell-');
    const alone = await MissionBus.open({
      cellDir,
      config: { mission: { id: missionId, title: 'jetstream bus' }, participants },
    });
    const before = [
      await alone.publish('forge', { topic: 'work', payload: { i: 0 } }),
      await alone.checkpoint('forge', { summary: 'half done' }),
    ];
    await alone.close();
    const a = await openHost(missionId, undefined, cellDir);
    expect(a.bus.head).toBe(2);
    const b = await openHost(missionId);
    expect(await b.bus.read()).toEqual(before);
    expect((await b.bus.lastCheckpointOf('forge'))?.summary).toBe('half done');
    const next = await b.bus.publish('smith', { topic: 'work', payload: { i: 0 } });
    expect(next.seq).toBe(3);
    await waitFor(() => a.bus.head === 3, 10_000, 'host a to see the new event');
    expect(a.bus.toJSON().events).toEqual([...before, next]);
  }, 30_000);

  it("stores an id republished after it left the bus's own window once (the stream's duplicate window)", async () => {
    const a = await openHost('mission-dedupe', 2);
    const first = await a.bus.publish('forge', { id: 'again', topic: 'work', payload: { i: 0 } });
    for (let i = 1; i <= 3; i += 1)
      await a.bus.publish('forge', { id: `later-${i}`, topic: 'work', payload: { i } });
    const again = await a.bus.publish('forge', { id: 'again', topic: 'work', payload: { i: 0 } });
    expect(again).toEqual(first);
    expect(a.bus.head).toBe(4);
  }, 30_000);

  it('kill -9 of the stream leader during a publish storm from two hosts: nothing lost, nothing doubled, order intact', async () => {
    const missionId = 'mission-storm';
    const a = await openHost(missionId);
    const b = await openHost(missionId);
    const perHost = 150;
    const storm = (host: Host, sender: string) =>
      (async () => {
        const acks: BusEvent[] = [];
        for (let i = 0; i < perHost; i += 1)
          acks.push(
            await publishUntilAcknowledged(host.bus, sender, {
              id: `${sender}-${i}`,
              topic: 'storm',
              payload: { i },
            }),
          );
        return acks;
      })();
    const publishing = Promise.all([storm(a, 'forge'), storm(b, 'smith')]);
    await waitFor(() => a.seen.length >= 40, 20_000, 'the storm to be under way');
    const jsm = await jetstreamManager(a.nc);
    const { stream } = missionStream(missionId);
    const leader = (await jsm.streams.info(stream)).cluster?.leader;
    const victim = leader ? Number(/^n(\d+)$/.exec(leader)?.[1] ?? 0) : 0;
    await cluster.kill(victim);
    const killedAt = a.seen.length;
    const acks = (await publishing).flat();
    expect(a.seen.length).toBeGreaterThan(killedAt); // publishes went on after the kill
    const total = perHost * 2;
    await waitFor(
      () => a.seen.length >= total && b.seen.length >= total,
      30_000,
      'both subscribers to see every event',
    );
    expectOneOrder(a.seen, total);
    expect(b.seen).toEqual(a.seen);
    expect(new Set(acks.map((event) => event.id)).size).toBe(total);
    const info = await jsm.streams.info(stream);
    expect(info.state.messages).toBe(total);
    await cluster.start(victim);
  }, 120_000);
});
