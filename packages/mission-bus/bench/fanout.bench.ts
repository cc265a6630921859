/**
 * Throughput and publish→deliver latency of the mission bus with 1 publisher and 10
 * subscribers on loopback, for each fsync policy, beside a bare ws broadcast server doing the
 * same fan-out without a log (the ceiling). The server runs in a child process; the clients
 * run here and speak the wire protocol directly (JSON.parse only), so that the comparison is
 * between servers. A last row measures the bus with the real `connectBus` clients.
 *
 * Throughput: the publisher keeps `WINDOW` publishes in flight; the time runs until every
 * subscriber has every event. Latency: publishes paced at `RATE` per second; each delivery's
 * latency is its arrival time minus the publish time carried in the payload (one clock: same
 * process).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { provisionCell } from '@pit/cell-spec';
import WebSocket from 'ws';
import { connectBus } from '../src/client.js';
import type { FsyncPolicy } from '../src/config.js';
import { createToken } from '../src/tokens.js';

const SMOKE = process.env.BENCH_SMOKE === '1';
const EVENTS = SMOKE ? 2000 : 30_000;
const LATENCY_EVENTS = SMOKE ? 300 : 3000;
const RATE = 1000; // publishes per second in the latency phase
const WINDOW = 256;
const ROUNDS = SMOKE ? 1 : 3;
const LOAD_AT_START = loadavg();
const SUBSCRIBERS = 10;
const SERVER_SCRIPT = fileURLToPath(new URL('./fanout-server.ts', import.meta.url));
const MISSION = 'bench-mission';
const PAD = 'p'.repeat(100);

type Mode = 'bare' | FsyncPolicy['mode'];
interface Row {
  metric: string;
  value: number;
  unit: string;
  target?: string;
  ok?: boolean;
}

const log = (message: string): void => void process.stderr.write(`${message}\n`);

async function startServer(
  mode: Mode,
  cellDir: string,
  tokens: Record<string, string>,
): Promise<{ child: ChildProcess; url: string }> {
  const fsync: FsyncPolicy =
    mode === 'batch'
      ? { mode: 'batch', interval_ms: 10 }
      : mode === 'always'
        ? { mode: 'always' }
        : { mode: 'never' };
  const config = {
    mission: { id: MISSION, title: 'bench' },
    participants: Object.entries(tokens).map(([name, sha256]) => ({
      name,
      role: name === 'pub' ? ('write' as const) : ('read' as const),
      token_sha256: sha256,
    })),
    log: { fsync },
  };
  const child = spawn(
    process.execPath,
    [
      '--conditions=@pit/source',
      '--import',
      'tsx',
      SERVER_SCRIPT,
      JSON.stringify({ mode, cellDir, config }),
    ],
    {
      detached: true,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /READY (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`bench server exited ${code}`)));
  });
  return { child, url: `ws://127.0.0.1:${port}` };
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  process.kill(-(child.pid as number), 'SIGTERM');
  const timer = setTimeout(() => process.kill(-(child.pid as number), 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** A wire client that answers only what the benchmark needs. */
class WireClient {
  private waiters = new Map<number, () => void>();
  onEvent: (seq: number, payload: { i: number; sent: number }) => void = () => undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as {
        type: string;
        ref?: number;
        event?: { seq: number; payload: { i: number; sent: number } };
        events?: Array<{ seq: number; payload: { i: number; sent: number } }>;
      };
      if (frame.type === 'event' && frame.event) this.onEvent(frame.event.seq, frame.event.payload);
      else if (frame.type === 'events' && frame.events)
        for (const event of frame.events) this.onEvent(event.seq, event.payload);
      else if (frame.ref !== undefined) {
        const wake = this.waiters.get(frame.ref);
        this.waiters.delete(frame.ref);
        wake?.();
      } else if (frame.type === 'welcome') this.waiters.get(-1)?.();
    });
  }

  static async open(
    url: string,
    mode: Mode,
    participant: string,
    token: string,
  ): Promise<WireClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await once(ws, 'open');
    const client = new WireClient(ws);
    if (mode !== 'bare') {
      const welcomed = new Promise<void>((resolve) => client.waiters.set(-1, resolve));
      ws.send(JSON.stringify({ op: 'hello', v: 1, mission: MISSION, participant, token }));
      await welcomed;
      client.waiters.delete(-1);
    }
    return client;
  }

  request(frame: Record<string, unknown> & { ref: number }): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.set(frame.ref, resolve);
      this.ws.send(JSON.stringify(frame));
    });
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function measure(mode: Mode): Promise<{ throughput: number; p50: number; p99: number }> {
  const root = await mkdtemp(join(tmpdir(), 'pit-bus-bench-'));
  const { dir: cellDir } = await provisionCell(root, { mission: 'bench', created_by: 'bench' });
  const tokens: Record<string, { token: string; sha256: string }> = { pub: createToken() };
  for (let index = 0; index < SUBSCRIBERS; index += 1) tokens[`sub${index}`] = createToken();
  const { child, url } = await startServer(
    mode,
    cellDir,
    Object.fromEntries(Object.entries(tokens).map(([name, token]) => [name, token.sha256])),
  );
  try {
    const subscribers = await Promise.all(
      Array.from({ length: SUBSCRIBERS }, (_, index) =>
        WireClient.open(
          url,
          mode,
          `sub${index}`,
          (tokens[`sub${index}`] as { token: string }).token,
        ),
      ),
    );
    for (const [index, subscriber] of subscribers.entries())
      await subscriber.request({ op: 'subscribe', ref: 1000 + index, after: 0 });
    const publisher = await WireClient.open(
      url,
      mode,
      'pub',
      (tokens.pub as { token: string }).token,
    );
    let ref = 0;
    const publish = (i: number): Promise<void> => {
      ref += 1;
      return publisher.request({
        op: 'publish',
        ref,
        id: `e-${ref}`,
        topic: 'bench',
        payload: { i, sent: performance.now(), pad: PAD },
      });
    };

    // Throughput: WINDOW publishes in flight, until every subscriber has everything.
    let delivered = 0;
    let allDelivered!: () => void;
    const done = new Promise<void>((resolve) => {
      allDelivered = resolve;
    });
    const expected = EVENTS * SUBSCRIBERS;
    for (const subscriber of subscribers) {
      subscriber.onEvent = () => {
        if (++delivered === expected) allDelivered();
      };
    }
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: WINDOW }, async () => {
        while (next < EVENTS) await publish(next++);
      }),
    );
    await done;
    const throughput = EVENTS / ((performance.now() - started) / 1000);

    // Latency: paced publishes; every delivery's latency.
    const latencies: number[] = [];
    let latencyDone!: () => void;
    const latencyFinished = new Promise<void>((resolve) => {
      latencyDone = resolve;
    });
    for (const subscriber of subscribers) {
      subscriber.onEvent = (_seq, payload) => {
        latencies.push(performance.now() - payload.sent);
        if (latencies.length === LATENCY_EVENTS * SUBSCRIBERS) latencyDone();
      };
    }
    const pacedStart = performance.now();
    for (let index = 0; index < LATENCY_EVENTS; index += 1) {
      const due = pacedStart + (index * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      void publish(index);
    }
    await latencyFinished;
    latencies.sort((a, b) => a - b);
    for (const client of [...subscribers, publisher]) client.ws.terminate();
    return { throughput, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
  } finally {
    await stopServer(child);
    await rm(root, { recursive: true, force: true });
  }
}

/** The bus (batched fsync) with the real client: connectBus publishers and subscribers. */
async function measureRealClient(): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'pit-bus-bench-'));
  const { dir: cellDir } = await provisionCell(root, { mission: 'bench', created_by: 'bench' });
  const tokens: Record<string, { token: string; sha256: string }> = { pub: createToken() };
  for (let index = 0; index < SUBSCRIBERS; index += 1) tokens[`sub${index}`] = createToken();
  const { child, url } = await startServer(
    'batch',
    cellDir,
    Object.fromEntries(Object.entries(tokens).map(([name, token]) => [name, token.sha256])),
  );
  try {
    const connect = (name: string) =>
      connectBus({
        url,
        mission: MISSION,
        participant: name,
        token: (tokens[name] as { token: string }).token,
      });
    const subscribers = await Promise.all(
      Array.from({ length: SUBSCRIBERS }, (_, index) => connect(`sub${index}`)),
    );
    const publisher = await connect('pub');
    const started = performance.now();
    const reading = subscribers.map(async (subscriber) => {
      for await (const event of subscriber.subscribe({ after: 0 }))
        if (event.seq === EVENTS) return;
    });
    let next = 0;
    await Promise.all(
      Array.from({ length: WINDOW }, async () => {
        while (next < EVENTS) {
          const i = next++;
          await publisher.publish({
            topic: 'bench',
            payload: { i, sent: performance.now(), pad: PAD },
          });
        }
      }),
    );
    await Promise.all(reading);
    const throughput = EVENTS / ((performance.now() - started) / 1000);
    for (const client of [...subscribers, publisher]) await client.close();
    return throughput;
  } finally {
    await stopServer(child);
    await rm(root, { recursive: true, force: true });
  }
}

// Rounds interleave the modes so that load from other processes falls on all of them alike;
// each metric is the median over the rounds.
const rounds = new Map<Mode, Array<{ throughput: number; p50: number; p99: number }>>();
for (let round = 1; round <= ROUNDS; round += 1) {
  for (const mode of ['bare', 'never', 'batch', 'always'] as const) {
    log(
      `fanout: round ${round}/${ROUNDS}: ${mode}: ${EVENTS} events × ${SUBSCRIBERS} subscribers…`,
    );
    const result = await measure(mode);
    log(
      `fanout: ${mode}: ${Math.round(result.throughput)} events/s, p50 ${result.p50.toFixed(3)} ms, p99 ${result.p99.toFixed(3)} ms`,
    );
    rounds.set(mode, [...(rounds.get(mode) ?? []), result]);
  }
}
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};
const results = new Map<Mode, { throughput: number; p50: number; p99: number }>();
for (const [mode, list] of rounds) {
  results.set(mode, {
    throughput: median(list.map((r) => r.throughput)),
    p50: median(list.map((r) => r.p50)),
    p99: median(list.map((r) => r.p99)),
  });
}
log('fanout: batch with connectBus clients…');
const realClient = await measureRealClient();

const bare = results.get('bare') as { throughput: number; p50: number; p99: number };
const rows: Row[] = [];
const label = {
  bare: 'bare ws broadcast (no log, ceiling)',
  never: 'bus, fsync never',
  batch: 'bus, fsync batch 10 ms',
  always: 'bus, fsync always',
} as const;
for (const [mode, result] of results) {
  const ratio = result.throughput / bare.throughput;
  rows.push({
    metric: `${label[mode]}: throughput`,
    value: Math.round(result.throughput),
    unit: 'events/s',
    ...(mode === 'batch'
      ? { target: `≥ 50% of bare (${Math.round(bare.throughput / 2)})`, ok: ratio >= 0.5 }
      : {}),
  });
  if (mode !== 'bare')
    rows.push({
      metric: `${label[mode]}: share of bare`,
      value: Math.round(ratio * 1000) / 10,
      unit: '%',
      ...(mode === 'batch' ? { target: '≥ 50 %', ok: ratio >= 0.5 } : {}),
    });
  rows.push({
    metric: `${label[mode]}: latency p50`,
    value: Math.round(result.p50 * 1000) / 1000,
    unit: 'ms',
  });
  rows.push({
    metric: `${label[mode]}: latency p99`,
    value: Math.round(result.p99 * 1000) / 1000,
    unit: 'ms',
    ...(mode === 'batch' ? { target: '≤ 5 ms', ok: result.p99 <= 5 } : {}),
  });
}
rows.push({
  metric: 'bus, fsync batch 10 ms, connectBus clients: throughput',
  value: Math.round(realClient),
  unit: 'events/s',
});

process.stdout.write(
  `BENCH_RESULT ${JSON.stringify({
    title: `mission bus fan-out: 1 publisher → ${SUBSCRIBERS} subscribers on loopback (${EVENTS} events; latency at ${RATE}/s)`,
    notes: `Median of ${ROUNDS} interleaved rounds. Throughput with ${WINDOW} publishes in flight, timed until every subscriber has every event. Latency = delivery time − publish time, over ${LATENCY_EVENTS} paced publishes × ${SUBSCRIBERS} subscribers. Server in its own process; wire clients parse JSON only, so rows compare servers; the last row uses the real client (zod-validated frames). The bus sends events acknowledged together as one frame per subscriber; the bare server sends one frame per event. Latency percentiles are sensitive to other load on the machine (os.loadavg at the start: ${LOAD_AT_START.map(
      (value) => value.toFixed(1),
    ).join(', ')}).`,
    rows,
  })}\n`,
);
