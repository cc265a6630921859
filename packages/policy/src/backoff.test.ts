import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffState, nextBackoff, seededUnit } from './backoff.js';
import { PolicyError } from './errors.js';

const plain = { initial: 10_000, factor: 2, cap: 300_000, jitter: 0 };

const settings = fc.record({
  initial: fc.integer({ min: 1, max: 60_000 }),
  factor: fc.double({ min: 1, max: 10, noNaN: true }),
  cap: fc.integer({ min: 60_000, max: 3_600_000 }),
  jitter: fc.double({ min: 0, max: 1, noNaN: true }),
});

describe('nextBackoff', () => {
  it('restarts at once the first time, then doubles from initial up to the cap', () => {
    expect(
      [0, 1, 2, 3, 4, 5, 6, 7, 50].map((attempt) => nextBackoff({ attempt, backoff: plain })),
    ).toEqual([0, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
  });

  it('refuses an impossible attempt', () => {
    expect(() => nextBackoff({ attempt: -1, backoff: plain })).toThrow(PolicyError);
    expect(() => nextBackoff({ attempt: 1.5, backoff: plain })).toThrow(
      /POLICY_BAD_INPUT|attempt must be a non-negative integer/,
    );
  });

  it('is monotone up to its cap without jitter, and reaches the cap (property)', () => {
    fc.assert(
      fc.property(settings, fc.integer({ min: 1, max: 200 }), (backoff, attempt) => {
        const options = { ...backoff, jitter: 0 };
        const current = nextBackoff({ attempt, backoff: options });
        const following = nextBackoff({ attempt: attempt + 1, backoff: options });
        expect(following).toBeGreaterThanOrEqual(current);
        expect(current).toBeLessThanOrEqual(options.cap);
        expect(current).toBeGreaterThanOrEqual(Math.min(options.initial, options.cap));
        if (options.factor >= 1.01)
          expect(nextBackoff({ attempt: 2_000, backoff: options })).toBe(options.cap);
      }),
    );
  });

  it('only ever shortens a delay by at most its jitter fraction, deterministically per seed (property)', () => {
    fc.assert(
      fc.property(
        settings,
        fc.integer({ min: 1, max: 200 }),
        fc.oneof(fc.integer(), fc.string()),
        (backoff, attempt, seed) => {
          const base = nextBackoff({ attempt, backoff: { ...backoff, jitter: 0 } });
          const jittered = nextBackoff({ attempt, backoff, seed });
          expect(jittered).toBeLessThanOrEqual(base);
          expect(jittered).toBeGreaterThanOrEqual(Math.floor(base * (1 - backoff.jitter)) - 1);
          expect(nextBackoff({ attempt, backoff, seed })).toBe(jittered);
        },
      ),
    );
  });

  it('spreads different seeds', () => {
    const delays = new Set(
      Array.from({ length: 50 }, (_, seed) =>
        nextBackoff({ attempt: 3, backoff: { ...plain, jitter: 0.5 }, seed }),
      ),
    );
    expect(delays.size).toBeGreaterThan(40);
  });
});

describe('seededUnit', () => {
  it('stays in [0, 1)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer(), fc.string()), fc.nat(), (seed, counter) => {
        const unit = seededUnit(seed, counter);
        expect(unit).toBeGreaterThanOrEqual(0);
        expect(unit).toBeLessThan(1);
      }),
    );
  });
});

describe('backoffState', () => {
  const now = 10_000_000;

  it('counts every restart when the agent was never stable', () => {
    expect(
      backoffState({
        restarts: [now - 50_000, now - 10_000, now - 30_000],
        now,
        reset_after_stable: 600_000,
      }),
    ).toEqual({ attempt: 3, last_restart: now - 10_000 });
  });

  it('resets after a healthy stretch of reset_after_stable', () => {
    const state = backoffState({
      restarts: [now - 2_000_000, now - 1_900_000, now - 60_000],
      healthy: [
        { from: now - 1_800_000, to: now - 100_000 }, // stable: 1,700 s ≥ 600 s
        { from: now - 50_000, to: now - 20_000 }, // too short
      ],
      now,
      reset_after_stable: 600_000,
    });
    expect(state).toEqual({ attempt: 1, reset_at: now - 1_200_000, last_restart: now - 60_000 });
  });

  it('does not reset after a short stretch', () => {
    expect(
      backoffState({
        restarts: [now - 90_000, now - 60_000],
        healthy: [{ from: now - 55_000, to: now - 5_000 }],
        now,
        reset_after_stable: 600_000,
      }).attempt,
    ).toBe(2);
  });

  it('counts an open stretch up to now, and ignores restarts in the future', () => {
    expect(
      backoffState({
        restarts: [now - 700_000, now + 5_000],
        healthy: [{ from: now - 650_000 }],
        now,
        reset_after_stable: 600_000,
      }),
    ).toEqual({
      attempt: 0,
      reset_at: now - 50_000,
      last_restart: now - 700_000,
    });
  });

  it('resets the attempt count after any stable stretch (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: now }), { maxLength: 30 }),
        fc.integer({ min: 0, max: now - 600_000 }),
        fc.integer({ min: 600_000, max: 5_000_000 }),
        (restarts, from, length) => {
          const to = Math.min(from + length, now);
          const state = backoffState({
            restarts,
            healthy: [{ from, to }],
            now,
            reset_after_stable: 600_000,
          });
          expect(state.attempt).toBe(restarts.filter((at) => at > from + 600_000).length);
          expect(state.attempt).toBeLessThanOrEqual(
            backoffState({ restarts, now, reset_after_stable: 600_000 }).attempt,
          );
        },
      ),
    );
  });
});
