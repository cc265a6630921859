import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { connectBus, type BusClient, type BusEvent } from '@pit/mission-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  natsInstalled,
  startNatsCluster,
  tempDir,
  waitFor,
  type TestNatsCluster,
} from '@pit/test-kit';
import { makeCell } from '../test/helpers.js';
import { createBusHub, type BusHub } from './bus-hub.js';

const installed = natsInstalled('the clustered bus hub test');

describe.skipIf(!installed)('the bus hub of a clustered daemon ([cluster])', () => {
  let cluster: TestNatsCluster;
  const hubs: BusHub[] = [];
  const clients: BusClient[] = [];

  beforeAll(async () => {
    cluster = await startNatsCluster(await tempDir('pit-bushub-nats-'));
  }, 150_000);
  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => {});
    for (const hub of hubs) await hub.close().catch(() => {});
    await cluster?.stop();
  });

  it("serves one mission from two hosts in one order over the WebSocket front, through kill -9 of a NATS node, and refuses an old incarnation's epoch", async () => {
    const cell = await makeCell([{ name: 'forge' }, { name: 'smith' }]);
    // Host b holds a copy of the cell (as after a restore from a checkpoint): same uuid, same mission.
    const copy = join(await tempDir('pit-bushub-b-'), 'missions', cell.uuid);
    await mkdir(join(copy, '..'), { recursive: true });
    await cp(cell.dir, copy, { recursive: true });
    const epochs = new Map([[`${cell.uuid}/forge`, 2]]);
    const hub = async (hostId: string) => {
      const opened = await createBusHub({
        listen: '127.0.0.1:0',
        stateDir: await tempDir(`pit-bushub-state-${hostId}-`),
        cluster: {
          servers: cluster.urls,
          hostId,
          replicas: 3,
          epochOf: (key) => epochs.get(key),
        },
      });
      hubs.push(opened);
      return opened;
    };
    const [a, b] = [await hub('a'), await hub('b')];
    const join_ = async (host: BusHub, dir: string, agent: string, epoch?: number) => {
      const env = await host.credentials(dir, agent, 'write');
      const client = await connectBus({
        url: env.LAZARUS_BUS_URL as string,
        mission: env.LAZARUS_BUS_MISSION as string,
        participant: agent,
        token: env.LAZARUS_BUS_TOKEN as string,
        ...(epoch ? { epoch } : {}),
      });
      clients.push(client);
      return client;
    };
    const forge = await join_(a, cell.dir, 'forge', 2);
    const smith = await join_(b, copy, 'smith');
    const seen = { forge: [] as BusEvent[], smith: [] as BusEvent[] };
    const follow = (client: BusClient, into: BusEvent[]) =>
      void (async () => {
        for await (const event of client.subscribe({ after: 0 })) into.push(event);
      })();
    follow(forge, seen.forge);
    follow(smith, seen.smith);
    await Promise.all([
      Promise.all(
        Array.from({ length: 20 }, (_, i) => forge.publish({ topic: 'work', payload: { i } })),
      ),
      Promise.all(
        Array.from({ length: 20 }, (_, i) => smith.publish({ topic: 'work', payload: { i } })),
      ),
    ]);
    // Two participant events (one registration on each host) and forty messages.
    const total = 42;
    await waitFor(
      () => seen.forge.length >= total && seen.smith.length >= total,
      20_000,
      'both hosts to deliver every event',
    );
    expect(seen.forge.map((event) => event.seq)).toEqual(
      Array.from({ length: total }, (_, i) => i + 1),
    );
    expect(seen.smith).toEqual(seen.forge);
    // forge's incarnation was replaced (a takeover gave it epoch 3): its writes are refused.
    epochs.set(`${cell.uuid}/forge`, 3);
    await expect(forge.publish({ topic: 'work', payload: { late: true } })).rejects.toMatchObject({
      code: 'BUS_STALE_EPOCH',
    });
    // Taken over by another host: this host holds no incarnation of forge, any epoch is old.
    epochs.delete(`${cell.uuid}/forge`);
    await expect(forge.publish({ topic: 'work', payload: { late: true } })).rejects.toMatchObject({
      code: 'BUS_STALE_EPOCH',
    });
    epochs.set(`${cell.uuid}/forge`, 2);

    // kill -9 of a NATS node while both hosts' agents publish: each WebSocket subscriber still
    // gets every event once, in the one order.
    const storm = (client: BusClient, from: number) =>
      (async () => {
        for (let i = from; i < from + 60; i += 1)
          await client.publish({ topic: 'storm', payload: { i } });
      })();
    const publishing = Promise.all([storm(forge, 100), storm(smith, 100)]);
    await waitFor(() => seen.forge.length >= total + 20, 20_000, 'the storm to be under way');
    await cluster.kill(1);
    await publishing;
    const after = total + 120;
    await waitFor(
      () => seen.forge.length >= after && seen.smith.length >= after,
      30_000,
      'both hosts to deliver every event of the storm',
    );
    expect(seen.forge.map((event) => event.seq)).toEqual(
      Array.from({ length: after }, (_, i) => i + 1),
    );
    expect(new Set(seen.forge.map((event) => event.id)).size).toBe(after);
    expect(seen.smith).toEqual(seen.forge);
    await cluster.start(1);
  }, 120_000);

  it("a role the mission's lead granted through one host holds on the host that takes the agent over", async () => {
    const cell = await makeCell([{ name: 'lead' }, { name: 'smith' }]);
    const copy = join(await tempDir('pit-bushub-b-'), 'missions', cell.uuid);
    await mkdir(join(copy, '..'), { recursive: true });
    await cp(cell.dir, copy, { recursive: true });
    const hub = async (hostId: string) => {
      const opened = await createBusHub({
        listen: '127.0.0.1:0',
        stateDir: await tempDir(`pit-bushub-state-${hostId}-`),
        cluster: { servers: cluster.urls, hostId, replicas: 3, epochOf: () => undefined },
      });
      hubs.push(opened);
      return opened;
    };
    const [a, b] = [await hub('a'), await hub('b')];
    const connectAs = async (env: Record<string, string>, participant: string) => {
      const client = await connectBus({
        url: env.LAZARUS_BUS_URL as string,
        mission: env.LAZARUS_BUS_MISSION as string,
        participant,
        token: env.LAZARUS_BUS_TOKEN as string,
      });
      clients.push(client);
      return client;
    };
    // Host a runs both agents: lead as configured, smith with the default role (write).
    const lead = await connectAs(await a.credentials(cell.dir, 'lead', 'lead'), 'lead');
    const smithOnA = await connectAs(await a.credentials(cell.dir, 'smith', undefined), 'smith');
    await smithOnA.publish({ topic: 'work', payload: { on: 'a' } });
    // The lead makes smith a reader, over the WebSocket front.
    await lead.grant('smith', 'read');
    await expect(smithOnA.publish({ topic: 'work', payload: { on: 'a' } })).rejects.toMatchObject({
      code: 'BUS_FORBIDDEN',
    });
    // Host a dies; host b takes smith over and registers it with the role the mission holds.
    await smithOnA.close();
    const smithOnB = await connectAs(await b.credentials(copy, 'smith', undefined), 'smith');
    expect((await b.bus(copy)).roleOf('smith')).toBe('read');
    await expect(smithOnB.publish({ topic: 'work', payload: { on: 'b' } })).rejects.toMatchObject({
      code: 'BUS_FORBIDDEN',
    });
    const events: BusEvent[] = [];
    for await (const event of smithOnB.subscribe({ after: 0 })) {
      events.push(event);
      if (events.some((seen) => seen.event === 'participant' && seen.role === 'read')) break;
    }
    expect(events.filter((event) => event.event === 'message')).toHaveLength(1);
  }, 60_000);
});
