import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectBus, type BusAck, type BusClient } from '../src/client.js';
import type { BusEvent, MessageEvent } from '../src/bus-event.js';
import type { FsyncPolicy } from '../src/config.js';
import { MissionBus } from '../src/mission-bus.js';
import { makeCell, roleParticipants, tempRoot } from './helpers.js';

const SCRIPT = fileURLToPath(new URL('./bus-server-process.ts', import.meta.url));
const MISSION = { id: 'crash-mission', title: 'Crash test' };

interface Started {
  child: ChildProcess;
  port: number;
  repairs: number;
}

const children = new Set<ChildProcess>();
const clients: BusClient[] = [];
let cleanup: () => Promise<void>;
let root: string;

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

async function startServer(config: object, cellDir: string, port = 0): Promise<Started> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@pit/source',
      '--import',
      'tsx',
      SCRIPT,
      JSON.stringify({ cellDir, port, config }),
    ],
    {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const ready = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(
      () => reject(new Error(`server did not start within 20 s: ${stderr}`)),
      20_000,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = /READY .*\n/.exec(stdout)?.[0];
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before READY: ${stderr}`));
    });
  });
  const [, port_, , repairs] = ready.trim().split(' ');
  return { child, port: Number(port_), repairs: Number(repairs) };
}

async function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (!alive(child)) return;
  const exited = once(child, 'exit');
  process.kill(-(child.pid as number), signal);
  await exited;
}

beforeEach(async () => {
  ({ root, cleanup } = await tempRoot());
});

afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const child of children) await kill(child, 'SIGKILL');
  children.clear();
  await cleanup();
});

describe('a server killed with SIGKILL mid-stream', () => {
  it.each<FsyncPolicy>([{ mode: 'always' }, { mode: 'batch', interval_ms: 10 }, { mode: 'never' }])(
    'loses no acknowledged event and records each once, in order (fsync $mode)',
    async (fsync) => {
      const cellDir = await makeCell(root);
      const { people, participants } = roleParticipants();
      const config = {
        mission: MISSION,
        participants,
        log: { fsync, segment_max_bytes: 16 * 1024 },
      };
      const first = await startServer(config, cellDir);
      const url = `ws://127.0.0.1:${first.port}`;
      const connect = async (name: 'writer' | 'lead1' | 'reader'): Promise<BusClient> => {
        const client = await connectBus({
          url,
          mission: MISSION.id,
          participant: name,
          token: people[name].token,
          reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
          requestTimeoutMs: 0,
        });
        clients.push(client);
        return client;
      };
      const perPublisher = 300;
      const acks = new Map<string, Array<BusAck & { index: number }>>();
      let acknowledged = 0;
      let crashed!: () => void;
      const crashPoint = new Promise<void>((resolve) => {
        crashed = resolve;
      });
      const publish = async (name: 'writer' | 'lead1'): Promise<void> => {
        const client = await connect(name);
        const mine: Array<BusAck & { index: number }> = [];
        acks.set(name, mine);
        const window = 8;
        let next = 0;
        await Promise.all(
          Array.from({ length: window }, async () => {
            while (next < perPublisher) {
              const index = next++;
              const ack = await client.publish({ topic: name, payload: { index } });
              mine.push({ ...ack, index });
              if (++acknowledged === 150) crashed();
            }
          }),
        );
      };
      const subscriber = await connect('reader');
      const received: BusEvent[] = [];
      const subscription = subscriber.subscribe({ after: 0 });
      const reading = (async () => {
        for await (const event of subscription) {
          received.push(event);
          if (received.length === perPublisher * 2) return;
        }
      })();
      const publishing = Promise.all([publish('writer'), publish('lead1')]);

      await crashPoint;
      await kill(first.child, 'SIGKILL');
      const acknowledgedBeforeCrash = acknowledged;
      const second = await startServer(config, cellDir, first.port);
      expect(second.port).toBe(first.port);
      await publishing;
      await reading;
      expect(acknowledgedBeforeCrash).toBeLessThan(perPublisher * 2);
      for (const client of clients.splice(0)) await client.close();
      await kill(second.child, 'SIGTERM');
      expect(second.child.exitCode).toBe(0);

      const bus = await MissionBus.open({ cellDir, config });
      try {
        const log = (await bus.read({ limit: 10_000 })) as MessageEvent[];
        // Gap-free, and every publish exactly once (resends after the crash were recognised by id).
        expect(log.map((event) => event.seq)).toEqual(
          Array.from({ length: perPublisher * 2 }, (_, index) => index + 1),
        );
        expect(new Set(log.map((event) => event.id)).size).toBe(log.length);
        for (const [name, mine] of acks) {
          expect(mine).toHaveLength(perPublisher);
          for (const ack of mine)
            expect(log[ack.seq - 1]).toMatchObject({
              id: ack.id,
              sender: name,
              payload: { index: ack.index },
            });
          // Each publisher's events are in the order it issued them.
          const indexes = log
            .filter((event) => event.sender === name)
            .map((event) => (event.payload as { index: number }).index);
          expect(indexes).toEqual(Array.from({ length: perPublisher }, (_, index) => index));
        }
        // The subscriber saw the same stream: no gap, no duplicate across its reconnect.
        expect(received).toEqual(log);
      } finally {
        await bus.close();
      }
    },
    60_000,
  );
});
