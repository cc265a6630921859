import { describe, expect, it } from 'vitest';
import { formatAlertText, type Alert } from './alert.js';

const at = new Date('2026-11-22T10:00:00.000Z');

describe('formatAlertText', () => {
  it('renders one alert as one line', () => {
    expect(
      formatAlertText({
        alerts: [
          { kind: 'recovery', agent: 'scout', mission: 'survey', summary: 'healthy again', at },
        ],
        grouped: false,
        omitted: 0,
      }),
    ).toBe('[pit] ✅ scout (survey): healthy again');
  });

  it('renders a group with a headline and cuts it to the limit', () => {
    const alerts: Alert[] = Array.from({ length: 200 }, (_, index) => ({
      kind: 'death',
      agent: `agent-${index}`,
      summary: 'exit 1',
      at: new Date(at.getTime() + index * 10),
    }));
    const text = formatAlertText({ alerts, grouped: true, omitted: 0 }, 1000);
    expect(text.length).toBeLessThanOrEqual(1000);
    expect(text.split('\n')[0]).toBe('[pit] 200 agents died within 2 s');
    expect(text).toMatch(/… and \d+ more$/);
  });

  it('says "alerts" for a mix of kinds', () => {
    const text = formatAlertText({
      alerts: [
        { kind: 'death', agent: 'a', summary: 'x', at },
        { kind: 'recovery', agent: 'b', summary: 'y', at },
      ],
      grouped: true,
      omitted: 0,
    });
    expect(text.split('\n')[0]).toBe('[pit] 2 alerts within 0 s');
  });
});
