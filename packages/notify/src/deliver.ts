import pRetry from 'p-retry';
import { NotifyError, isRetryable } from './errors.js';
import { describeError, type Logger } from './logger.js';

/** How a channel operation is retried. */
export interface RetryOptions {
  /** Further attempts after the first one, for transient failures only. @default 3 */
  retries?: number;
  /** Delay before the first retry, doubled each time (ms). @default 250 */
  minDelayMs?: number;
  /** Upper bound of one delay (ms). @default 10000 */
  maxDelayMs?: number;
  /** Deadline of one attempt (ms); a hung attempt is aborted and counts as a transient failure. @default 15000 */
  attemptTimeoutMs?: number;
  /**
   * Upper bound of the whole delivery, retries and waits included (ms). Rate-limit answers
   * (429 with a retry-after) do not use up `retries`; this bounds them. @default 600000
   */
  maxRetryTimeMs?: number;
}

/** Options of {@link deliverWithRetry}. */
export interface DeliverOptions extends RetryOptions {
  /** What is being done, for logs and error messages (`telegram sendMessage`). */
  what: string;
  /** Aborts the whole delivery (no further attempts). */
  signal?: AbortSignal;
  logger: Logger;
}

/**
 * Runs `attempt` with a per-attempt deadline, retrying transient failures (errors with
 * `retryable: true`) with exponential backoff via p-retry. A rate-limit answer is waited out
 * for its `retryAfterMs` (at most 5 min) without using up a retry.
 * @throws {NotifyError} the last failure; NOTIFY_TIMEOUT when the last attempt hung; NOTIFY_CLOSED when `signal` aborted.
 */
export async function deliverWithRetry<T>(
  attempt: (signal: AbortSignal) => Promise<T>,
  options: DeliverOptions,
): Promise<T> {
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 15_000;
  const maxDelayMs = options.maxDelayMs ?? 10_000;
  const maxRetryTimeMs = options.maxRetryTimeMs ?? 600_000;
  const outer = options.signal;
  const rateLimited = (error: unknown): boolean =>
    error instanceof NotifyError && error.code === 'NOTIFY_RATE_LIMITED';
  const run = async (): Promise<T> => {
    if (outer?.aborted) throw new NotifyError('NOTIFY_CLOSED', `${options.what}: cancelled`);
    return runWithDeadline(attempt, {
      timeoutMs: attemptTimeoutMs,
      what: options.what,
      signal: outer,
    });
  };
  return pRetry(run, {
    retries: options.retries ?? 3,
    minTimeout: options.minDelayMs ?? 250,
    maxTimeout: maxDelayMs,
    factor: 2,
    randomize: true,
    signal: outer,
    unref: true,
    maxRetryTime: maxRetryTimeMs,
    shouldRetry: ({ error }) => isRetryable(error) && !outer?.aborted,
    // A service that says "slow down" is obeyed, not counted as a failure.
    shouldConsumeRetry: ({ error }) => !rateLimited(error),
    onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
      const willRetry = isRetryable(error) && retriesLeft > 0 && !outer?.aborted;
      options.logger[outer?.aborted ? 'debug' : willRetry ? 'warn' : 'error'](
        `${options.what}: attempt ${attemptNumber} failed: ${describeError(error)}`,
        {
          attempt: attemptNumber,
          retries_left: retriesLeft,
          will_retry: willRetry,
        },
      );
      const after = error instanceof NotifyError ? error.retryAfterMs : undefined;
      if (willRetry && after !== undefined && after > 0)
        await sleep(Math.min(after, maxDelayMs), outer);
    },
  });
}

/**
 * Runs one attempt with a deadline. The attempt's signal is aborted at the deadline, and the
 * returned promise settles then even if the attempt ignores its signal.
 * @throws {NotifyError} NOTIFY_TIMEOUT (retryable) at the deadline.
 */
export async function runWithDeadline<T>(
  attempt: (signal: AbortSignal) => Promise<T>,
  options: { timeoutMs: number; what: string; signal?: AbortSignal | undefined },
): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onOuterAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new NotifyError(
        'NOTIFY_TIMEOUT',
        `${options.what}: no answer within ${options.timeoutMs} ms`,
        { retryable: true },
      );
      controller.abort(error);
      reject(error);
    }, options.timeoutMs);
    timer.unref?.();
    onOuterAbort = () => {
      const error = new NotifyError('NOTIFY_CLOSED', `${options.what}: cancelled`);
      controller.abort(error);
      reject(error);
    };
    if (options.signal?.aborted) onOuterAbort();
    else options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  });
  try {
    return await Promise.race([attempt(controller.signal), stop]);
  } finally {
    clearTimeout(timer);
    if (onOuterAbort) options.signal?.removeEventListener('abort', onOuterAbort);
  }
}

/** Waits `ms`, or less if `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref?.();
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
