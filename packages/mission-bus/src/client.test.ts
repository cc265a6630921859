import { createServer, type Server } from 'node:net';
import { PitError } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { makeCell, roleParticipants, tempRoot } from '../test/helpers.js';
import type { BusEvent } from './bus-event.js';
import { connectBus, type BusClient, type BusClientState } from './client.js';
import { MissionBus } from './mission-bus.js';
import { createBusServer, type BusServer } from './server.js';

const MISSION = { id: 'mission-client', title: 'Client tests' };

let cleanup: () => Promise<void>;
let cellDir: string;
let bus: MissionBus;
let server: BusServer | undefined;
let people: ReturnType<typeof roleParticipants>['people'];
const clients: BusClient[] = [];
const fakes: WebSocketServer[] = [];

async function client(
  name: keyof typeof people,
  options: Partial<Parameters<typeof connectBus>[0]> = {},
): Promise<BusClient> {
  const connected = await connectBus({
    url: (server as BusServer).url,
    mission: MISSION.id,
    participant: name,
    token: people[name].token,
    ...options,
  });
  clients.push(connected);
  return connected;
}

/** A ws server that welcomes every hello and then does only what `onFrame` says. */
async function fakeServer(
  onFrame: (ws: WebSocket, frame: Record<string, unknown>) => void,
  heartbeatMs = 15_000,
): Promise<string> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  fakes.push(wss);
  await new Promise((resolve) => wss.once('listening', resolve));
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Record<string, unknown>;
      if (frame.op === 'hello') {
        ws.send(
          JSON.stringify({
            type: 'welcome',
            mission: MISSION,
            participant: frame.participant,
            role: 'write',
            capabilities: ['publish'],
            head: 0,
            heartbeat_ms: heartbeatMs,
            max_frame_bytes: 1024 * 1024,
          }),
        );
        return;
      }
      onFrame(ws, frame);
    });
  });
  const address = wss.address() as { port: number };
  return `ws://127.0.0.1:${address.port}`;
}

beforeEach(async () => {
  let root: string;
  ({ root, cleanup } = await tempRoot());
  cellDir = await makeCell(root);
  const roles = roleParticipants();
  people = roles.people;
  bus = await MissionBus.open({
    cellDir,
    config: { mission: MISSION, participants: roles.participants },
  });
  server = await createBusServer({ buses: [bus] });
});

afterEach(async () => {
  for (const connected of clients.splice(0)) await connected.close();
  for (const wss of fakes.splice(0)) {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((resolve) => wss.close(resolve));
  }
  await server?.close();
  await bus.close();
  await cleanup();
});

describe('connectBus', () => {
  it('publishes, checkpoints and hands off with typed calls that return the acknowledged sequence', async () => {
    const writer = await client('writer');
    expect(writer.role).toBe('write');
    expect(writer.mission).toEqual(MISSION);
    expect(await writer.publish({ topic: 'plan', payload: { a: 1 } })).toMatchObject({ seq: 1 });
    const checkpoint = await writer.checkpoint({
      summary: 'half',
      state: { x: 1 },
      workspace: { ts: '2026-11-22T17-43-00Z', sha256: 'cd'.repeat(32) },
    });
    expect(checkpoint.seq).toBe(2);
    const handoff = await writer.handoff({ to: 'lead1', checkpoint: checkpoint.id, note: 'yours' });
    expect(handoff.seq).toBe(3);
    const packet = await writer.resumePacket(handoff.id);
    expect(packet).toMatchObject({
      recipient: 'lead1',
      from: 'writer',
      note: 'yours',
      checkpoint: { id: checkpoint.id, seq: 2 },
      stream: { length: 3, resume_after: 2 },
    });
    expect(
      (await writer.participants()).participants.map((participant) => participant.name).sort(),
    ).toEqual(['auditor', 'lead1', 'reader', 'writer']);
    await expect(writer.handoff({ to: 'lead1', checkpoint: 'nope' })).rejects.toMatchObject({
      code: 'BUS_NOT_FOUND',
    });
    await expect(writer.publish({ topic: '', payload: 1 })).rejects.toMatchObject({
      code: 'BUS_INVALID',
    });
  });

  it('subscribes as an async iterable: backlog, then live events', async () => {
    const writer = await client('writer');
    await writer.publish({ topic: 't', payload: 1 });
    await writer.publish({ topic: 't', payload: 2 });
    const reader = await client('reader');
    const subscription = reader.subscribe({ after: 1 });
    expect(() => reader.subscribe()).toThrow(
      expect.objectContaining({ code: 'BUS_ALREADY_SUBSCRIBED' }),
    );
    const seen: number[] = [];
    const done = (async () => {
      for await (const event of subscription) {
        seen.push(event.seq);
        if (event.seq === 4) break;
      }
    })();
    await writer.publish({ topic: 't', payload: 3 });
    await writer.publish({ topic: 't', payload: 4 });
    await done;
    expect(seen).toEqual([2, 3, 4]);
    expect(subscription.lastSeq).toBe(4);
    const again = reader.subscribe({ after: 3 });
    const iterator = again[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toMatchObject({ seq: 4 });
    again.close();
    expect(await iterator.next()).toEqual({ value: undefined, done: true });
  });

  it('reconnects after the server restarts, resends unanswered requests once and resumes the subscription without gap or duplicate', async () => {
    const states: BusClientState[] = [];
    const writer = await client('writer', {
      reconnect: { initialDelayMs: 10, maxDelayMs: 100 },
      onStateChange: (state) => states.push(state),
    });
    const reader = await client('reader', { reconnect: { initialDelayMs: 10, maxDelayMs: 100 } });
    for (let index = 1; index <= 5; index += 1)
      await writer.publish({ topic: 't', payload: index });
    const received: BusEvent[] = [];
    const subscription = reader.subscribe({ after: 0 });
    const reading = (async () => {
      for await (const event of subscription) {
        received.push(event);
        if (event.seq === 15) return;
      }
    })();
    await vi.waitFor(() => expect(received).toHaveLength(5), { timeout: 5000 });
    const port = (server as BusServer).port;
    await (server as BusServer).close();
    server = undefined;
    await vi.waitFor(() => expect(writer.state).toBe('reconnecting'), { timeout: 5000 });
    const whileDown = Array.from({ length: 10 }, (_, index) =>
      writer.publish({ topic: 't', payload: 6 + index }),
    );
    server = await createBusServer({ buses: [bus], port });
    const acks = await Promise.all(whileDown);
    expect(acks.map((ack) => ack.seq)).toEqual(Array.from({ length: 10 }, (_, index) => 6 + index));
    await reading;
    expect(received.map((event) => event.seq)).toEqual(
      Array.from({ length: 15 }, (_, index) => index + 1),
    );
    expect(bus.head).toBe(15);
    expect(states).toEqual(['open', 'reconnecting', 'open']);
  });

  it('rejects with BUS_UNAUTHENTICATED for a bad token, without retrying', async () => {
    await expect(
      connectBus({
        url: (server as BusServer).url,
        mission: MISSION.id,
        participant: 'writer',
        token: 'wrong',
      }),
    ).rejects.toMatchObject({
      code: 'BUS_UNAUTHENTICATED',
    });
  });

  it('gives up with BUS_UNREACHABLE when nothing listens', async () => {
    const probe: Server = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as { port: number };
    await new Promise((resolve) => probe.close(resolve));
    const error = await connectBus({
      url: `ws://127.0.0.1:${port}`,
      mission: MISSION.id,
      participant: 'writer',
      token: 't',
      connectTimeoutMs: 300,
      reconnect: { initialDelayMs: 20 },
    }).catch((caught: unknown) => caught);
    expect(PitError.is(error) && error.code).toBe('BUS_UNREACHABLE');
  });

  it('times a request out with BUS_TIMEOUT when the server never answers', async () => {
    const url = await fakeServer(() => undefined);
    const connected = await connectBus({
      url,
      mission: MISSION.id,
      participant: 'writer',
      token: 't',
      requestTimeoutMs: 100,
    });
    clients.push(connected);
    await expect(connected.publish({ topic: 't', payload: 1 })).rejects.toMatchObject({
      code: 'BUS_TIMEOUT',
    });
  });

  it('ignores malformed frames from the server and keeps working', async () => {
    const url = await fakeServer((ws, frame) => {
      ws.send('{broken');
      ws.send(JSON.stringify({ type: 'ack', ref: frame.ref, seq: -4 }));
      ws.send(
        JSON.stringify({
          type: 'ack',
          ref: frame.ref,
          seq: 1,
          id: frame.id,
          ts: '2026-11-22T00:00:00.000Z',
        }),
      );
    });
    const connected = await connectBus({
      url,
      mission: MISSION.id,
      participant: 'writer',
      token: 't',
    });
    clients.push(connected);
    expect(await connected.publish({ topic: 't', payload: 1 })).toMatchObject({ seq: 1 });
  });

  it('notices a server that stopped pinging and reconnects', async () => {
    let connections = 0;
    const url = await fakeServer(() => undefined, 50);
    fakes[0]?.on('connection', () => {
      connections += 1;
    });
    const connected = await connectBus({
      url,
      mission: MISSION.id,
      participant: 'writer',
      token: 't',
      reconnect: { initialDelayMs: 10 },
    });
    clients.push(connected);
    await vi.waitFor(() => expect(connections).toBeGreaterThanOrEqual(2), { timeout: 5000 });
  });

  it('refuses requests after close', async () => {
    const writer = await client('writer');
    await writer.close();
    expect(writer.state).toBe('closed');
    await expect(writer.publish({ topic: 't', payload: 1 })).rejects.toMatchObject({
      code: 'BUS_CLOSED',
    });
  });
});
