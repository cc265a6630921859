import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ProbeError } from './errors.js';
import { createPhiAccrualDetector } from './phi-accrual.js';

/** A real agent's heartbeats through normal work, a 20 s hang (SIGSTOP) and a kill; see record-heartbeat-series.ts. */
const SeriesSchema = z.strictObject({
  description: z.string(),
  recordedWith: z.string(),
  startedAt: z.number(),
  stoppedAt: z.number(),
  resumedAt: z.number(),
  killedAt: z.number(),
  endedAt: z.number(),
  beats: z
    .array(z.strictObject({ cycle: z.number().int(), timestamp: z.number(), seenAt: z.number() }))
    .min(100),
});
const series = SeriesSchema.parse(
  JSON.parse(
    readFileSync(new URL('./__fixtures__/heartbeat-series.json', import.meta.url), 'utf8'),
  ),
);
const beatTimes = series.beats.map((beat) => beat.timestamp * 1000);
const normal = beatTimes.filter((at) => at < series.stoppedAt);
const lastBeforeHang = normal.at(-1) as number;
const firstAfterHang = beatTimes.find((at) => at > series.stoppedAt) as number;
const lastBeat = beatTimes.at(-1) as number;
const longestNormalInterval = Math.max(
  ...normal.slice(1).map((at, index) => at - (normal[index] as number)),
);

describe('createPhiAccrualDetector against a recorded heartbeat series', () => {
  it('never suspects the agent while it works normally (Akka defaults: threshold 8)', () => {
    const detector = createPhiAccrualDetector();
    let highest = 0;
    for (const beat of series.beats.filter((entry) => entry.timestamp * 1000 < series.stoppedAt)) {
      // Judge at the moment the observer saw each heartbeat arrive, just before feeding it.
      highest = Math.max(highest, detector.phi(beat.seenAt));
      detector.heartbeat(beat.timestamp * 1000);
    }
    expect(highest).toBeLessThan(detector.threshold);
    expect(normal.length).toBeGreaterThan(100);
  });

  it('suspects the hung agent soon after its last heartbeat, long before it resumes', () => {
    const detector = createPhiAccrualDetector();
    for (const at of normal) detector.heartbeat(at);
    const suspectAt = detector.suspectAt() as number;
    // Later than any normal interval (no false alarm) …
    expect(suspectAt - lastBeforeHang).toBeGreaterThan(longestNormalInterval);
    // … but within about two mean intervals (~1.1 s here), where a fixed threshold would need a guess.
    expect(suspectAt - lastBeforeHang).toBeLessThan(3 * detector.stats().meanMs);
    expect(detector.isAvailable(suspectAt - 1)).toBe(true);
    expect(detector.isAvailable(suspectAt)).toBe(false);
    expect(detector.phi(series.resumedAt)).toBeGreaterThan(100);
    expect(firstAfterHang - lastBeforeHang).toBeGreaterThan(15_000);
  });

  it('does not learn the hang as a normal interval', () => {
    const detector = createPhiAccrualDetector();
    for (const at of normal) detector.heartbeat(at);
    const before = detector.stats();
    detector.heartbeat(firstAfterHang);
    expect(detector.stats()).toEqual(before);
    expect(detector.isAvailable(firstAfterHang)).toBe(true);
  });

  it('suspects the killed agent within about two intervals of its last heartbeat', () => {
    const detector = createPhiAccrualDetector();
    for (const at of beatTimes) detector.heartbeat(at);
    const suspectAt = detector.suspectAt() as number;
    expect(suspectAt).toBeGreaterThan(series.killedAt - 1_000);
    expect(suspectAt - lastBeat).toBeLessThan(3 * detector.stats().meanMs);
    expect(detector.isAvailable(series.endedAt)).toBe(false);
  });

  it('tolerates an acceptable pause on top of the learned distribution', () => {
    const plain = createPhiAccrualDetector();
    const patient = createPhiAccrualDetector({ acceptableHeartbeatPauseMs: 3_000 });
    for (const at of normal) {
      plain.heartbeat(at);
      patient.heartbeat(at);
    }
    expect((patient.suspectAt() as number) - (plain.suspectAt() as number)).toBeGreaterThanOrEqual(
      2_999,
    );
    expect((patient.suspectAt() as number) - (plain.suspectAt() as number)).toBeLessThanOrEqual(
      3_001,
    );
  });
});

describe('createPhiAccrualDetector', () => {
  it('is 0 before the first heartbeat and grows while none arrives', () => {
    const detector = createPhiAccrualDetector();
    expect(detector.phi(1_000)).toBe(0);
    expect(detector.suspectAt()).toBeUndefined();
    for (let at = 0; at <= 10_000; at += 1_000) detector.heartbeat(at);
    const levels = [10_500, 11_000, 11_500, 12_000, 13_000].map((at) => detector.phi(at));
    expect(levels).toEqual([...levels].sort((a, b) => a - b));
    expect(detector.phi(10_500)).toBeLessThan(1);
    expect(detector.phi(13_000)).toBeGreaterThan(8);
  });

  it('uses minStdDeviationMs as a floor for a perfectly regular stream', () => {
    const strict = createPhiAccrualDetector({ minStdDeviationMs: 10, maxSampleSize: 10 });
    const lenient = createPhiAccrualDetector({ minStdDeviationMs: 500, maxSampleSize: 10 });
    for (let at = 0; at <= 20_000; at += 1_000) {
      strict.heartbeat(at);
      lenient.heartbeat(at);
    }
    expect(strict.stats().stdDeviationMs).toBe(0);
    expect(strict.suspectAt() as number).toBeLessThan(lenient.suspectAt() as number);
  });

  it('keeps only maxSampleSize intervals', () => {
    const detector = createPhiAccrualDetector({ maxSampleSize: 5 });
    for (let at = 0; at <= 100_000; at += 2_000) detector.heartbeat(at);
    expect(detector.stats()).toEqual({ samples: 5, meanMs: 2_000, stdDeviationMs: 0 });
  });

  it('ignores a heartbeat at or before the last one', () => {
    const detector = createPhiAccrualDetector();
    detector.heartbeat(5_000);
    detector.heartbeat(4_000);
    detector.heartbeat(5_000);
    expect(detector.lastHeartbeatAt).toBe(5_000);
    detector.reset();
    expect(detector.lastHeartbeatAt).toBeUndefined();
  });

  it('refuses bad options with PROBE_INVALID_OPTIONS', () => {
    expect(() => createPhiAccrualDetector({ threshold: 0 })).toThrow(ProbeError);
    expect(() => createPhiAccrualDetector({ threshold: -1 })).toThrow(/threshold/);
    expect(() => createPhiAccrualDetector({ windowSize: 3 } as never)).toThrow(/windowSize/);
  });
});
