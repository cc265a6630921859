import { describe, expect, it } from 'vitest';
import { createRandom } from './random.js';

describe('createRandom', () => {
  it('repeats the same sequence for the same seed, and another for another seed', () => {
    const first = createRandom(7);
    const again = createRandom(7);
    const other = createRandom(8);
    const a = Array.from({ length: 100 }, () => first());
    expect(Array.from({ length: 100 }, () => again())).toEqual(a);
    expect(Array.from({ length: 100 }, () => other())).not.toEqual(a);
  });

  it('stays within [0, 1) and spreads over it', () => {
    const random = createRandom(123);
    const values = Array.from({ length: 10_000 }, () => random());
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
  });
});
