import { NotifyError } from './errors.js';

/** A rate: at most `max` messages per `intervalMs`. */
export interface RateLimit {
  /** Messages allowed per interval (also the burst size). */
  max: number;
  /** The interval (ms). */
  intervalMs: number;
}

/** A token bucket. */
export interface RateLimiter {
  /** Takes a token now if one is available. */
  tryTake(): boolean;
  /** Milliseconds until a token is available (0 when one is). */
  waitTime(): number;
  /**
   * Resolves when a token has been taken.
   * @throws {NotifyError} NOTIFY_CLOSED when `signal` aborts first.
   */
  take(signal?: AbortSignal): Promise<void>;
}

/**
 * A token bucket holding up to `max` tokens, refilled continuously at `max / intervalMs`.
 * @throws {NotifyError} NOTIFY_INVALID_CONFIG for a non-positive rate.
 */
export function createRateLimiter(limit: RateLimit, now: () => number = Date.now): RateLimiter {
  if (!(limit.max >= 1) || !(limit.intervalMs > 0)) {
    throw new NotifyError(
      'NOTIFY_INVALID_CONFIG',
      `rate limit: max must be ≥ 1 and intervalMs > 0 (got ${limit.max} per ${limit.intervalMs} ms)`,
    );
  }
  const perMs = limit.max / limit.intervalMs;
  let tokens = limit.max;
  let last = now();
  const refill = (): void => {
    const current = now();
    tokens = Math.min(limit.max, tokens + Math.max(0, current - last) * perMs);
    last = current;
  };
  const limiter: RateLimiter = {
    tryTake() {
      refill();
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
    waitTime() {
      refill();
      return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / perMs);
    },
    async take(signal) {
      while (!limiter.tryTake()) {
        if (signal?.aborted) throw new NotifyError('NOTIFY_CLOSED', 'rate limiter: cancelled');
        await new Promise<void>((resolve, reject) => {
          const onAbort = (): void => {
            clearTimeout(timer);
            reject(new NotifyError('NOTIFY_CLOSED', 'rate limiter: cancelled'));
          };
          const timer = setTimeout(
            () => {
              signal?.removeEventListener('abort', onAbort);
              resolve();
            },
            Math.max(1, limiter.waitTime()),
          );
          signal?.addEventListener('abort', onAbort, { once: true });
        });
      }
    },
  };
  return limiter;
}
