import { describe, expect, it } from 'vitest';
import { DeathReportSchema, formatDuration, renderPostMortem } from './post-mortem.js';

describe('renderPostMortem', () => {
  it('keeps the newest log lines under the size limit and fences them safely', () => {
    const report = DeathReportSchema.parse({
      agent: 'scout',
      mission: 'survey',
      reason: 'exit 137',
      dead_since: '2026-11-22T10:00:00.000Z',
      log_lines: Array.from({ length: 5000 }, (_, index) => `line ${index} ${'x'.repeat(100)}`),
    });
    const body = renderPostMortem(report, {
      now: new Date('2026-11-22T10:00:30.000Z'),
      maxLogLines: 5000,
    });
    expect(body.length).toBeLessThan(61_000);
    expect(body).toContain('line 4999');
    expect(body).not.toContain('line 0 ');
    expect(body).toContain('**Dead for:** 30 s');
    expect(body).toContain('_No last known good snapshot to compare with._');
    expect(body.startsWith('<!-- pit:death agent=scout since=2026-11-22T10:00:00.000Z -->')).toBe(
      true,
    );
  });

  it('refuses a report with a bad agent name, naming the field', () => {
    const parsed = DeathReportSchema.safeParse({
      agent: '../x',
      mission: 'm',
      reason: 'r',
      dead_since: new Date(),
    });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['agent']);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0 s'],
    [59_000, '59 s'],
    [61_000, '1 min 1 s'],
    [3_600_000, '1 h 0 min'],
    [3 * 86_400_000 + 3_600_000, '3 d 1 h'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
