import { PitError } from '@pit/cell-spec';
import { describe, expect, it } from 'vitest';
import { SEED_CONTEXT, seedPolicyInput } from './__fixtures__/seed-fleet.js';
import { formatPolicyProblems, PolicyError } from './errors.js';
import { parsePolicy, validatePolicy, type PolicyContext } from './validate-policy.js';

const context: PolicyContext = SEED_CONTEXT;

function problemsOf(input: unknown, where: PolicyContext = context) {
  const result = validatePolicy(input, where);
  expect(result.ok).toBe(false);
  return result.problems.map((problem) => ({
    code: problem.code,
    path: problem.path.join('.'),
    message: problem.message,
  }));
}

describe('validatePolicy', () => {
  it('accepts the seed policy and returns it parsed', () => {
    const result = validatePolicy(seedPolicyInput(), context);
    expect(result).toMatchObject({ ok: true, problems: [] });
  });

  it('reports every problem at once, each with its path', () => {
    const problems = problemsOf({
      defaults: { mode: 'maybe', dead_afer: '1m' },
      missions: { moon: {}, forge: { approval: { channels: ['sms'] } } },
      agents: {
        ghost: {},
        bezalel: { mission: 'mars', substitutes: ['bezalel', 'casper', 'allegro', 'allegro'] },
      },
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        {
          code: 'POLICY_INVALID',
          path: 'defaults.mode',
          message: 'must be one of auto (or yes), ask, never (or no), substitute (got "maybe")',
        },
        {
          code: 'POLICY_INVALID',
          path: 'defaults.dead_afer',
          message: 'unknown key; did you mean "dead_after"?',
        },
        {
          code: 'POLICY_UNKNOWN_MISSION',
          path: 'missions.moon',
          message: 'unknown mission "moon" (known: archive, forge, sovereign-core)',
        },
        {
          code: 'POLICY_UNKNOWN_CHANNEL',
          path: 'missions.forge.approval.channels.0',
          message: 'approval channel "sms" is not configured (configured: cli, nostr, telegram)',
        },
        {
          code: 'POLICY_UNKNOWN_AGENT',
          path: 'agents.ghost',
          message: 'unknown agent "ghost" (known: allegro, bezalel, ezra, timmy)',
        },
        {
          code: 'POLICY_UNKNOWN_MISSION',
          path: 'agents.bezalel.mission',
          message: 'unknown mission "mars" (known: archive, forge, sovereign-core)',
        },
        {
          code: 'POLICY_INVALID',
          path: 'agents.bezalel.substitutes.0',
          message: 'bezalel cannot substitute for itself',
        },
        {
          code: 'POLICY_UNKNOWN_AGENT',
          path: 'agents.bezalel.substitutes.1',
          message: 'unknown agent "casper" (known: allegro, bezalel, ezra, timmy)',
        },
        {
          code: 'POLICY_INVALID',
          path: 'agents.bezalel.substitutes.3',
          message: 'allegro is listed twice',
        },
      ]),
    );
    expect(problems).toHaveLength(9);
  });

  it('lists the keys it expected when a key is far from all of them', () => {
    expect(problemsOf({ fleet_brake: { brakes: 1 } })).toEqual([
      {
        code: 'POLICY_INVALID',
        path: 'fleet_brake.brakes',
        message:
          'unknown key; expected one of: enabled, max_deaths, max_percent, min_agents, window, hold, restart_interval',
      },
    ]);
    expect(problemsOf({ missions: { forge: { backoff: { caps: '1m' } } } })).toEqual([
      {
        code: 'POLICY_INVALID',
        path: 'missions.forge.backoff.caps',
        message: 'unknown key; did you mean "cap"?',
      },
    ]);
  });

  it('refuses an explicit ask where no approval channel is configured', () => {
    const problems = problemsOf({
      missions: { archive: { mode: 'ask' } },
      agents: { allegro: { on_failure: { stuck: 'ask' } } },
    });
    expect(problems).toEqual([
      {
        code: 'POLICY_NO_APPROVAL_CHANNEL',
        path: 'missions.archive.mode',
        message:
          '"ask" needs an approval channel, but approval.channels is empty for mission archive; add one (approval.channels) or choose another action',
      },
      {
        code: 'POLICY_NO_APPROVAL_CHANNEL',
        path: 'agents.allegro.on_failure.stuck',
        message:
          '"ask" needs an approval channel, but approval.channels is empty for agent allegro; add one (approval.channels) or choose another action',
      },
    ]);
  });

  it('accepts an ask whose channel comes from a lower layer, and the built-in auth_failed → ask without any channel', () => {
    expect(
      validatePolicy(
        { defaults: { approval: { channels: ['cli'] } }, missions: { archive: { mode: 'ask' } } },
        context,
      ).ok,
    ).toBe(true);
    expect(validatePolicy({}, { agents: ['a'], missions: [], approvalChannels: [] }).ok).toBe(true);
  });

  it('refuses an ask when an override takes the channels away', () => {
    const problems = problemsOf({
      defaults: { mode: 'ask', approval: { channels: ['cli'] } },
      agents: { timmy: { approval: { channels: [] } } },
    });
    expect(problems).toEqual([
      expect.objectContaining({ code: 'POLICY_NO_APPROVAL_CHANNEL', path: 'defaults.mode' }),
    ]);
  });

  it('checks the agents of the context under their cell’s mission', () => {
    const problems = problemsOf(
      { missions: { forge: { mode: 'ask' } } },
      {
        agents: [{ name: 'bezalel', mission: 'forge' }],
        missions: ['forge'],
        approvalChannels: [],
      },
    );
    expect(problems).toEqual([
      expect.objectContaining({ code: 'POLICY_NO_APPROVAL_CHANNEL', path: 'missions.forge.mode' }),
    ]);
  });

  it('refuses a backoff cap below its initial delay where the layers meet', () => {
    expect(
      problemsOf({
        defaults: { backoff: { initial: '1m' } },
        missions: { forge: { backoff: { cap: '30s' } } },
      }),
    ).toEqual([
      {
        code: 'POLICY_INVALID',
        path: 'missions.forge.backoff.cap',
        message: 'backoff.cap (30000 ms) is below backoff.initial (60000 ms)',
      },
    ]);
  });

  it('still finds reference and channel problems in the valid parts of an invalid config', () => {
    const problems = problemsOf({
      defaults: { mode: 'ask' },
      missions: { forge: { mode: 'bogus' } },
      agents: { allegro: { substitutes: ['nobody'] } },
    });
    expect(problems.map((problem) => `${problem.code} ${problem.path}`)).toEqual(
      expect.arrayContaining([
        'POLICY_INVALID missions.forge.mode',
        'POLICY_UNKNOWN_AGENT agents.allegro.substitutes.0',
        'POLICY_NO_APPROVAL_CHANNEL defaults.mode',
      ]),
    );
  });

  it('refuses something that is not a table', () => {
    expect(problemsOf('auto')).toEqual([
      expect.objectContaining({ code: 'POLICY_INVALID', path: '' }),
    ]);
  });
});

describe('parsePolicy', () => {
  it('throws one PolicyError listing every problem', () => {
    let caught: unknown;
    try {
      parsePolicy({ missions: { moon: {} }, agents: { ghost: {} } }, context);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(PolicyError);
    expect(PitError.is(caught)).toBe(true);
    const error = caught as PolicyError;
    expect(error.code).toBe('POLICY_INVALID');
    expect(error.problems.map((problem) => problem.code)).toEqual([
      'POLICY_UNKNOWN_MISSION',
      'POLICY_UNKNOWN_AGENT',
    ]);
    expect(error.message).toBe(
      'policy: 2 problems:\npolicy.missions.moon: unknown mission "moon" (known: archive, forge, sovereign-core)\npolicy.agents.ghost: unknown agent "ghost" (known: allegro, bezalel, ezra, timmy)',
    );
  });

  it('names the section it was given', () => {
    expect(() =>
      parsePolicy({ agents: { ghost: {} } }, context, { root: 'pit.toml: policy' }),
    ).toThrow(/^pit\.toml: policy: 1 problem:\npit\.toml: policy\.agents\.ghost/);
  });
});

describe('formatPolicyProblems', () => {
  it('renders one problem per line under the root', () => {
    expect(
      formatPolicyProblems([
        { code: 'POLICY_INVALID', path: ['defaults', 'backoff', 'cap'], message: 'too small' },
      ]),
    ).toBe('policy.defaults.backoff.cap: too small');
    expect(
      formatPolicyProblems([{ code: 'POLICY_INVALID', path: [], message: 'not a table' }]),
    ).toBe('policy: not a table');
  });
});
