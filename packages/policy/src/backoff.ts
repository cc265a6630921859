import type { HealthyPeriod } from './decide-input.js';
import { PolicyError } from './errors.js';
import type { ResolvedLayer } from './policy-config.js';

/** Backoff settings (durations in ms), as in a resolved policy's `backoff`. */
export type BackoffSettings = ResolvedLayer['backoff'];

/** Options of {@link nextBackoff}. */
export interface NextBackoffOptions {
  /**
   * Restarts already made since the last stable period. The first restart (0 made) is immediate;
   * before the second the delay is `initial`, then it grows by `factor` up to `cap`.
   */
  attempt: number;
  /** The backoff settings (ms). */
  backoff: Pick<BackoffSettings, 'initial' | 'factor' | 'cap' | 'jitter'>;
  /** Seed of the jitter: the same seed and attempt always give the same delay. @default 0 */
  seed?: number | string;
}

/**
 * The delay before the next restart (ms): `min(cap, initial × factor^(attempt−1))`, of which a
 * `jitter` fraction is taken off by a pseudo-random amount derived from `seed` and `attempt`
 * (deterministic: no `Math.random`). Jitter only ever shortens a delay, so it never exceeds `cap`.
 * @throws {PolicyError} POLICY_BAD_INPUT when `attempt` is negative or not an integer.
 * @example
 * nextBackoff({ attempt: 3, backoff: { initial: 10_000, factor: 2, cap: 300_000, jitter: 0 } }); // 40_000
 */
export function nextBackoff(options: NextBackoffOptions): number {
  const { attempt, backoff } = options;
  if (!Number.isInteger(attempt) || attempt < 0) {
    throw new PolicyError(
      'POLICY_BAD_INPUT',
      `nextBackoff: attempt must be a non-negative integer (got ${String(attempt)})`,
    );
  }
  if (attempt === 0) return 0;
  const base = Math.min(backoff.cap, backoff.initial * Math.pow(backoff.factor, attempt - 1));
  if (backoff.jitter <= 0) return Math.round(base);
  const unit = seededUnit(options.seed ?? 0, attempt);
  return Math.round(base * (1 - backoff.jitter * unit));
}

/** Where an agent stands in its backoff: restarts since its latest stable period. */
export interface BackoffState {
  /** Restarts since the latest stable period (0: the next restart is the first, and immediate). */
  attempt: number;
  /** When the latest stable period made the backoff reset (ms since epoch), if ever. */
  reset_at?: number;
  /** The latest restart (ms since epoch), if any. */
  last_restart?: number;
}

/**
 * Counts the restarts since the agent was last stable, i.e. healthy for `reset_after_stable`
 * without a break (as Kubernetes resets CrashLoopBackOff after 10 minutes of running).
 * @param options.restarts restart times (ms since epoch).
 * @param options.healthy healthy stretches; an open one (`to` absent) lasts until `now`.
 * @param options.reset_after_stable how long a stretch must last to reset the backoff (ms).
 */
export function backoffState(options: {
  restarts?: readonly number[];
  healthy?: readonly HealthyPeriod[];
  now: number;
  reset_after_stable: number;
}): BackoffState {
  let resetAt: number | undefined;
  for (const period of options.healthy ?? []) {
    const end = Math.min(period.to ?? options.now, options.now);
    if (end - period.from >= options.reset_after_stable) {
      const point = period.from + options.reset_after_stable;
      if (resetAt === undefined || point > resetAt) resetAt = point;
    }
  }
  let attempt = 0;
  let lastRestart: number | undefined;
  for (const at of options.restarts ?? []) {
    if (at > options.now) continue;
    if (lastRestart === undefined || at > lastRestart) lastRestart = at;
    if (resetAt === undefined || at > resetAt) attempt += 1;
  }
  const state: BackoffState = { attempt };
  if (resetAt !== undefined) state.reset_at = resetAt;
  if (lastRestart !== undefined) state.last_restart = lastRestart;
  return state;
}

/** A number in [0, 1) derived from a seed and a counter (FNV-1a, then murmur3's finaliser). */
export function seededUnit(seed: number | string, counter: number): number {
  const text = `${String(seed)}#${counter}`;
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) / 4_294_967_296;
}
