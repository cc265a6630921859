import { describe, expect, it } from 'vitest';
import type { AgentHealth, AgentHistory, ApprovalRecord, FleetView } from './decide-input.js';
import { decide, type DecideOptions } from './decide.js';
import type { Decision } from './decision.js';
import { PolicyError } from './errors.js';
import { createFleetIndex } from './fleet-index.js';
import { PolicyConfigSchema, type PolicyConfigInput } from './policy-config.js';

const NOW = 1_800_000_000_000;
const SECOND = 1_000;
const MINUTE = 60 * SECOND;

const base: PolicyConfigInput = {
  defaults: {
    approval: { channels: ['cli'] },
    backoff: { jitter: 0 },
    rollback_before_restart: false,
  },
};

function config(overrides: PolicyConfigInput = {}) {
  return PolicyConfigSchema.parse({
    ...base,
    ...overrides,
    defaults: {
      ...base.defaults,
      ...overrides.defaults,
      approval: { ...base.defaults?.approval, ...overrides.defaults?.approval },
    },
  });
}

const fleet: FleetView = {
  agents: [
    { name: 'a', state: 'dead' },
    { name: 'b', state: 'healthy' },
    { name: 'c', state: 'healthy' },
  ],
};

function dead(failure: AgentHealth['failure'] = { exit_code: 1 }, ago = 5 * MINUTE): AgentHealth {
  return { state: 'dead', since: NOW - ago, failure };
}

function run(options: Partial<DecideOptions> & { config?: ReturnType<typeof config> }): Decision {
  return decide({ agent: 'a', health: dead(), fleet, now: NOW, config: config(), ...options });
}

describe('decide: agents that are not dead', () => {
  it.each(['healthy', 'degraded', 'unknown'] as const)('does nothing for a %s agent', (state) => {
    expect(run({ health: { state } })).toMatchObject({ action: 'none', rule: `health.${state}` });
  });

  it('cancels a pending approval when the agent recovers', () => {
    const approval: ApprovalRecord = {
      id: 'x',
      kind: 'revive',
      status: 'pending',
      proposed: 'restart',
      requested_at: NOW - MINUTE,
      expires_at: NOW + MINUTE,
    };
    expect(run({ health: { state: 'healthy' }, history: { approval } })).toMatchObject({
      action: 'none',
      rule: 'approval.moot',
      cancel_approval: 'x',
    });
  });

  it('freezes the config it decided with, so a change fails loudly instead of going stale', () => {
    const frozen = config();
    run({ config: frozen });
    expect(Object.isFrozen(frozen.defaults.approval?.channels)).toBe(true);
    expect(() => {
      (frozen.defaults as { mode?: string }).mode = 'never';
    }).toThrow(TypeError);
  });

  it('refuses a time that is not a number', () => {
    expect(() => run({ now: Number.NaN })).toThrow(PolicyError);
    expect(() => run({ now: Number.NaN })).toThrow(/now must be a finite number/);
  });
});

describe('decide: restarts', () => {
  it('restarts at once, or rolls back first when the policy says so', () => {
    expect(run({})).toMatchObject({
      action: 'restart',
      attempt: 1,
      rule: 'mode.auto',
      dead_for: 5 * MINUTE,
    });
    expect(run({ config: config({ defaults: { rollback_before_restart: true } }) })).toMatchObject({
      action: 'rollback_and_restart',
    });
  });

  it('treats a death without a time as happening now', () => {
    expect(
      run({ health: { state: 'dead' }, config: config({ defaults: { dead_after: '10s' } }) }),
    ).toMatchObject({ action: 'wait', until: NOW + 10 * SECOND, dead_for: 0 });
  });

  it('acts at once on an exit it saw, and waits dead_after only for a death it inferred', () => {
    const slow = config({ defaults: { dead_after: '2m' } });
    const seen = run({
      health: { state: 'dead', since: NOW, failure: { exited: true, signal: 'SIGKILL' } },
      config: slow,
    });
    expect(seen).toMatchObject({ action: 'restart', rule: 'mode.auto', dead_for: 0 });
    const inferred = run({
      health: { state: 'dead', since: NOW, failure: { failing_probes: ['heartbeat'] } },
      config: slow,
    });
    expect(inferred).toMatchObject({
      action: 'wait',
      wait_for: 'dead_after',
      until: NOW + 2 * MINUTE,
    });
    expect(inferred.reason).toContain('dead_after=2m (defaults)');
  });

  it('waits for the backoff measured from the latest restart, then restarts again', () => {
    const history: AgentHistory = { restarts: [NOW - 5 * SECOND] };
    expect(run({ history })).toMatchObject({
      action: 'wait',
      wait_for: 'backoff',
      until: NOW + 5 * SECOND,
      next: 'restart',
    });
    expect(run({ history, now: NOW + 5 * SECOND })).toMatchObject({
      action: 'restart',
      attempt: 2,
    });
    const third = run({ history: { restarts: [NOW - 30 * SECOND, NOW - 5 * SECOND] } });
    expect(third).toMatchObject({ action: 'wait', until: NOW + 15 * SECOND });
    expect(third.reason).toContain('restart #3 in 15s');
  });

  it('restarts at once again after a stable period resets the backoff', () => {
    const history: AgentHistory = {
      restarts: [NOW - 30 * MINUTE, NOW - 29 * MINUTE, NOW - 28 * MINUTE],
      healthy: [{ from: NOW - 27 * MINUTE, to: NOW - 6 * MINUTE }],
    };
    expect(run({ history })).toMatchObject({ action: 'restart', attempt: 1 });
  });

  it('escalates to ask when the restart intensity is used up, to record only without a channel', () => {
    const history: AgentHistory = {
      restarts: [1, 2, 3, 4, 5].map((index) => NOW - index * MINUTE),
    };
    const escalation = run({ history });
    expect(escalation).toMatchObject({
      action: 'escalate',
      why: 'restart_intensity',
      then: 'ask',
      request: {
        kind: 'escalation',
        proposed: 'restart',
        channels: ['cli'],
        on_timeout: 'record_only',
      },
    });
    const silent = run({ history, config: PolicyConfigSchema.parse({}) });
    expect(silent).toMatchObject({
      action: 'escalate',
      why: 'restart_intensity',
      then: 'record_only',
    });
    expect(silent.reason).toContain('no approval channel');
    expect(silent).not.toHaveProperty('request');
  });

  it('escalates when the revive attempts are used up, even if spread beyond the intensity window', () => {
    const history: AgentHistory = { restarts: [1, 2, 3].map((index) => NOW - index * 20 * MINUTE) };
    expect(
      run({ history, config: config({ defaults: { max_revive_attempts: 3 } }) }),
    ).toMatchObject({
      action: 'escalate',
      why: 'max_revive_attempts',
      rule: 'max_revive_attempts',
    });
  });
});

describe('decide: failure classes', () => {
  it('rolls back a bad config even when the policy does not roll back otherwise', () => {
    expect(run({ health: dead({ exit_code: 78 }) })).toMatchObject({
      action: 'rollback_and_restart',
      rule: 'on_failure.bad_config',
    });
  });

  it('never claims a rollback for an agent with no config files to roll back: it restarts', () => {
    const bare = { name: 'a', rollbackable: false };
    const rolling = config({ defaults: { rollback_before_restart: true } });
    const plain = run({ agent: bare, config: rolling });
    expect(plain).toMatchObject({ action: 'restart', rule: 'mode.auto' });
    expect(plain.reason).not.toMatch(/roll/);
    const badConfig = run({ agent: bare, health: dead({ exit_code: 78 }) });
    expect(badConfig).toMatchObject({ action: 'restart', rule: 'on_failure.bad_config' });
    expect(badConfig.reason).toContain('no config files to roll back');
    expect(badConfig.reason).not.toMatch(/rolled back/);
    const asked = run({
      agent: bare,
      config: config({ defaults: { mode: 'ask', rollback_before_restart: true } }),
    });
    expect(asked).toMatchObject({ action: 'ask', request: { proposed: 'restart' } });
    expect(asked.reason).not.toMatch(/roll/);
  });

  it('waits for the reset time of a rate limit, then restarts', () => {
    const health = dead({ class: 'rate_limited', reset_at: NOW + 7 * MINUTE });
    expect(run({ health })).toMatchObject({
      action: 'wait',
      wait_for: 'rate_limit',
      until: NOW + 7 * MINUTE,
      rule: 'on_failure.rate_limited',
      next: 'restart',
    });
    expect(run({ health, now: NOW + 7 * MINUTE })).toMatchObject({
      action: 'restart',
      rule: 'on_failure.rate_limited',
    });
  });

  it('waits rate_limit_wait when a rate limit has no reset time', () => {
    expect(
      run({
        health: dead({ exit_code: 75 }, MINUTE),
        config: config({ defaults: { rate_limit_wait: '10m' } }),
      }),
    ).toMatchObject({ action: 'wait', until: NOW + 9 * MINUTE });
  });

  it('asks about a failed authentication, and records only where nobody can be asked', () => {
    expect(run({ health: dead({ exit_code: 77 }) })).toMatchObject({
      action: 'ask',
      rule: 'on_failure.auth_failed',
      request: { kind: 'revive', proposed: 'restart' },
    });
    const unasked = run({ health: dead({ exit_code: 77 }), config: PolicyConfigSchema.parse({}) });
    expect(unasked).toMatchObject({ action: 'record_only', rule: 'no_approval_channel' });
    expect(unasked.reason).toContain('on_failure.auth_failed=ask (builtin)');
  });

  it('follows configured failure actions', () => {
    const custom = config({
      defaults: { on_failure: { stuck: 'record_only', crashed: 'substitute' } },
      agents: { a: { substitutes: ['b'] } },
    });
    expect(run({ health: dead({ stuck: true }), config: custom })).toMatchObject({
      action: 'record_only',
      rule: 'on_failure.stuck',
    });
    expect(run({ health: dead({ exit_code: 1 }), config: custom })).toMatchObject({
      action: 'substitute',
      substitute: 'b',
      rule: 'on_failure.crashed',
    });
  });
});

describe('decide: substitutes', () => {
  const substituting = config({
    agents: { a: { mode: 'substitute', substitutes: ['a', 'b', 'c'] } },
  });

  it('hands over to the first healthy substitute in substitute mode', () => {
    expect(run({ config: substituting })).toMatchObject({
      action: 'substitute',
      substitute: 'b',
      rule: 'mode.substitute',
    });
  });

  it('restarts instead when no substitute is healthy, and says so', () => {
    const decision = run({
      config: substituting,
      fleet: {
        agents: [
          { name: 'b', state: 'dead' },
          { name: 'c', state: 'healthy', substituting_for: 'z' },
        ],
      },
    });
    expect(decision).toMatchObject({ action: 'restart', rule: 'mode.substitute' });
    expect(decision.reason).toContain(
      'no healthy substitute (b: dead, c: substituting for z), restarting instead',
    );
  });

  it('escalates when a remote agent has no substitutes at all', () => {
    const decision = run({ agent: { name: 'a', local: false } });
    expect(decision).toMatchObject({ action: 'escalate', why: 'no_remedy', then: 'record_only' });
    expect(decision.reason).toContain('substitutes is empty');
  });

  it('suggests the substitute in an ask', () => {
    expect(
      run({ config: config({ defaults: { mode: 'ask' }, agents: { a: { substitutes: ['c'] } } }) }),
    ).toMatchObject({
      action: 'ask',
      request: { proposed: 'restart', suggested_substitute: 'c' },
    });
  });

  it('sees a substitute in the fleet view even when the history does not name it', () => {
    expect(
      run({ fleet: { agents: [{ name: 'b', state: 'unknown', substituting_for: 'a' }] } }),
    ).toMatchObject({ action: 'none', rule: 'substituted' });
  });
});

describe('decide: approvals', () => {
  const asking = config({
    defaults: { mode: 'ask', approval: { timeout: '10m', on_timeout: 'restart' } },
  });
  const approval = (
    status: ApprovalRecord['status'],
    extra: Partial<ApprovalRecord> = {},
  ): AgentHistory => ({
    approval: {
      id: 'q',
      kind: 'revive',
      status,
      proposed: 'restart',
      requested_at: NOW - 2 * MINUTE,
      expires_at: NOW + 8 * MINUTE,
      ...extra,
    },
  });

  it('asks with the configured expiry', () => {
    expect(run({ config: asking })).toMatchObject({
      action: 'ask',
      rule: 'mode.ask',
      request: { requested_at: NOW, expires_at: NOW + 10 * MINUTE, on_timeout: 'restart' },
    });
  });

  it('treats a withdrawn (cancelled) request as none and asks again', () => {
    expect(run({ config: asking, history: approval('cancelled') })).toMatchObject({
      action: 'ask',
      rule: 'mode.ask',
    });
  });

  it('carries out an approval past the restart budget and the backoff, once', () => {
    const restarts = [1, 2, 3, 4, 5].map((index) => NOW - index * SECOND);
    const history = { ...approval('approved', { decided_at: NOW - 500 }), restarts };
    expect(run({ config: asking, history })).toMatchObject({
      action: 'restart',
      rule: 'approval.approved',
      attempt: 6,
    });
    const consumed = { ...history, restarts: [...restarts, NOW] };
    expect(run({ config: asking, history: consumed, now: NOW + SECOND })).toMatchObject({
      action: 'ask',
      rule: 'mode.ask',
    });
  });

  it('uses the on_timeout the request was made with, not the current config', () => {
    const history = approval('expired', { on_timeout: 'record_only', expires_at: NOW - SECOND });
    expect(run({ config: asking, history })).toMatchObject({
      action: 'record_only',
      rule: 'approval.expired',
    });
    expect(
      run({ config: asking, history: approval('expired', { expires_at: NOW - SECOND }) }),
    ).toMatchObject({ action: 'restart', rule: 'approval.expired' });
  });

  it('ignores answers from an earlier death, but not a request still pending', () => {
    const old = {
      requested_at: NOW - 60 * MINUTE,
      decided_at: NOW - 59 * MINUTE,
      expires_at: NOW - 50 * MINUTE,
    };
    expect(run({ config: asking, history: approval('denied', old) })).toMatchObject({
      action: 'ask',
    });
    expect(
      run({ config: asking, history: approval('pending', { requested_at: NOW - 60 * MINUTE }) }),
    ).toMatchObject({ action: 'wait', rule: 'approval.pending' });
  });

  it('re-checks an approved substitute and picks another when it is no longer healthy', () => {
    const history = approval('approved', {
      proposed: 'substitute',
      substitute: 'b',
      decided_at: NOW - SECOND,
    });
    const policy = config({
      defaults: { mode: 'ask' },
      agents: { a: { substitutes: ['b', 'c'] } },
    });
    expect(
      run({
        config: policy,
        history,
        fleet: {
          agents: [
            { name: 'b', state: 'dead' },
            { name: 'c', state: 'healthy' },
          ],
        },
      }),
    ).toMatchObject({
      action: 'substitute',
      substitute: 'c',
      rule: 'approval.approved',
    });
  });
});

describe('decide: fleet brake', () => {
  const storm: FleetView = {
    agents: [
      ...['a', 'b', 'c', 'd', 'e', 'f'].map((name, index) => ({
        name,
        state: 'dead' as const,
        since: NOW - 60 * SECOND + index * SECOND,
      })),
      ...Array.from({ length: 14 }, (_, index) => ({
        name: `up${index}`,
        state: 'healthy' as const,
      })),
    ],
  };
  const braking = config({ fleet_brake: { max_deaths: 3, restart_interval: '20s' } });

  it('lets the first death through and holds the others for their slots, saying why', () => {
    const first = run({
      agent: 'a',
      health: dead({ exit_code: 1 }, 60 * SECOND),
      fleet: storm,
      config: braking,
    });
    expect(first).toMatchObject({
      action: 'restart',
      brake: { engaged: true, deaths: 6, percent: 30, slot: NOW - 60 * SECOND },
    });
    expect(first.reason).toContain('fleet brake: 6 of 20 agents (30%) died within 2m');
    const fourth = run({
      agent: 'd',
      health: dead({ exit_code: 1 }, 57 * SECOND),
      fleet: storm,
      config: braking,
    });
    expect(fourth).toMatchObject({ action: 'restart' }); // its slot (onset + 3 × 20s) is now
    const fifth = run({
      agent: 'e',
      health: dead({ exit_code: 1 }, 56 * SECOND),
      fleet: storm,
      config: braking,
    });
    expect(fifth).toMatchObject({
      action: 'wait',
      wait_for: 'fleet_brake',
      rule: 'fleet_brake',
      until: NOW + 20 * SECOND,
      next: 'restart',
    });
    const sixth = run({
      agent: 'f',
      health: dead({ exit_code: 1 }, 55 * SECOND),
      fleet: storm,
      config: braking,
    });
    expect(sixth).toMatchObject({ action: 'wait', until: NOW + 40 * SECOND });
  });

  it('spaces starts after the latest one', () => {
    const decision = run({
      agent: 'a',
      health: dead({ exit_code: 1 }, 60 * SECOND),
      fleet: { ...storm, restarts: [NOW - 5 * SECOND] },
      config: braking,
    });
    expect(decision).toMatchObject({ action: 'wait', until: NOW + 15 * SECOND });
  });

  it('marks decisions that start nothing too, so the daemon can group the alerts', () => {
    const never = config({ fleet_brake: { max_deaths: 3 }, defaults: { mode: 'never' } });
    expect(run({ agent: 'c', fleet: storm, config: never })).toMatchObject({
      action: 'record_only',
      brake: { engaged: true },
    });
  });

  it('gives the same decisions with a plain view and with an index', () => {
    const index = createFleetIndex(storm);
    for (const agent of ['a', 'b', 'c', 'd', 'e', 'f']) {
      expect(run({ agent, fleet: index, config: braking })).toEqual(
        run({ agent, fleet: storm, config: braking }),
      );
    }
  });
});
