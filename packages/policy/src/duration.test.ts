import { describe, expect, it } from 'vitest';
import { DurationSchema, formatDuration, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1.5h', 5_400_000],
    ['2d', 172_800_000],
    [' 10 s ', 10_000],
  ])('reads %j as %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '5', '5 parsecs', '-5s', '1e3s', 's'])('refuses %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('DurationSchema', () => {
  it('takes a bare number as seconds', () => {
    expect(DurationSchema.parse(90)).toBe(90_000);
    expect(DurationSchema.parse(0.25)).toBe(250);
  });

  it('says what it expected', () => {
    const result = DurationSchema.safeParse('soon');
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toMatch(
      /must be a duration such as "500ms", "30s".*got "soon"/,
    );
    expect(DurationSchema.safeParse(-1).success).toBe(false);
    expect(DurationSchema.safeParse(true).error?.issues[0]?.message).toMatch(/must be a duration/);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [-5, '0s'],
    [250, '250ms'],
    [45_000, '45s'],
    [150_000, '2m30s'],
    [3_900_000, '1h5m'],
    [90_000_000, '1d1h'],
  ])('renders %i ms as %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
