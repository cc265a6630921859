import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cellPaths, writeHeartbeat } from '@pit/cell-spec';
import { startHttpServer, startHungServer, type RunningServer } from './__fixtures__/targets.js';
import { createAssessor, type Assessment } from './assessor.js';
import { ProbeError } from './errors.js';
import { createHeartbeatProbe } from './heartbeat-probe.js';
import { httpProbe } from './http-probe.js';
import {
  createProbeScheduler,
  type ProbeEvent,
  type ProbeScheduler,
  type ProbeSchedulerOptions,
} from './scheduler.js';
import { tcpProbe } from './tcp-probe.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function scheduler(options: Partial<ProbeSchedulerOptions> = {}): {
  scheduler: ProbeScheduler;
  events: ProbeEvent[];
} {
  const events: ProbeEvent[] = [];
  const created = createProbeScheduler({
    onResult: (event) => events.push(event),
    seed: 42,
    ...options,
  });
  cleanups.push(() => created.stop());
  return { scheduler: created, events };
}

async function live(): Promise<RunningServer> {
  const server = await startHttpServer((_request, response) => response.end('ok'));
  cleanups.push(() => server.close());
  return server;
}

async function hung(): Promise<RunningServer & { connections(): number }> {
  const server = await startHungServer();
  cleanups.push(() => server.close());
  return server;
}

function cell(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pit-probes-scheduler-'));
  mkdirSync(cellPaths(dir).heartbeats, { recursive: true });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const uuid = randomUUID();

describe('createProbeScheduler', () => {
  it('runs each probe at once, then on its interval', async () => {
    const server = await live();
    const { scheduler: probes, events } = scheduler({ jitter: 0 });
    probes.add({
      agent: 'forge',
      probes: [
        {
          name: 'tcp',
          intervalMs: 30,
          run: (options) => tcpProbe({ host: '127.0.0.1', port: server.port }, options),
        },
      ],
    });
    await vi.waitFor(() => expect(events.length).toBeGreaterThanOrEqual(4), { timeout: 10_000 });
    expect(events[0]).toMatchObject({
      agent: 'forge',
      probe: 'tcp',
      reason: 'start',
      result: { kind: 'tcp', ok: true },
    });
    expect(events.slice(1, 4).map((event) => event.reason)).toEqual([
      'interval',
      'interval',
      'interval',
    ]);
  });

  it('never lets a hung target delay another agent', async () => {
    const stuck = await hung();
    const server = await live();
    const { scheduler: probes, events } = scheduler({ concurrency: 4 });
    probes.add({
      agent: 'hung',
      probes: [
        {
          name: 'http',
          intervalMs: 20,
          timeoutMs: 20_000,
          run: (options) => httpProbe(stuck.url, options),
        },
      ],
    });
    probes.add({
      agent: 'live',
      probes: [
        {
          name: 'tcp',
          intervalMs: 20,
          run: (options) => tcpProbe({ host: '127.0.0.1', port: server.port }, options),
        },
      ],
    });
    await vi.waitFor(
      () =>
        expect(events.filter((event) => event.agent === 'live').length).toBeGreaterThanOrEqual(5),
      { timeout: 10_000 },
    );
    expect(events.filter((event) => event.agent === 'hung')).toEqual([]);
    expect(stuck.connections()).toBe(1);
  });

  it('runs at most `concurrency` probes at once and queues the rest', async () => {
    const stuck = await hung();
    const { scheduler: probes } = scheduler({ concurrency: 3 });
    for (let index = 0; index < 10; index += 1) {
      probes.add({
        agent: `agent-${index}`,
        probes: [
          {
            name: 'http',
            intervalMs: 1_000,
            timeoutMs: 20_000,
            run: (options) => httpProbe(stuck.url, options),
          },
        ],
      });
    }
    await vi.waitFor(() => expect(stuck.connections()).toBe(3), { timeout: 10_000 });
    expect(probes.stats()).toMatchObject({ agents: 10, probes: 10, running: 3, queued: 7 });
  });

  it('notices a heartbeat death at its deadline by timer, not at the next poll', async () => {
    const cellDir = cell();
    // Fresh for 2 s more: the first run (at add) must still find it fresh on a loaded machine.
    const maxAgeMs = 5_000;
    const written = await writeHeartbeat(cellDir, {
      agent: 'forge',
      cell_uuid: uuid,
      cycle: 1,
      status: 'working',
      timestamp: (Date.now() - maxAgeMs + 2_000) / 1000,
    });
    const deadline = written.timestamp * 1000 + maxAgeMs;
    const assessor = createAssessor({ probes: { heartbeat: { failureThreshold: 1 } } });
    const verdicts: Assessment[] = [];
    const { scheduler: probes, events } = scheduler({
      onResult: (event) => {
        events.push(event);
        verdicts.push(assessor.record(event.agent, event.probe, event.result));
      },
    });
    const heartbeat = createHeartbeatProbe({ cellDir, agent: 'forge', maxAgeMs });
    probes.add({
      agent: `${uuid}/forge`,
      probes: [{ name: 'heartbeat', intervalMs: 600_000, run: heartbeat.run }],
    });
    await vi.waitFor(() => expect(verdicts.at(-1)?.health).toBe('dead'), { timeout: 10_000 });
    expect(events.map((event) => event.reason)).toEqual(['start', 'deadline']);
    const death = events[1] as ProbeEvent;
    expect(death.result).toMatchObject({ ok: false, failure: 'stale' });
    expect(death.result.observedAt).toBeGreaterThan(deadline);
    expect(events[0]?.result.deadlineAt).toBe(Math.ceil(deadline));
  });

  it('polls a watched probe that passed on its watchedIntervalMs, an unwatched one on intervalMs', async () => {
    const cellDir = cell();
    await writeHeartbeat(cellDir, { agent: 'forge', cell_uuid: uuid, cycle: 1, status: 'working' });
    await writeHeartbeat(cellDir, { agent: 'anvil', cell_uuid: uuid, cycle: 1, status: 'working' });
    const { scheduler: probes, events } = scheduler();
    const spec = (agent: string, watchPath: string) => ({
      agent,
      probes: [
        {
          name: 'heartbeat',
          intervalMs: 40,
          watchedIntervalMs: 600_000,
          watchPath,
          run: createHeartbeatProbe({ cellDir, agent, maxAgeMs: 600_000 }).run,
        },
      ],
    });
    probes.add(spec('forge', cellPaths(cellDir).heartbeat('forge')));
    // Its watch path's directory does not exist: no watch, so it is polled on intervalMs.
    probes.add(spec('anvil', join(cellDir, 'missing', 'anvil.json')));
    const runs = (agent: string) => events.filter((event) => event.agent === agent);
    await vi.waitFor(() => expect(runs('anvil').length).toBeGreaterThanOrEqual(6), {
      timeout: 10_000,
    });
    expect(probes.stats().watchedDirs).toBe(1);
    expect(runs('forge').map((event) => event.reason)).toEqual(['start']);
  });

  it('re-runs a watched heartbeat probe when the file changes, without polling', async () => {
    const cellDir = cell();
    await writeHeartbeat(cellDir, { agent: 'forge', cell_uuid: uuid, cycle: 1, status: 'working' });
    const { scheduler: probes, events } = scheduler();
    const heartbeat = createHeartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 600_000 });
    probes.add({
      agent: 'forge',
      probes: [
        {
          name: 'heartbeat',
          intervalMs: 600_000,
          watchPath: cellPaths(cellDir).heartbeat('forge'),
          run: heartbeat.run,
        },
      ],
    });
    await vi.waitFor(() => expect(events).toHaveLength(1), { timeout: 10_000 });
    expect(probes.stats().watchedDirs).toBe(1);
    await writeHeartbeat(cellDir, { agent: 'forge', cell_uuid: uuid, cycle: 2, status: 'working' });
    await vi.waitFor(
      () =>
        expect(
          events.find(
            (event) =>
              event.reason === 'watch' &&
              (event.result as { heartbeat?: { cycle: number } }).heartbeat?.cycle === 2,
          ),
        ).toBeDefined(),
      { timeout: 10_000 },
    );
    // A file that no probe watches in the same directory does not trigger anything.
    const before = events.length;
    await writeHeartbeat(cellDir, { agent: 'other', cell_uuid: uuid, cycle: 1, status: 'working' });
    await writeHeartbeat(cellDir, { agent: 'forge', cell_uuid: uuid, cycle: 3, status: 'working' });
    await vi.waitFor(
      () =>
        expect(
          events.some(
            (event) => (event.result as { heartbeat?: { cycle: number } }).heartbeat?.cycle === 3,
          ),
        ).toBe(true),
      { timeout: 10_000 },
    );
    expect(events.slice(before).every((event) => event.agent === 'forge')).toBe(true);
    probes.remove('forge');
    expect(probes.stats().watchedDirs).toBe(0);
  });

  it('adds and removes agents live; a removed agent’s running probe is aborted and its result dropped', async () => {
    const stuck = await hung();
    const server = await live();
    const { scheduler: probes, events } = scheduler();
    probes.add({
      agent: 'hung',
      probes: [
        {
          name: 'http',
          intervalMs: 50,
          timeoutMs: 20_000,
          run: (options) => httpProbe(stuck.url, options),
        },
      ],
    });
    await vi.waitFor(() => expect(stuck.connections()).toBe(1), { timeout: 10_000 });
    expect(probes.remove('hung')).toBe(true);
    expect(probes.remove('hung')).toBe(false);
    await vi.waitFor(() => expect(stuck.connections()).toBe(0), { timeout: 10_000 });
    probes.add({
      agent: 'late',
      probes: [
        {
          name: 'tcp',
          intervalMs: 50,
          run: (options) => tcpProbe({ host: '127.0.0.1', port: server.port }, options),
        },
      ],
    });
    await vi.waitFor(
      () =>
        expect(events.filter((event) => event.agent === 'late').length).toBeGreaterThanOrEqual(2),
      { timeout: 10_000 },
    );
    expect(probes.agents()).toEqual(['late']);
    await probes.stop();
    expect(events.filter((event) => event.agent === 'hung')).toEqual([]);
  });

  it('sweeps every probe once on demand', async () => {
    const server = await live();
    const { scheduler: probes } = scheduler();
    const run = (options: Parameters<typeof tcpProbe>[1]) =>
      tcpProbe({ host: '127.0.0.1', port: server.port }, options);
    for (const agent of ['a', 'b', 'c']) {
      probes.add({
        agent,
        probes: [
          { name: 'tcp', intervalMs: 600_000, run },
          { name: 'http', intervalMs: 600_000, run: (options) => httpProbe(server.url, options) },
        ],
      });
    }
    const swept = await probes.sweep();
    expect(swept).toHaveLength(6);
    expect(swept.every((event) => event.reason === 'manual' && event.result.ok)).toBe(true);
    expect(new Set(swept.map((event) => `${event.agent}/${event.probe}`)).size).toBe(6);
  });

  it('starts the probes that were slowest last time first in a sweep', async () => {
    const stuck = await hung();
    const server = await live();
    const { scheduler: probes, events } = scheduler({ concurrency: 1 });
    probes.add({
      agent: 'quick',
      probes: [
        {
          name: 'tcp',
          intervalMs: 600_000,
          run: (options) => tcpProbe({ host: '127.0.0.1', port: server.port }, options),
        },
      ],
    });
    probes.add({
      agent: 'slow',
      probes: [
        {
          name: 'http',
          intervalMs: 600_000,
          timeoutMs: 200,
          run: (options) => httpProbe(stuck.url, options),
        },
      ],
    });
    await probes.sweep();
    // With one slot, results arrive in the order the probes started.
    const second = events.length;
    await probes.sweep();
    expect(events.slice(second).map((event) => event.agent)).toEqual(['slow', 'quick']);
    expect(events.at(second)?.result.failure).toBe('timeout');
  });

  it('runs a probe on trigger() ahead of its schedule', async () => {
    const server = await live();
    const { scheduler: probes, events } = scheduler();
    probes.add({
      agent: 'forge',
      probes: [
        {
          name: 'tcp',
          intervalMs: 600_000,
          run: (options) => tcpProbe({ host: '127.0.0.1', port: server.port }, options),
        },
      ],
    });
    await vi.waitFor(() => expect(events).toHaveLength(1), { timeout: 10_000 });
    probes.trigger('forge', 'tcp');
    await vi.waitFor(
      () => expect(events.map((event) => event.reason)).toEqual(['start', 'manual']),
      { timeout: 10_000 },
    );
    expect(() => probes.trigger('nobody')).toThrow(
      expect.objectContaining({ code: 'PROBE_UNKNOWN_AGENT' }),
    );
    expect(() => probes.trigger('forge', 'nope')).toThrow(
      expect.objectContaining({ code: 'PROBE_UNKNOWN_AGENT' }),
    );
  });

  it('abandons a probe implementation that ignores its timeout and signal', async () => {
    const { scheduler: probes, events } = scheduler();
    let signal: AbortSignal | undefined;
    probes.add({
      agent: 'forge',
      probes: [
        {
          name: 'custom',
          intervalMs: 600_000,
          timeoutMs: 50,
          run: (options) => {
            signal = options.signal;
            return new Promise(() => undefined);
          },
        },
      ],
    });
    await vi.waitFor(() => expect(events).toHaveLength(1), { timeout: 10_000 });
    expect(events[0]?.result).toMatchObject({ ok: false, failure: 'timeout' });
    expect(events[0]?.result.detail).toContain('did not settle within 1050 ms; abandoned');
    expect(signal?.aborted).toBe(true);
    expect(probes.stats().running).toBe(0);
  });

  it('gives a run that asks for its signal only after it was abandoned an aborted one, and the next run a fresh one', async () => {
    const { scheduler: probes, events } = scheduler();
    let release: () => void = () => undefined;
    const late: AbortSignal[] = [];
    let runs = 0;
    probes.add({
      agent: 'forge',
      probes: [
        {
          name: 'custom',
          intervalMs: 600_000,
          timeoutMs: 50,
          run: async (options) => {
            runs += 1;
            if (runs === 1) await new Promise<void>((resolve) => (release = resolve));
            late.push(options.signal);
            return { kind: 'custom', ok: true, latencyMs: 0, detail: 'ok', observedAt: Date.now() };
          },
        },
      ],
    });
    await vi.waitFor(() => expect(events).toHaveLength(1), { timeout: 10_000 });
    expect(events[0]?.result.detail).toContain('abandoned');
    release();
    await vi.waitFor(() => expect(late).toHaveLength(1));
    expect(late[0]?.aborted).toBe(true);
    probes.trigger('forge');
    await vi.waitFor(() => expect(events).toHaveLength(2), { timeout: 10_000 });
    expect(events[1]?.result.ok).toBe(true);
    expect(late[1]?.aborted).toBe(false);
  });

  it('turns a probe that throws into an error result and logs it; a throwing onResult is logged too', async () => {
    const logged: string[] = [];
    const log = (message: string) => logged.push(message);
    const logger = { debug: log, info: log, warn: log, error: log };
    let calls = 0;
    const created = createProbeScheduler({
      logger,
      onResult: () => {
        calls += 1;
        throw new Error('listener bug');
      },
    });
    cleanups.push(() => created.stop());
    created.add({
      agent: 'forge',
      probes: [
        { name: 'bad', intervalMs: 20, run: () => tcpProbe({ host: '127.0.0.1', port: 0 }) },
      ],
    });
    await vi.waitFor(() => expect(calls).toBeGreaterThanOrEqual(2), { timeout: 10_000 });
    expect(logged).toContain('probe run threw instead of returning a result');
    expect(logged).toContain('onResult threw');
  });

  it('refuses duplicate agents, bad schedules, and use after stop', async () => {
    const { scheduler: probes } = scheduler();
    const run = () => tcpProbe({ host: '127.0.0.1', port: 1 });
    probes.add({ agent: 'forge', probes: [{ name: 'tcp', intervalMs: 1_000, run }] });
    expect(() =>
      probes.add({ agent: 'forge', probes: [{ name: 'tcp', intervalMs: 1_000, run }] }),
    ).toThrow(expect.objectContaining({ code: 'PROBE_AGENT_EXISTS' }));
    expect(() =>
      probes.add({
        agent: 'x',
        probes: [
          { name: 'a', intervalMs: 1_000, run },
          { name: 'a', intervalMs: 5, run },
        ],
      }),
    ).toThrow(/probe names must be unique/);
    expect(() => probes.add({ agent: 'y', probes: [{ name: 'a', intervalMs: 0, run }] })).toThrow(
      /probes\.0\.intervalMs/,
    );
    expect(() => probes.add({ agent: 'z', probes: [] })).toThrow(ProbeError);
    expect(() => createProbeScheduler({ onResult: () => undefined, jitter: 2 })).toThrow(/jitter/);
    await probes.stop();
    expect(() =>
      probes.add({ agent: 'late', probes: [{ name: 'tcp', intervalMs: 1_000, run }] }),
    ).toThrow(expect.objectContaining({ code: 'PROBE_STOPPED' }));
  });

  it('waits for ten thousand probes with one timer, not one each', async () => {
    const timers = () =>
      process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
    const before = timers();
    const { scheduler: probes, events } = scheduler({ concurrency: 10_000 });
    for (let index = 0; index < 10_000; index += 1)
      probes.add({
        agent: `agent-${index}`,
        probes: [
          {
            name: 'noop',
            intervalMs: 3_600_000,
            run: async (options) => ({
              kind: 'noop',
              ok: true,
              latencyMs: 0,
              detail: 'fine',
              observedAt: options.now(),
            }),
          },
        ],
      });
    await vi.waitFor(() => expect(events).toHaveLength(10_000), { timeout: 10_000 });
    expect(timers() - before).toBeLessThanOrEqual(1);
    expect(probes.stats()).toMatchObject({ agents: 10_000, probes: 10_000, running: 0 });
  });
});
