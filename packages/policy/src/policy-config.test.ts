import { describe, expect, it } from 'vitest';
import { BUILTIN_POLICY, ModeSchema, PolicyConfigSchema } from './policy-config.js';

describe('ModeSchema', () => {
  it.each([
    ['auto', 'auto'],
    ['yes', 'auto'],
    ['YES', 'auto'],
    [true, 'auto'],
    ['ask', 'ask'],
    ['never', 'never'],
    ['no', 'never'],
    [' No ', 'never'],
    [false, 'never'],
    ['substitute', 'substitute'],
  ])('normalises %j to %j', (input, mode) => {
    expect(ModeSchema.parse(input)).toBe(mode);
  });

  it('names every accepted mode when it refuses one', () => {
    expect(ModeSchema.safeParse('sometimes').error?.issues[0]?.message).toBe(
      'must be one of auto (or yes), ask, never (or no), substitute (got "sometimes")',
    );
    expect(ModeSchema.safeParse(3).error?.issues[0]?.message).toBe(
      'must be one of auto (or yes), ask, never (or no), substitute',
    );
  });
});

describe('PolicyConfigSchema', () => {
  it('accepts an empty section and fills in the fleet brake and exit-code defaults', () => {
    expect(PolicyConfigSchema.parse({})).toEqual({
      defaults: {},
      missions: {},
      agents: {},
      fleet_brake: {
        enabled: true,
        max_deaths: 5,
        max_percent: 50,
        min_agents: 4,
        window: 120_000,
        hold: 1_800_000,
        restart_interval: 10_000,
      },
      classify: { exit_codes: { '75': 'rate_limited', '77': 'auth_failed', '78': 'bad_config' } },
    });
  });

  it('parses durations to ms and keeps every layer key optional', () => {
    const config = PolicyConfigSchema.parse({
      defaults: { dead_after: '90s', backoff: { cap: 300 }, approval: { timeout: '1h' } },
      missions: { forge: { mode: 'yes' } },
      agents: { ezra: { mission: 'archive', on_failure: { stuck: 'record_only' } } },
      fleet_brake: { window: '5m' },
    });
    expect(config.defaults).toEqual({
      dead_after: 90_000,
      backoff: { cap: 300_000 },
      approval: { timeout: 3_600_000 },
    });
    expect(config.missions.forge).toEqual({ mode: 'auto' });
    expect(config.agents.ezra).toEqual({
      mission: 'archive',
      on_failure: { stuck: 'record_only' },
    });
    expect(config.fleet_brake.window).toBe(300_000);
  });

  it('refuses unknown keys, bad values and bad names, each at its path', () => {
    const result = PolicyConfigSchema.safeParse({
      defaults: { dead_afer: '1m', backoff: { factor: 0.5, jitter: 2 } },
      agents: {
        'Not-A-Name': {},
        bezalel: { on_failure: { crashed: 'pray' }, substitutes: ['../etc'] },
      },
      extra: true,
    });
    const paths = result.error?.issues.map((issue) => issue.path.join('.'));
    expect(paths).toEqual(
      expect.arrayContaining([
        'defaults',
        'defaults.backoff.factor',
        'defaults.backoff.jitter',
        'agents.Not-A-Name',
        'agents.bezalel.on_failure.crashed',
        'agents.bezalel.substitutes.0',
        '',
      ]),
    );
  });

  it('ships built-in defaults with the failure actions an operator expects', () => {
    expect(BUILTIN_POLICY.on_failure).toEqual({
      rate_limited: 'wait',
      auth_failed: 'ask',
      bad_config: 'rollback_and_restart',
      crashed: 'restart',
      stuck: 'restart',
      unknown: 'restart',
    });
    expect(Object.isFrozen(BUILTIN_POLICY)).toBe(true);
  });
});
