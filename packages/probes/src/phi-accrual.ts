import { z } from 'zod';
import { formatIssues } from '@pit/cell-spec';
import { ProbeError } from './errors.js';

/** Options of {@link createPhiAccrualDetector}; the defaults are Akka's (threshold 8 is also Cassandra's). */
export interface PhiAccrualOptions {
  /** Suspect the agent once phi reaches this; 8 means a ~1e-8 chance that a heartbeat is still coming. @default 8 */
  threshold?: number;
  /** How many recent intervals the estimate uses. @default 1000 */
  maxSampleSize?: number;
  /** A floor for the standard deviation, so a very regular stream does not make phi jump on tiny delays. ms. @default 100 */
  minStdDeviationMs?: number;
  /** A pause that is tolerated on top of the mean interval (GC, a long tool call). ms. @default 0 */
  acceptableHeartbeatPauseMs?: number;
  /** The interval assumed until real ones are seen (the history starts as mean ± mean/4). ms. @default 1000 */
  firstHeartbeatEstimateMs?: number;
}

/** The interval statistics a detector currently holds. */
export interface PhiAccrualStats {
  /** Intervals in the window. */
  samples: number;
  /** Mean interval, ms. */
  meanMs: number;
  /** Standard deviation of the intervals, ms (before the `minStdDeviationMs` floor). */
  stdDeviationMs: number;
}

/** A phi-accrual failure detector for one heartbeat stream. All times are ms since the Unix epoch, passed in. */
export interface PhiAccrualDetector {
  /** The configured threshold. */
  readonly threshold: number;
  /** The last heartbeat's time, or `undefined` before the first. */
  readonly lastHeartbeatAt: number | undefined;
  /**
   * Records a heartbeat that arrived at `at`. Heartbeats at or before the last one are
   * ignored. An interval that ended while the stream was suspected is not learned (as in Akka).
   */
  heartbeat(at: number): void;
  /** The suspicion level at `at`: 0 before the first heartbeat, growing while none arrives. */
  phi(at: number): number;
  /** `phi(at) < threshold`. */
  isAvailable(at: number): boolean;
  /**
   * The earliest time at which phi reaches `threshold` if no heartbeat arrives (ms since the
   * epoch, rounded up), so a timer can fire exactly then; `undefined` before the first heartbeat.
   */
  suspectAt(threshold?: number): number | undefined;
  /** The interval statistics. */
  stats(): PhiAccrualStats;
  /** Forgets every heartbeat. */
  reset(): void;
}

const PhiAccrualOptionsSchema = z.strictObject({
  threshold: z.number().positive().optional(),
  maxSampleSize: z.number().int().positive().optional(),
  minStdDeviationMs: z.number().positive().optional(),
  acceptableHeartbeatPauseMs: z.number().nonnegative().optional(),
  firstHeartbeatEstimateMs: z.number().positive().optional(),
});

/**
 * Creates a phi-accrual failure detector (Hayashibara et al., 2004, with Akka's logistic
 * approximation of the normal CDF): instead of a fixed age threshold it learns the stream's
 * interval distribution and reports how unlikely the current silence is, so irregular
 * heartbeats are judged by their own history.
 * @throws {ProbeError} PROBE_INVALID_OPTIONS.
 * @example
 * const detector = createPhiAccrualDetector({ acceptableHeartbeatPauseMs: 3000 });
 * detector.heartbeat(heartbeat.timestamp * 1000);
 * setTimeout(check, detector.suspectAt()! - Date.now());
 */
export function createPhiAccrualDetector(options: PhiAccrualOptions = {}): PhiAccrualDetector {
  const parsed = PhiAccrualOptionsSchema.safeParse(options);
  if (!parsed.success)
    throw new ProbeError(
      'PROBE_INVALID_OPTIONS',
      `phi-accrual options: ${formatIssues(parsed.error)}`,
    );
  const threshold = options.threshold ?? 8;
  const maxSampleSize = options.maxSampleSize ?? 1000;
  const minStdDeviation = options.minStdDeviationMs ?? 100;
  const acceptablePause = options.acceptableHeartbeatPauseMs ?? 0;
  const firstEstimate = options.firstHeartbeatEstimateMs ?? 1000;

  // A ring of intervals with running sums.
  const intervals = new Float64Array(maxSampleSize);
  let count = 0;
  let head = 0;
  let sum = 0;
  let squaredSum = 0;
  let last: number | undefined;

  const add = (interval: number): void => {
    if (count === maxSampleSize) {
      const dropped = intervals[head] as number;
      sum -= dropped;
      squaredSum -= dropped * dropped;
    } else {
      count += 1;
    }
    intervals[head] = interval;
    head = (head + 1) % maxSampleSize;
    sum += interval;
    squaredSum += interval * interval;
  };

  const stats = (): PhiAccrualStats => {
    if (count === 0) return { samples: 0, meanMs: 0, stdDeviationMs: 0 };
    const mean = sum / count;
    const variance = Math.max(0, squaredSum / count - mean * mean);
    return { samples: count, meanMs: mean, stdDeviationMs: Math.sqrt(variance) };
  };

  const phiOf = (elapsed: number): number => {
    const { meanMs, stdDeviationMs } = stats();
    return phiFor(elapsed, meanMs + acceptablePause, Math.max(stdDeviationMs, minStdDeviation));
  };

  const phi = (at: number): number => (last === undefined ? 0 : phiOf(Math.max(0, at - last)));

  const reset = (): void => {
    count = 0;
    head = 0;
    sum = 0;
    squaredSum = 0;
    last = undefined;
  };

  return {
    threshold,
    get lastHeartbeatAt() {
      return last;
    },
    heartbeat(at) {
      if (last === undefined) {
        // Akka's bootstrap: two intervals at mean ± mean/4.
        const deviation = firstEstimate / 4;
        add(firstEstimate - deviation);
        add(firstEstimate + deviation);
        last = at;
        return;
      }
      if (at <= last) return;
      if (phi(at) < threshold) add(at - last);
      last = at;
    },
    phi,
    isAvailable: (at) => phi(at) < threshold,
    suspectAt(level = threshold) {
      if (last === undefined) return undefined;
      let high = Math.max(1, stats().meanMs + acceptablePause);
      for (let i = 0; i < 64 && phiOf(high) < level; i += 1) high *= 2;
      let low = 0;
      while (high - low > 0.5) {
        const middle = (low + high) / 2;
        if (phiOf(middle) >= level) high = middle;
        else low = middle;
      }
      return last + Math.ceil(high);
    },
    stats,
    reset,
  };
}

/** phi for an elapsed time given the (adjusted) mean and standard deviation: Akka's logistic approximation of -log10(1 - CDF). */
function phiFor(elapsed: number, mean: number, stdDeviation: number): number {
  const y = (elapsed - mean) / stdDeviation;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  return elapsed > mean ? -Math.log10(e / (1 + e)) : -Math.log10(1 - 1 / (1 + e));
}
