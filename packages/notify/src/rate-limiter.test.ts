import { describe, expect, it } from 'vitest';
import { createRateLimiter } from './rate-limiter.js';

describe('createRateLimiter', () => {
  it('allows a burst of max, then one token per interval/max', () => {
    let now = 0;
    const limiter = createRateLimiter({ max: 3, intervalMs: 3000 }, () => now);
    expect([limiter.tryTake(), limiter.tryTake(), limiter.tryTake(), limiter.tryTake()]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(limiter.waitTime()).toBe(1000);
    now = 999;
    expect(limiter.tryTake()).toBe(false);
    now = 1000;
    expect(limiter.tryTake()).toBe(true);
    now = 100_000;
    expect([limiter.tryTake(), limiter.tryTake(), limiter.tryTake(), limiter.tryTake()]).toEqual([
      true,
      true,
      true,
      false,
    ]);
  });

  it('refuses a rate that is not positive', () => {
    expect(() => createRateLimiter({ max: 0, intervalMs: 1000 })).toThrow(/max must be/);
    expect(() => createRateLimiter({ max: 1, intervalMs: 0 })).toThrow(/intervalMs > 0/);
  });

  it('stops waiting when its signal aborts', async () => {
    const limiter = createRateLimiter({ max: 1, intervalMs: 60_000 });
    await limiter.take();
    const controller = new AbortController();
    const waiting = limiter.take(controller.signal);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'NOTIFY_CLOSED' });
  });
});
