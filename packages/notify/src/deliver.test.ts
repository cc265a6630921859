import { describe, expect, it } from 'vitest';
import { captureLogger } from '../test/helpers.js';
import { deliverWithRetry, runWithDeadline } from './deliver.js';
import { NotifyError } from './errors.js';

describe('runWithDeadline', () => {
  it('cuts an attempt that ignores its signal and aborts that signal', async () => {
    let seen: AbortSignal | undefined;
    const attempt = (signal: AbortSignal) => {
      seen = signal;
      return new Promise<never>(() => undefined);
    };
    await expect(runWithDeadline(attempt, { timeoutMs: 30, what: 'hang' })).rejects.toMatchObject({
      code: 'NOTIFY_TIMEOUT',
      retryable: true,
    });
    expect(seen?.aborted).toBe(true);
  });

  it('stops at once when the outer signal aborts', async () => {
    const controller = new AbortController();
    const running = runWithDeadline(() => new Promise<never>(() => undefined), {
      timeoutMs: 60_000,
      what: 'x',
      signal: controller.signal,
    });
    controller.abort();
    await expect(running).rejects.toMatchObject({ code: 'NOTIFY_CLOSED' });
  });
});

describe('deliverWithRetry', () => {
  it('retries transient failures only', async () => {
    let calls = 0;
    const logger = captureLogger();
    const result = await deliverWithRetry(
      async () => {
        calls += 1;
        if (calls < 3) throw new NotifyError('NOTIFY_SEND_FAILED', 'busy', { retryable: true });
        return 'done';
      },
      { what: 'op', logger, retries: 5, minDelayMs: 1, maxDelayMs: 5 },
    );
    expect([result, calls]).toEqual(['done', 3]);
    expect(logger.lines.map((line) => line.level)).toEqual(['warn', 'warn']);

    calls = 0;
    await expect(
      deliverWithRetry(
        async () => {
          calls += 1;
          throw new NotifyError('NOTIFY_UNAUTHORIZED', 'bad token');
        },
        { what: 'op', logger, retries: 5, minDelayMs: 1 },
      ),
    ).rejects.toMatchObject({ code: 'NOTIFY_UNAUTHORIZED' });
    expect(calls).toBe(1);
  });

  it('waits out rate limits without using up retries', async () => {
    let calls = 0;
    await deliverWithRetry(
      async () => {
        calls += 1;
        if (calls <= 3)
          throw new NotifyError('NOTIFY_RATE_LIMITED', 'slow down', {
            retryable: true,
            retryAfterMs: 5,
          });
      },
      { what: 'op', logger: captureLogger(), retries: 1, minDelayMs: 1 },
    );
    expect(calls).toBe(4); // three rate limits waited out, and the one retry still unused
  });

  it('honours a retry-after hint', async () => {
    const started = Date.now();
    let calls = 0;
    await deliverWithRetry(
      async () => {
        calls += 1;
        if (calls === 1)
          throw new NotifyError('NOTIFY_RATE_LIMITED', 'slow down', {
            retryable: true,
            retryAfterMs: 200,
          });
      },
      { what: 'op', logger: captureLogger(), retries: 1, minDelayMs: 1, maxDelayMs: 1000 },
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });
});
