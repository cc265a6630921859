import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cellPaths, writeHeartbeat } from '@pit/cell-spec';
import { ProbeError } from './errors.js';
import { createHeartbeatCheck, createHeartbeatProbe, heartbeatProbe } from './heartbeat-probe.js';
import { createPhiAccrualDetector } from './phi-accrual.js';
import { createProbeScheduler } from './scheduler.js';
import type { ProbeOptions, ProbeResult } from './probe-result.js';

let cellDir: string;
const uuid = randomUUID();
beforeEach(() => {
  cellDir = mkdtempSync(join(tmpdir(), 'pit-probes-heartbeat-'));
});
afterEach(() => rmSync(cellDir, { recursive: true, force: true }));

const T0 = 1_800_000_000_000; // a fixed "now", ms

function beat(cycle: number, atMs: number, pid = 4242) {
  return writeHeartbeat(cellDir, {
    agent: 'forge',
    cell_uuid: uuid,
    cycle,
    status: 'working',
    timestamp: atMs / 1000,
    pid,
  });
}

describe('heartbeatProbe', () => {
  it('is ok while the heartbeat is fresh, and announces when it will turn stale', async () => {
    await beat(7, T0 - 5_000);
    const result = await heartbeatProbe(
      { cellDir, agent: 'forge', maxAgeMs: 30_000 },
      { now: () => T0 },
    );
    expect(result).toMatchObject({
      kind: 'heartbeat',
      ok: true,
      ageMs: 5_000,
      stuck: false,
      deadlineAt: T0 + 25_000,
      observedAt: T0,
    });
    expect(result.heartbeat).toMatchObject({ agent: 'forge', cycle: 7, pid: 4242 });
    expect(result.progress).toEqual({ cycle: 7, pid: 4242, since: T0 - 5_000 });
  });

  it('reports a heartbeat aged past its threshold (an old timestamp written to the file) as stale', async () => {
    await beat(7, Date.now() - 120_000);
    const result = await heartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 30_000 });
    expect(result).toMatchObject({ ok: false, failure: 'stale', stuck: false });
    expect(result.ageMs).toBeGreaterThanOrEqual(120_000);
    expect(result.detail).toMatch(/heartbeat stale: age 12\d(\.\d)? s > 30 s/);
    expect(result.deadlineAt).toBeUndefined();
  });

  it('is stale one millisecond past the deadline it announced', async () => {
    await beat(1, T0);
    const fresh = await heartbeatProbe(
      { cellDir, agent: 'forge', maxAgeMs: 1_000 },
      { now: () => T0 },
    );
    const deadline = fresh.deadlineAt as number;
    await expect(
      heartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 1_000 }, { now: () => deadline }),
    ).resolves.toMatchObject({ ok: true });
    await expect(
      heartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 1_000 }, { now: () => deadline + 1 }),
    ).resolves.toMatchObject({ ok: false, failure: 'stale' });
  });

  it('detects a stuck agent: heartbeat fresh, cycle not advancing for longer than stuckAfterMs', async () => {
    const target = { cellDir, agent: 'forge', maxAgeMs: 30_000, stuckAfterMs: 60_000 };
    await beat(12, T0);
    const first = await heartbeatProbe(target, { now: () => T0 + 1_000 });
    expect(first).toMatchObject({ ok: true, deadlineAt: T0 + 30_000 });

    // The agent keeps writing heartbeats but its cycle stands still.
    await beat(12, T0 + 50_000);
    const still = await heartbeatProbe(
      { ...target, previous: first.progress },
      { now: () => T0 + 51_000 },
    );
    expect(still).toMatchObject({
      ok: true,
      progress: { cycle: 12, since: T0 },
      deadlineAt: T0 + 60_000,
    });

    await beat(12, T0 + 70_000);
    const stuck = await heartbeatProbe(
      { ...target, previous: still.progress },
      { now: () => T0 + 71_000 },
    );
    expect(stuck).toMatchObject({ ok: false, failure: 'stuck', stuck: true, ageMs: 1_000 });
    expect(stuck.detail).toContain(
      'heartbeat fresh (age 1 s) but cycle 12 has not advanced for 71 s > 60 s',
    );

    // Work resumes: the cycle advances and the probe is ok again.
    await beat(13, T0 + 72_000);
    const resumed = await heartbeatProbe(
      { ...target, previous: stuck.progress },
      { now: () => T0 + 73_000 },
    );
    expect(resumed).toMatchObject({
      ok: true,
      stuck: false,
      progress: { cycle: 13, since: T0 + 72_000 },
    });
  });

  it('starts a new progress record when the pid changes (the agent was restarted)', async () => {
    const target = { cellDir, agent: 'forge', maxAgeMs: 30_000, stuckAfterMs: 10_000 };
    await beat(3, T0, 100);
    const first = await heartbeatProbe(target, { now: () => T0 });
    await beat(3, T0 + 20_000, 200);
    const restarted = await heartbeatProbe(
      { ...target, previous: first.progress },
      { now: () => T0 + 20_000 },
    );
    expect(restarted).toMatchObject({
      ok: true,
      progress: { cycle: 3, pid: 200, since: T0 + 20_000 },
    });
  });

  it('reports a heartbeat that was never written as missing', async () => {
    const result = await heartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 30_000 });
    expect(result).toMatchObject({ ok: false, failure: 'missing', stuck: false });
    expect(result.detail).toContain(cellPaths(cellDir).heartbeat('forge'));
  });

  it('reports a heartbeat that breaks the contract as invalid, naming the field', async () => {
    mkdirSync(cellPaths(cellDir).heartbeats, { recursive: true });
    writeFileSync(
      cellPaths(cellDir).heartbeat('forge'),
      JSON.stringify({ agent: 'forge', pid: 1, timestamp: 'yesterday' }),
    );
    const result = await heartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 30_000 });
    expect(result).toMatchObject({ ok: false, failure: 'invalid' });
    expect(result.detail).toContain('timestamp');
  });

  it('judges staleness by phi when given a detector', async () => {
    const detector = createPhiAccrualDetector({ minStdDeviationMs: 100 });
    const target = { cellDir, agent: 'forge', detector };
    // A regular stream, one heartbeat per second.
    for (let index = 0; index < 20; index += 1) {
      await beat(index, T0 + index * 1_000);
      const result = await heartbeatProbe(target, { now: () => T0 + index * 1_000 + 10 });
      expect(result.ok).toBe(true);
    }
    const fresh = await heartbeatProbe(target, { now: () => T0 + 19_500 });
    expect(fresh.ok).toBe(true);
    expect(fresh.deadlineAt).toBe(detector.suspectAt());
    const late = await heartbeatProbe(target, { now: () => (fresh.deadlineAt as number) + 1 });
    expect(late).toMatchObject({ ok: false, failure: 'stale' });
    expect(late.phi).toBeGreaterThanOrEqual(8);
  });

  it.each([
    [{ cellDir: '/tmp', agent: '../etc', maxAgeMs: 1 }, /agent/],
    [{ cellDir: '/tmp', agent: 'forge' }, /maxAgeMs/],
    [{ cellDir: '/tmp', agent: 'forge', maxAgeMs: -1 }, /maxAgeMs/],
  ])('refuses a target that cannot be probed: %j', async (target, message) => {
    const error = await heartbeatProbe(target).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProbeError);
    expect((error as ProbeError).code).toBe('PROBE_INVALID_TARGET');
    expect((error as ProbeError).message).toMatch(message);
  });
});

/**
 * How many AbortControllers a scheduler's `rounds` sweeps of the heartbeat probe `run` make
 * (each sweep must find the heartbeat fresh).
 */
async function abortControllersMade(
  run: (options: ProbeOptions) => Promise<ProbeResult>,
  rounds: number,
): Promise<number> {
  const made = vi.spyOn(globalThis, 'AbortController');
  const scheduler = createProbeScheduler({ onResult: () => undefined });
  try {
    scheduler.add({
      agent: 'cell/forge',
      probes: [{ name: 'heartbeat', intervalMs: 60_000, run }],
    });
    for (let round = 0; round < rounds; round++) {
      const [event] = await scheduler.sweep();
      expect(event?.result).toMatchObject({ ok: true, kind: 'heartbeat' });
    }
    return made.mock.calls.length;
  } finally {
    made.mockRestore();
    await scheduler.stop();
  }
}

describe('createHeartbeatProbe', () => {
  it('remembers the cycle between runs, so a stuck cycle is detected without passing it back', async () => {
    let clock = T0;
    const probe = createHeartbeatProbe({
      cellDir,
      agent: 'forge',
      maxAgeMs: 30_000,
      stuckAfterMs: 20_000,
    });
    await beat(5, T0);
    await expect(probe.run({ now: () => clock })).resolves.toMatchObject({ ok: true });
    clock = T0 + 25_000;
    await beat(5, clock);
    await expect(probe.run({ now: () => clock })).resolves.toMatchObject({
      ok: false,
      failure: 'stuck',
    });
    expect(probe.progress).toEqual({ cycle: 5, pid: 4242, since: T0 });
    probe.reset();
    expect(probe.progress).toBeUndefined();
    await expect(probe.run({ now: () => clock })).resolves.toMatchObject({ ok: true });
  });

  it('run by a scheduler, makes no AbortController (0.8 KB each): a file read is not cancelled', async () => {
    await beat(7, Date.now());
    const probe = createHeartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 60_000 });
    expect(await abortControllersMade(probe.run, 5)).toBe(0);
  });
});

describe('createHeartbeatCheck', () => {
  it('judges any agent by one rule, as heartbeatProbe does with that rule', async () => {
    await beat(7, T0 - 5_000);
    const check = createHeartbeatCheck({ maxAgeMs: 30_000 });
    const fresh = await check(cellDir, 'forge', { now: () => T0 });
    const alone = await heartbeatProbe(
      { cellDir, agent: 'forge', maxAgeMs: 30_000 },
      { now: () => T0 },
    );
    expect({ ...fresh, latencyMs: 0 }).toEqual({ ...alone, latencyMs: 0 });
    const stale = await check(cellDir, 'forge', { now: () => T0 + 40_000 });
    expect(stale).toMatchObject({ ok: false, failure: 'stale' });
    expect((await check(cellDir, 'scribe', { now: () => T0 })).failure).toBe('missing');
  });

  it('answers from a checked cell at once exactly as the full read does, an invalid file included', async () => {
    await beat(7, T0 - 5_000);
    const check = createHeartbeatCheck({ maxAgeMs: 30_000 });
    await check(cellDir, 'forge', { now: () => T0 }); // the full read: the cell is checked once
    const fast = await check(cellDir, 'forge', { now: () => T0 });
    const full = await heartbeatProbe(
      { cellDir, agent: 'forge', maxAgeMs: 30_000 },
      { now: () => T0 },
    );
    expect({ ...fast, latencyMs: 0 }).toEqual({ ...full, latencyMs: 0 });
    writeFileSync(
      cellPaths(cellDir).heartbeat('forge'),
      JSON.stringify({ agent: 'forge', pid: 1, timestamp: 'yesterday' }),
    );
    const invalid = await check(cellDir, 'forge', { now: () => T0 });
    expect(invalid).toMatchObject({ ok: false, failure: 'invalid', stuck: false });
    expect(invalid.detail).toContain(cellPaths(cellDir).heartbeat('forge'));
    expect(invalid.detail).toContain('timestamp');
    const aborted = new AbortController();
    aborted.abort();
    expect(await check(cellDir, 'forge', { signal: aborted.signal })).toMatchObject({
      failure: 'aborted',
    });
  });

  it('run by a scheduler, makes no AbortController (0.8 KB each) for an agent that never asks for its signal', async () => {
    await beat(7, Date.now());
    const check = createHeartbeatCheck({ maxAgeMs: 60_000 });
    expect(await abortControllersMade((options) => check(cellDir, 'forge', options), 20)).toBe(0);
  });

  it('refuses a bad rule when it is made, not on each read', () => {
    expect(() => createHeartbeatCheck({ maxAgeMs: -1 })).toThrow(ProbeError);
  });
});
