import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PitError } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { RawClient, eventsOf, makeCell, roleParticipants, tempRoot } from '../test/helpers.js';
import { SYSTEM_SENDER } from './bus-event.js';
import { connectBus, type BusClient } from './client.js';
import type { BusConfigInput } from './config.js';
import { MissionBus, type OpenMissionBusOptions } from './mission-bus.js';
import { BUS_CLOSE_CODES } from './protocol.js';
import { DEFAULT_ROLE_CAPABILITIES, type Capability } from './roles.js';
import { createBusServer, type BusServer, type BusServerOptions } from './server.js';
import { createToken } from './tokens.js';

const MISSION = { id: 'mission-wire', title: 'Wire tests' };

let cleanup: () => Promise<void>;
let root: string;
let cellDir: string;
let bus: MissionBus;
let server: BusServer;
let people: ReturnType<typeof roleParticipants>['people'];
const clients: BusClient[] = [];
const raws: RawClient[] = [];

async function start(
  serverOptions: BusServerOptions = {},
  config: BusConfigInput = {},
  busOptions: Pick<OpenMissionBusOptions, 'currentEpoch'> = {},
): Promise<void> {
  const roles = roleParticipants();
  people = roles.people;
  bus = await MissionBus.open({
    cellDir,
    config: { mission: MISSION, participants: roles.participants, ...config },
    ...busOptions,
  });
  server = await createBusServer({ buses: [bus], ...serverOptions });
}

async function client(
  name: keyof typeof people,
  options: Partial<Parameters<typeof connectBus>[0]> = {},
): Promise<BusClient> {
  const connected = await connectBus({
    url: server.url,
    mission: MISSION.id,
    participant: name,
    token: people[name].token,
    ...options,
  });
  clients.push(connected);
  return connected;
}

async function raw(): Promise<RawClient> {
  const connection = await RawClient.open(server.url);
  raws.push(connection);
  return connection;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (!PitError.is(error)) throw error;
    return error.code;
  }
  return 'OK';
}

beforeEach(async () => {
  ({ root, cleanup } = await tempRoot());
  cellDir = await makeCell(root);
});

afterEach(async () => {
  for (const connected of clients.splice(0)) await connected.close();
  for (const connection of raws.splice(0)) connection.close();
  await server?.close();
  await bus?.close();
  await cleanup();
});

describe('createBusServer', () => {
  it('binds 127.0.0.1 by default', async () => {
    await start();
    expect(server.host).toBe('127.0.0.1');
    expect(server.url).toBe(`ws://127.0.0.1:${server.port}`);
  });

  describe('permission matrix over the wire', () => {
    const operations: Array<{
      op: string;
      capability: Capability;
      run: (
        client: BusClient,
        checkpointId: string,
        handoffId: string,
        self: string,
      ) => Promise<unknown>;
    }> = [
      { op: 'publish', capability: 'publish', run: (c) => c.publish({ topic: 't', payload: 1 }) },
      { op: 'checkpoint', capability: 'checkpoint', run: (c) => c.checkpoint({ summary: 's' }) },
      {
        op: 'handoff',
        capability: 'handoff',
        run: (c, checkpoint, _h, self) =>
          c.handoff({ to: self === 'reader' ? 'writer' : 'reader', checkpoint }),
      },
      {
        op: 'configure_isolation',
        capability: 'configure_isolation',
        run: (c) => c.configureIsolation({ participant: 'writer', profile: { level: 2 } }),
      },
      {
        op: 'subscribe',
        capability: 'read',
        run: async (c) => {
          for await (const event of c.subscribe({ after: 0 })) return event;
        },
      },
      {
        op: 'resume_packet',
        capability: 'read',
        run: (c, _cp, handoff) => c.resumePacket(handoff),
      },
      { op: 'participants', capability: 'read', run: (c) => c.participants() },
      { op: 'audit', capability: 'audit', run: (c) => c.audit({ limit: 10 }) },
      { op: 'grant', capability: 'grant', run: (c) => c.grant('reader', 'read') },
    ];
    const who = ['lead1', 'writer', 'reader', 'auditor', 'stranger'] as const;
    const roleOf = {
      lead1: 'lead',
      writer: 'write',
      reader: 'read',
      auditor: 'audit',
      stranger: undefined,
    } as const;

    it.each(who)(
      '%s: each operation is allowed exactly when its role has the capability',
      async (name) => {
        await start();
        const stranger = createToken();
        await bus.setToken('stranger', stranger.sha256);
        const checkpoint = await bus.checkpoint(SYSTEM_SENDER, { summary: 'seed' });
        const handoff = await bus.handoff(SYSTEM_SENDER, {
          from: 'lead1',
          to: 'writer',
          checkpoint: checkpoint.id,
        });
        const connected =
          name === 'stranger'
            ? await connectBus({
                url: server.url,
                mission: MISSION.id,
                participant: 'stranger',
                token: stranger.token,
              })
            : await client(name);
        if (name === 'stranger') clients.push(connected);
        const role = roleOf[name];
        expect(connected.role).toBe(role ?? null);
        for (const operation of operations) {
          const allowed =
            role !== undefined && DEFAULT_ROLE_CAPABILITIES[role].includes(operation.capability);
          const code = await codeOf(operation.run(connected, checkpoint.id, handoff.id, name));
          expect({ op: operation.op, code }).toEqual({
            op: operation.op,
            code: allowed ? 'OK' : 'BUS_FORBIDDEN',
          });
        }
      },
    );

    it('refuses a read client’s publish on the server, and records it', async () => {
      await start();
      const reader = await raw();
      await reader.hello(MISSION.id, 'reader', people.reader.token);
      const answer = await reader.request({ op: 'publish', ref: 7, topic: 't', payload: 'sneaky' });
      expect(answer).toMatchObject({ type: 'error', ref: 7, code: 'BUS_FORBIDDEN' });
      expect(bus.head).toBe(0);
      expect(await bus.readAudit()).toEqual([
        expect.objectContaining({
          event: 'bus_denied',
          participant: 'reader',
          operation: 'publish',
        }),
      ]);
    });
  });

  it('refuses writes from a client whose epoch is older than its participant’s current one (BUS_STALE_EPOCH)', async () => {
    let current = 2;
    await start({}, {}, { currentEpoch: (name) => (name === 'writer' ? current : undefined) });
    const replaced = await client('writer', { epoch: 1 });
    expect(await codeOf(replaced.publish({ topic: 't', payload: 1 }))).toBe('BUS_STALE_EPOCH');
    expect(await codeOf(replaced.checkpoint({ summary: 's' }))).toBe('BUS_STALE_EPOCH');
    const incarnation = await client('writer', { epoch: 2 });
    expect((await incarnation.publish({ topic: 't', payload: 2 })).seq).toBe(1);
    current = 3; // taken over: this incarnation is the old one now
    expect(await codeOf(incarnation.publish({ topic: 't', payload: 3 }))).toBe('BUS_STALE_EPOCH');
    expect(bus.head).toBe(1);
  });

  it('fixes the sender to the authenticated participant', async () => {
    await start();
    const writer = await raw();
    await writer.hello(MISSION.id, 'writer', people.writer.token);
    const answer = await writer.request({
      op: 'publish',
      ref: 1,
      topic: 't',
      payload: 1,
      sender: 'lead1',
    });
    expect(answer).toMatchObject({ type: 'error', code: 'BUS_BAD_FRAME' });
    const ok = await writer.request({ op: 'publish', ref: 2, topic: 't', payload: 1 });
    expect(ok).toMatchObject({ type: 'ack', ref: 2, seq: 1 });
    expect((await bus.read())[0]?.sender).toBe('writer');
  });

  describe('unauthenticated, malformed and oversized frames', () => {
    it('answers an operation before hello with BUS_UNAUTHENTICATED and keeps the connection', async () => {
      await start();
      const connection = await raw();
      expect(
        await connection.request({ op: 'publish', ref: 1, topic: 't', payload: 1 }),
      ).toMatchObject({ type: 'error', ref: 1, code: 'BUS_UNAUTHENTICATED' });
      expect(await connection.hello(MISSION.id, 'writer', people.writer.token)).toMatchObject({
        type: 'welcome',
        participant: 'writer',
        role: 'write',
        head: 0,
      });
      expect(
        await connection.request({ op: 'publish', ref: 2, topic: 't', payload: 1 }),
      ).toMatchObject({ type: 'ack', seq: 1 });
    });

    it('refuses a bad token or an unknown mission and closes with 4401', async () => {
      await start();
      const badToken = await raw();
      expect(await badToken.hello(MISSION.id, 'writer', 'not-the-token')).toMatchObject({
        type: 'error',
        code: 'BUS_UNAUTHENTICATED',
      });
      await badToken.closed;
      expect(badToken.closeCode).toBe(BUS_CLOSE_CODES.unauthenticated);
      const badMission = await raw();
      expect(await badMission.hello('other-mission', 'writer', people.writer.token)).toMatchObject({
        type: 'error',
        code: 'BUS_UNAUTHENTICATED',
      });
      await badMission.closed;
      await expect(
        connectBus({
          url: server.url,
          mission: MISSION.id,
          participant: 'writer',
          token: people.reader.token,
        }),
      ).rejects.toMatchObject({ code: 'BUS_UNAUTHENTICATED' });
      expect(
        (await bus.readAudit()).filter((entry) => entry.event === 'bus_auth_failed'),
      ).toHaveLength(2);
    });

    it('closes a connection that never says hello', async () => {
      await start({ helloTimeoutMs: 100 });
      const silent = await raw();
      await silent.closed;
      expect(silent.closeCode).toBe(BUS_CLOSE_CODES.helloTimeout);
    });

    it('answers malformed frames with an error frame; the connection and the server survive', async () => {
      await start();
      const connection = await raw();
      await connection.hello(MISSION.id, 'writer', people.writer.token);
      connection.send('{not json');
      expect(await connection.next((frame) => frame.type === 'error')).toMatchObject({
        ref: null,
        code: 'BUS_BAD_FRAME',
        message: expect.stringMatching(/not valid JSON/),
      });
      const bad = [
        { op: 'publish', ref: 3, payload: 1 },
        { op: 'launch', ref: 4 },
        { op: 'subscribe', ref: 5, after: -1 },
        { op: 'publish', ref: 6, topic: 't', payload: 1, to: '../../etc' },
        [1, 2, 3],
        'a string',
      ];
      for (const frame of bad) connection.send(frame);
      connection.ws.send(Buffer.from([1, 2, 3]), { binary: true });
      for (const ref of [3, 4, 5, 6])
        expect(await connection.next((frame) => frame.ref === ref)).toMatchObject({
          type: 'error',
          code: 'BUS_BAD_FRAME',
        });
      await vi.waitFor(() => expect(server.stats().badFrames).toBe(8), { timeout: 5000 });
      expect(
        connection.frames.filter((frame) => frame.type === 'error' && frame.ref === null),
      ).toHaveLength(4);
      expect(
        await connection.request({ op: 'publish', ref: 9, topic: 't', payload: 'still here' }),
      ).toMatchObject({ type: 'ack', seq: 1 });
      expect(connection.closeCode).toBeUndefined();
    });

    it('refuses an oversized frame (ws closes it with 1009), keeps serving others, and the client refuses to send one', async () => {
      await start({ maxFrameBytes: 64 * 1024 });
      const other = await client('lead1');
      const connection = await raw();
      await connection.hello(MISSION.id, 'writer', people.writer.token);
      connection.send({ op: 'publish', ref: 1, topic: 't', payload: 'x'.repeat(100 * 1024) });
      await connection.closed;
      expect(connection.closeCode).toBe(1009);
      expect(bus.head).toBe(0);
      expect((await other.publish({ topic: 't', payload: 'fine' })).seq).toBe(1);
      const writer = await client('writer');
      expect(await codeOf(writer.publish({ topic: 't', payload: 'x'.repeat(100 * 1024) }))).toBe(
        'BUS_TOO_LARGE',
      );
      expect(writer.state).toBe('open');
      expect((await writer.publish({ topic: 't', payload: 'small' })).seq).toBe(2);
    });
  });

  describe('subscriptions', () => {
    it('sends the backlog after N, then live events, with no gap and no duplicate across a reconnect', async () => {
      await start();
      const writer = await client('writer');
      for (let index = 1; index <= 20; index += 1)
        await writer.publish({ topic: 't', payload: index });
      const reader = await raw();
      await reader.hello(MISSION.id, 'reader', people.reader.token);
      expect(await reader.request({ op: 'subscribe', ref: 1, after: 12 })).toMatchObject({
        type: 'subscribed',
        after: 12,
        head: 20,
      });
      await reader.next((frame) => eventsOf(frame).some((event) => event.seq === 20));
      await writer.publish({ topic: 't', payload: 21 });
      await reader.next((frame) => eventsOf(frame).some((event) => event.seq === 21));
      const firstRun = reader.frames.flatMap(eventsOf).map((event) => event.seq);
      expect(firstRun).toEqual(Array.from({ length: 9 }, (_, index) => 13 + index));
      reader.close();
      await reader.closed;
      for (let index = 22; index <= 25; index += 1)
        await writer.publish({ topic: 't', payload: index });
      const again = await raw();
      await again.hello(MISSION.id, 'reader', people.reader.token);
      await again.request({ op: 'subscribe', ref: 1, after: firstRun.at(-1) as number });
      await again.next((frame) => eventsOf(frame).some((event) => event.seq === 25));
      expect(again.frames.flatMap(eventsOf).map((event) => event.seq)).toEqual([22, 23, 24, 25]);
      expect(await again.request({ op: 'subscribe', ref: 2, after: 0 })).toMatchObject({
        type: 'error',
        code: 'BUS_ALREADY_SUBSCRIBED',
      });
      expect(await again.request({ op: 'unsubscribe', ref: 3 })).toMatchObject({ type: 'result' });
      expect(await again.request({ op: 'subscribe', ref: 4, after: 999 })).toMatchObject({
        type: 'error',
        code: 'BUS_INVALID',
      });
    });

    it('reads a long backlog from the log segments when it is no longer in memory', async () => {
      await start({}, { log: { segment_max_bytes: 4096, cache_max_events: 10 } });
      const writer = await client('writer');
      await Promise.all(
        Array.from({ length: 600 }, (_, index) => writer.publish({ topic: 't', payload: index })),
      );
      expect(
        (await readdir(join(cellDir, 'bus'))).filter((name) => name.startsWith('stream-')).length,
      ).toBeGreaterThan(3);
      const reader = await client('reader');
      const seen: number[] = [];
      for await (const event of reader.subscribe({ after: 5 })) {
        seen.push(event.seq);
        if (event.seq === 600) break;
      }
      expect(seen).toEqual(Array.from({ length: 595 }, (_, index) => index + 6));
    });

    it('bounds a slow consumer’s buffer, disconnects it with 4008, and lets it resume from its last sequence', async () => {
      const maxBufferedBytes = 256 * 1024;
      await start({ maxBufferedBytes, stallTimeoutMs: 200 }, { log: { fsync: { mode: 'never' } } });
      const slow = await raw();
      await slow.hello(MISSION.id, 'reader', people.reader.token);
      await slow.request({ op: 'subscribe', ref: 1, after: 0 });
      slow.ws.pause(); // stop reading: the kernel buffers fill, then the server's queue for it
      const writer = await client('writer');
      const payload = 'x'.repeat(16 * 1024);
      const total = 1500; // ~25 MB, far beyond socket buffers and the bound
      for (let index = 0; index < total; index += 50) {
        await Promise.all(
          Array.from({ length: 50 }, (_, offset) =>
            writer.publish({ topic: 'flood', payload: { index: index + offset, payload } }),
          ),
        );
      }
      await vi.waitFor(() => expect(server.stats().slowConsumersDisconnected).toBe(1), {
        timeout: 15_000,
      });
      // The server never queued much more than the bound (one event over at most) for the slow client.
      expect(server.stats().peakBufferedBytes).toBeLessThan(maxBufferedBytes + 64 * 1024);
      slow.ws.resume();
      await slow.closed;
      expect([BUS_CLOSE_CODES.slowConsumer, 1006]).toContain(slow.closeCode);
      const received = slow.frames.flatMap(eventsOf).map((event) => event.seq);
      expect(received).toEqual(Array.from({ length: received.length }, (_, index) => index + 1));
      const resumed = await client('reader');
      const rest: number[] = [];
      for await (const event of resumed.subscribe({ after: received.at(-1) ?? 0 })) {
        rest.push(event.seq);
        if (event.seq === total) break;
      }
      expect([...received, ...rest]).toEqual(
        Array.from({ length: total }, (_, index) => index + 1),
      );
    });

    it('ends the subscription of a participant that loses the read capability', async () => {
      await start();
      const reader = await raw();
      await reader.hello(MISSION.id, 'reader', people.reader.token);
      await reader.request({ op: 'subscribe', ref: 1, after: 0 });
      await bus.removeParticipant('reader');
      expect(await reader.next((frame) => frame.type === 'error' && frame.ref === 1)).toMatchObject(
        { code: 'BUS_FORBIDDEN' },
      );
    });
  });

  it('terminates a client that stops answering pings', async () => {
    await start({ heartbeatMs: 100 });
    const mute = new RawClient(new WebSocket(server.url, { autoPong: false }));
    raws.push(mute);
    await new Promise((resolve) => mute.ws.once('open', resolve));
    await mute.hello(MISSION.id, 'reader', people.reader.token);
    await mute.closed;
    expect(mute.closeCode).toBe(1006);
  });

  it('serves many cells from one server, each with its own tokens and stream', async () => {
    await start();
    const otherCell = await makeCell(root);
    const otherToken = createToken();
    const other = await MissionBus.open({
      cellDir: otherCell,
      config: {
        participants: [{ name: 'writer', role: 'write', token_sha256: otherToken.sha256 }],
      },
    });
    try {
      server.addBus(other);
      expect(() => server.addBus(other)).toThrow(/already served/);
      const inOther = await connectBus({
        url: server.url,
        mission: other.mission.id,
        participant: 'writer',
        token: otherToken.token,
      });
      clients.push(inOther);
      await expect(
        connectBus({
          url: server.url,
          mission: other.mission.id,
          participant: 'writer',
          token: people.writer.token,
        }),
      ).rejects.toMatchObject({ code: 'BUS_UNAUTHENTICATED' });
      const inFirst = await client('writer');
      expect((await inOther.publish({ topic: 'other', payload: 1 })).seq).toBe(1);
      expect((await inFirst.publish({ topic: 'first', payload: 1 })).seq).toBe(1);
      expect((await other.read()).map((event) => (event as { topic?: string }).topic)).toEqual([
        'other',
      ]);
      expect((await bus.read()).map((event) => (event as { topic?: string }).topic)).toEqual([
        'first',
      ]);
      server.removeBus(other.mission.id);
      await vi.waitFor(() => expect(inOther.state).not.toBe('open'), { timeout: 5000 });
    } finally {
      await other.close();
    }
  });

  it('flushes the log on graceful shutdown and answers requests in flight first', async () => {
    await start({}, { log: { fsync: { mode: 'never' } } });
    const writer = await client('writer', { reconnect: false });
    const acks = Array.from({ length: 200 }, (_, index) =>
      writer.publish({ topic: 't', payload: index }),
    );
    const settled = Promise.allSettled(acks);
    await acks[0];
    await server.close();
    const results = await settled;
    const acknowledged = results.filter((result) => result.status === 'fulfilled').length;
    expect(acknowledged).toBeGreaterThan(0);
    const segment = (await readdir(join(cellDir, 'bus'))).find((name) =>
      name.startsWith('stream-'),
    ) as string;
    const lines = (await readFile(join(cellDir, 'bus', segment), 'utf8'))
      .split('\n')
      .filter(Boolean);
    expect(lines.length).toBe(bus.head);
    expect(lines.length).toBeGreaterThanOrEqual(acknowledged);
  });
});
