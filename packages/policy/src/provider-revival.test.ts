import { describe, expect, it } from 'vitest';
import {
  classifyProviderError,
  decideProviderRevival,
  providerWaitDelay,
  shouldSwitchBack,
  type ProviderRevivalInput,
  type ProviderStatus,
} from './provider-revival.js';

const backoff = { initial: 5_000, factor: 2, cap: 60_000 };

function input(
  statuses: Record<string, ProviderStatus>,
  overrides: Partial<ProviderRevivalInput> = {},
): ProviderRevivalInput {
  return {
    primary: 'anthropic',
    fallbacks: ['openai'],
    current: 'anthropic',
    providers: Object.fromEntries(
      Object.entries(statuses).map(([name, status]) => [name, { status, since: 0 }]),
    ),
    canSwitch: () => true,
    waits: 0,
    backoff,
    now: 1_000_000,
    ...overrides,
  };
}

describe('decideProviderRevival', () => {
  it('waits for a dead primary with no healthy fallback instead of restarting into the outage', () => {
    const decision = decideProviderRevival(input({ anthropic: 'dead', openai: 'dead' }));
    expect(decision).toMatchObject({ action: 'wait', provider: 'anthropic', status: 'dead' });
    expect(decision.action === 'wait' && decision.until).toBe(1_000_000 + 5_000);
  });

  it('waits longer each time, never beyond the cap', () => {
    const untils = [0, 1, 2, 3, 10].map((waits) => {
      const decision = decideProviderRevival(input({ anthropic: 'dead' }, { waits }));
      return decision.action === 'wait' ? decision.until - 1_000_000 : -1;
    });
    expect(untils).toEqual([5_000, 10_000, 20_000, 40_000, 60_000]);
  });

  it('switches to the first healthy fallback the config can select', () => {
    const decision = decideProviderRevival(
      input(
        { anthropic: 'dead', openai: 'healthy', mistral: 'healthy' },
        { fallbacks: ['openai', 'mistral'], canSwitch: (provider) => provider !== 'openai' },
      ),
    );
    expect(decision).toMatchObject({
      action: 'switch',
      from: 'anthropic',
      to: 'mistral',
      direction: 'fallback',
    });
  });

  it('does not switch to a degraded or unknown fallback', () => {
    for (const status of ['degraded', 'unknown'] as const)
      expect(decideProviderRevival(input({ anthropic: 'dead', openai: status })).action).toBe(
        'wait',
      );
  });

  it('revives normally when the primary is healthy, degraded or unknown', () => {
    for (const status of ['healthy', 'degraded', 'unknown'] as const)
      expect(decideProviderRevival(input({ anthropic: status })).action).toBe('proceed');
  });

  it('treats an outage the agent reported as dead while the matrix knows nothing', () => {
    expect(
      decideProviderRevival(input({ openai: 'healthy' }, { evidence: 'outage' })),
    ).toMatchObject({ action: 'switch', to: 'openai' });
  });

  it('does not blame the provider for an authentication error', () => {
    expect(
      decideProviderRevival(input({ anthropic: 'dead', openai: 'healthy' }, { evidence: 'auth' }))
        .action,
    ).toBe('proceed');
  });

  it('waits once after a rate limit, then proceeds', () => {
    expect(
      decideProviderRevival(input({ anthropic: 'healthy' }, { evidence: 'rate_limit' })),
    ).toMatchObject({ action: 'wait', status: 'degraded' });
    expect(
      decideProviderRevival(input({ anthropic: 'healthy' }, { evidence: 'rate_limit', waits: 1 }))
        .action,
    ).toBe('proceed');
  });

  it('switches a dead agent on a fallback back to its healthy primary', () => {
    expect(
      decideProviderRevival(
        input({ anthropic: 'healthy', openai: 'healthy' }, { current: 'openai' }),
      ),
    ).toMatchObject({ action: 'switch', to: 'anthropic', direction: 'back' });
  });

  it('goes back to the primary when the fallback it is on dies too', () => {
    expect(
      decideProviderRevival(input({ anthropic: 'healthy', openai: 'dead' }, { current: 'openai' })),
    ).toMatchObject({ action: 'switch', to: 'anthropic', direction: 'back' });
  });
});

describe('shouldSwitchBack', () => {
  const base = { primary: 'anthropic', current: 'openai', now: 100_000 };
  it('switches back once the primary has been healthy long enough', () => {
    expect(
      shouldSwitchBack({
        ...base,
        after: 30_000,
        primaryHealth: { status: 'healthy', since: 70_000 },
      }),
    ).toBe(true);
    expect(
      shouldSwitchBack({
        ...base,
        after: 30_000,
        primaryHealth: { status: 'healthy', since: 80_000 },
      }),
    ).toBe(false);
  });
  it('never switches back when not configured, or to an unhealthy primary', () => {
    expect(
      shouldSwitchBack({
        ...base,
        after: undefined,
        primaryHealth: { status: 'healthy', since: 0 },
      }),
    ).toBe(false);
    expect(
      shouldSwitchBack({ ...base, after: 0, primaryHealth: { status: 'degraded', since: 0 } }),
    ).toBe(false);
  });
});

describe('providerWaitDelay', () => {
  it('is bounded by the cap', () => {
    expect(providerWaitDelay(backoff, 50)).toBe(60_000);
  });
});

describe('classifyProviderError', () => {
  it.each([
    ['HTTP 529 overloaded_error', 'outage'],
    ['503 Service Unavailable', 'outage'],
    ['connect ECONNREFUSED 127.0.0.1:443', 'outage'],
    ['429 Too Many Requests', 'rate_limit'],
    ['rate_limit_error: quota exceeded', 'rate_limit'],
    ['401 invalid x-api-key', 'auth'],
    ['invalid api key', 'auth'],
    ['the model refused', 'unknown'],
    [undefined, 'unknown'],
  ] as const)('classifies %s as %s', (message, expected) => {
    expect(classifyProviderError(message)).toBe(expected);
  });
});
