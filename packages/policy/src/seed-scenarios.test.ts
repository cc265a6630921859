import { describe, expect, it } from 'vitest';
import {
  HOUR,
  MINUTE,
  NOW,
  SECOND,
  SEED_AGENTS,
  SEED_CONTEXT,
  seedConfig,
  seedFleet,
  seedPolicyInput,
} from './__fixtures__/seed-fleet.js';
import {
  decide,
  resolvePolicy,
  validatePolicy,
  type AgentHealth,
  type AgentHistory,
  type ApprovalRecord,
  type Decision,
} from './index.js';

const config = seedConfig();

function deadFor(ms: number, failure: AgentHealth['failure'] = { exit_code: 1 }): AgentHealth {
  return { state: 'dead', since: NOW - ms, failure };
}

type DecisionOf<A extends Decision['action']> = Decision extends infer D
  ? D extends { action: infer B }
    ? A extends B
      ? D & { action: A }
      : never
    : never
  : never;

function expectAction<A extends Decision['action']>(decision: Decision, action: A): DecisionOf<A> {
  expect(decision.action, decision.reason).toBe(action);
  return decision as DecisionOf<A>;
}

describe('the seed policy', () => {
  it('parses from the seed pit.toml and validates against the seed fleet', () => {
    const result = validatePolicy(seedPolicyInput(), SEED_CONTEXT);
    expect(result.problems).toEqual([]);
    expect(result.ok).toBe(true);
    expect(config.missions.forge?.mode).toBe('auto'); // written "yes"
    expect(config.missions['sovereign-core']?.mode).toBe('never'); // written "no"
    expect(config.missions.archive?.approval).toEqual({ timeout: HOUR, on_timeout: 'proceed' });
  });
});

describe('seed scenario: forge auto', () => {
  it('waits out forge dead_after (60s) before acting', () => {
    const decision = expectAction(
      decide({
        agent: SEED_AGENTS.allegro,
        health: deadFor(30 * SECOND),
        fleet: seedFleet(),
        now: NOW,
        config,
      }),
      'wait',
    );
    expect(decision).toMatchObject({
      rule: 'dead_after',
      wait_for: 'dead_after',
      until: NOW + 30 * SECOND,
    });
    expect(decision.reason).toContain('dead_after=1m (mission:forge)');
  });

  it('rolls allegro back to last known good and restarts it at once', () => {
    const decision = expectAction(
      decide({
        agent: SEED_AGENTS.allegro,
        health: deadFor(2 * MINUTE),
        fleet: seedFleet(),
        now: NOW,
        config,
      }),
      'rollback_and_restart',
    );
    expect(decision).toMatchObject({
      rule: 'mode.auto',
      attempt: 1,
      mission: 'forge',
      failure: { class: 'crashed' },
    });
    expect(decision.reason).toContain('mode=auto (mission:forge)');
    expect(decision.reason).toContain('rollback_before_restart=true, defaults');
  });

  it('backs off a crash loop, escalates to ask when restart intensity runs out, then records only when nobody answers', () => {
    const deathAt = NOW - 2 * MINUTE;
    const history: { restarts: number[]; approval?: ApprovalRecord } = { restarts: [] };
    const health = { state: 'dead' as const, since: deathAt, failure: { exit_code: 1 } };
    const trail: string[] = [];
    let now = NOW;
    let decision: Decision | undefined;
    const delays: number[] = [];
    for (let step = 0; step < 20; step += 1) {
      decision = decide({
        agent: SEED_AGENTS.allegro,
        health,
        history,
        fleet: seedFleet(),
        now,
        config,
      });
      trail.push(decision.action);
      if (decision.action === 'wait') {
        expect(decision.until).toBeGreaterThan(now);
        now = decision.until;
      } else if (decision.action === 'rollback_and_restart') {
        if (history.restarts.length > 0) delays.push(now - (history.restarts.at(-1) as number));
        history.restarts.push(now);
        now += SECOND; // it dies again at once
      } else break;
    }
    expect(trail.filter((action) => action === 'rollback_and_restart')).toHaveLength(5);
    // 10s, 20s, 40s, 80s less up to 10 % jitter, plus the second it took to die.
    delays.forEach((delay, index) => {
      const base = 10 * SECOND * 2 ** index;
      expect(delay).toBeGreaterThanOrEqual(base * 0.9);
      expect(delay).toBeLessThanOrEqual(base + SECOND);
    });
    const escalation = expectAction(decision as Decision, 'escalate');
    expect(escalation).toMatchObject({
      rule: 'restart_intensity',
      why: 'restart_intensity',
      then: 'ask',
    });
    expect(escalation.request).toMatchObject({
      kind: 'escalation',
      proposed: 'rollback_and_restart',
      channels: ['telegram', 'cli'],
      on_timeout: 'record_only',
      expires_at: now + 30 * MINUTE,
    });
    expect(escalation.reason).toContain('restart_intensity.max_restarts=5 (defaults)');

    history.approval = {
      id: 'ap-1',
      kind: 'escalation',
      status: 'pending',
      proposed: 'rollback_and_restart',
      requested_at: now,
      expires_at: now + 30 * MINUTE,
    };
    const pending = expectAction(
      decide({
        agent: SEED_AGENTS.allegro,
        health,
        history,
        fleet: seedFleet(),
        now: now + MINUTE,
        config,
      }),
      'wait',
    );
    expect(pending).toMatchObject({
      rule: 'escalation.pending',
      wait_for: 'approval',
      until: now + 30 * MINUTE,
      approval_id: 'ap-1',
    });

    const expired = decide({
      agent: SEED_AGENTS.allegro,
      health,
      history,
      fleet: seedFleet(),
      now: now + 30 * MINUTE,
      config,
    });
    expect(expired).toMatchObject({
      action: 'record_only',
      rule: 'escalation.expired',
      approval_id: 'ap-1',
    });
    const later = decide({
      agent: SEED_AGENTS.allegro,
      health,
      history,
      fleet: seedFleet(),
      now: now + 3 * HOUR,
      config,
    });
    expect(later).toMatchObject({ action: 'record_only', rule: 'escalation.expired' });
  });

  it('restarts once more when the escalation is approved, then escalates again', () => {
    const restarts = [1, 2, 3, 4, 5].map((index) => NOW - index * MINUTE);
    const approval: ApprovalRecord = {
      id: 'ap-2',
      kind: 'escalation',
      status: 'approved',
      proposed: 'rollback_and_restart',
      requested_at: NOW - 30 * SECOND,
      expires_at: NOW + 29 * MINUTE,
      decided_at: NOW - 10 * SECOND,
    };
    const health = deadFor(10 * MINUTE);
    const approved = expectAction(
      decide({
        agent: SEED_AGENTS.allegro,
        health,
        history: { restarts, approval },
        fleet: seedFleet(),
        now: NOW,
        config,
      }),
      'rollback_and_restart',
    );
    expect(approved).toMatchObject({
      rule: 'escalation.approved',
      approval_id: 'ap-2',
      attempt: 6,
    });
    const again = decide({
      agent: SEED_AGENTS.allegro,
      health,
      history: { restarts: [...restarts, NOW], approval },
      fleet: seedFleet(),
      now: NOW + 5 * SECOND,
      config,
    });
    expect(again).toMatchObject({ action: 'escalate', why: 'restart_intensity', then: 'ask' });
  });
});

describe('seed scenario: archive ask', () => {
  const approvalOf = (
    status: ApprovalRecord['status'],
    extra: Partial<ApprovalRecord> = {},
  ): AgentHistory => ({
    approval: {
      id: 'ap-ezra',
      kind: 'revive',
      status,
      proposed: 'rollback_and_restart',
      substitute: 'allegro',
      requested_at: NOW - 20 * MINUTE,
      expires_at: NOW + 40 * MINUTE,
      ...extra,
    },
  });

  it('asks on telegram and cli with a suggested substitute, expiring after the archive timeout (1h)', () => {
    const decision = expectAction(
      decide({
        agent: SEED_AGENTS.ezra,
        health: deadFor(11 * MINUTE),
        fleet: seedFleet(),
        now: NOW,
        config,
      }),
      'ask',
    );
    expect(decision.rule).toBe('mode.ask');
    expect(decision.request).toEqual({
      agent: 'ezra',
      mission: 'archive',
      kind: 'revive',
      proposed: 'rollback_and_restart',
      suggested_substitute: 'allegro',
      reasons: expect.arrayContaining([
        expect.stringContaining('mode=ask (mission:archive)'),
      ]) as string[],
      channels: ['telegram', 'cli'],
      requested_at: NOW,
      expires_at: NOW + HOUR,
      on_timeout: 'proceed',
    });
  });

  it('waits for the answer while the request is pending', () => {
    const decision = expectAction(
      decide({
        agent: SEED_AGENTS.ezra,
        health: deadFor(30 * MINUTE),
        history: approvalOf('pending'),
        fleet: seedFleet(),
        now: NOW,
        config,
      }),
      'wait',
    );
    expect(decision).toMatchObject({
      rule: 'approval.pending',
      until: NOW + 40 * MINUTE,
      approval_id: 'ap-ezra',
      next: 'rollback_and_restart',
    });
  });

  it('carries out an approved request', () => {
    const decision = decide({
      agent: SEED_AGENTS.ezra,
      health: deadFor(30 * MINUTE),
      history: approvalOf('approved', { decided_at: NOW - MINUTE }),
      fleet: seedFleet(),
      now: NOW,
      config,
    });
    expect(decision).toMatchObject({
      action: 'rollback_and_restart',
      rule: 'approval.approved',
      approval_id: 'ap-ezra',
    });
  });

  it('hands over to the substitute when the approver chose it', () => {
    const decision = decide({
      agent: SEED_AGENTS.ezra,
      health: deadFor(30 * MINUTE),
      history: approvalOf('approved', { decided_at: NOW - MINUTE, action: 'substitute' }),
      fleet: seedFleet(),
      now: NOW,
      config,
    });
    expect(decision).toMatchObject({
      action: 'substitute',
      substitute: 'allegro',
      rule: 'approval.approved',
    });
  });

  it('records only when the request is denied', () => {
    const decision = decide({
      agent: SEED_AGENTS.ezra,
      health: deadFor(30 * MINUTE),
      history: approvalOf('denied', { decided_at: NOW - MINUTE }),
      fleet: seedFleet(),
      now: NOW,
      config,
    });
    expect(decision).toMatchObject({ action: 'record_only', rule: 'approval.denied' });
  });

  it('proceeds with the proposal when the request expires (archive on_timeout = proceed)', () => {
    const decision = decide({
      agent: SEED_AGENTS.ezra,
      health: deadFor(2 * HOUR),
      history: approvalOf('pending', { requested_at: NOW - 61 * MINUTE, expires_at: NOW - MINUTE }),
      fleet: seedFleet(),
      now: NOW,
      config,
    });
    expect(decision).toMatchObject({
      action: 'rollback_and_restart',
      rule: 'approval.expired',
      approval_id: 'ap-ezra',
    });
    expect(decision.reason).toContain('approval.on_timeout=proceed (mission:archive)');
  });

  it('cancels the pending request when ezra comes back by itself', () => {
    const decision = decide({
      agent: SEED_AGENTS.ezra,
      health: { state: 'healthy', since: NOW - SECOND },
      history: approvalOf('pending'),
      fleet: seedFleet(),
      now: NOW,
      config,
    });
    expect(decision).toMatchObject({
      action: 'none',
      rule: 'approval.moot',
      cancel_approval: 'ap-ezra',
    });
  });
});

describe('seed scenario: sovereign-core never', () => {
  const failures: AgentHealth['failure'][] = [
    { exit_code: 1 },
    { exit_code: 78 },
    { exit_code: 77 },
    { class: 'rate_limited', reset_at: NOW + MINUTE },
    { stuck: true },
    undefined,
  ];

  it.each(failures.map((failure) => [JSON.stringify(failure ?? {}), failure] as const))(
    'records timmy only, never restarting it (failure %s)',
    (_label, failure) => {
      const approved: ApprovalRecord = {
        id: 'old',
        kind: 'revive',
        status: 'approved',
        proposed: 'restart',
        requested_at: NOW - MINUTE,
        expires_at: NOW + HOUR,
        decided_at: NOW - SECOND,
      };
      const decision = decide({
        agent: SEED_AGENTS.timmy,
        health: deadFor(5 * MINUTE, failure),
        history: { approval: approved, restarts: [NOW - HOUR] },
        fleet: seedFleet(),
        now: NOW,
        config,
      });
      expect(decision).toMatchObject({
        action: 'record_only',
        rule: 'mode.never',
        mission: 'sovereign-core',
      });
      expect(decision.reason).toContain('mode=never (mission:sovereign-core)');
    },
  );

  it('waits out the default dead_after (90s) before recording', () => {
    const decision = decide({
      agent: SEED_AGENTS.timmy,
      health: deadFor(30 * SECOND),
      fleet: seedFleet(),
      now: NOW,
      config,
    });
    expect(decision).toMatchObject({ action: 'wait', rule: 'dead_after', until: NOW + MINUTE });
  });
});

describe('seed scenario: substitutions bezalel → allegro → timmy', () => {
  const bezalelDead = deadFor(5 * MINUTE);

  it('hands remote bezalel over to allegro while allegro is healthy', () => {
    const decision = decide({
      agent: SEED_AGENTS.bezalel,
      health: bezalelDead,
      fleet: seedFleet({ bezalel: { state: 'dead' } }),
      now: NOW,
      config,
    });
    expect(decision).toMatchObject({
      action: 'substitute',
      substitute: 'allegro',
      rule: 'remote.substitute',
    });
  });

  it.each([
    ['dead', { state: 'dead' as const }],
    ['degraded', { state: 'degraded' as const }],
    ['substituting for ezra', { substituting_for: 'ezra' }],
    ['missing from the fleet', undefined],
  ])('falls through to timmy when allegro is %s', (why, allegro) => {
    const fleet = seedFleet(allegro === undefined ? {} : { allegro });
    if (allegro === undefined)
      fleet.agents = fleet.agents.filter((agent) => agent.name !== 'allegro');
    const decision = decide({
      agent: SEED_AGENTS.bezalel,
      health: bezalelDead,
      fleet,
      now: NOW,
      config,
    });
    expect(decision).toMatchObject({ action: 'substitute', substitute: 'timmy' });
    expect(decision.reason).toContain(
      `allegro: ${why === 'missing from the fleet' ? 'not in the fleet' : why}`,
    );
  });

  it('escalates (record only) when no substitute is healthy and bezalel cannot be restarted from here', () => {
    const decision = decide({
      agent: SEED_AGENTS.bezalel,
      health: bezalelDead,
      fleet: seedFleet({ allegro: { state: 'dead' }, timmy: { state: 'dead' } }),
      now: NOW,
      config,
    });
    expect(decision).toMatchObject({ action: 'escalate', why: 'no_remedy', then: 'record_only' });
    expect(decision.reason).toContain('allegro: dead, timmy: dead');
  });

  it('restarts bezalel instead when its host can be reached and no substitute is healthy', () => {
    const decision = decide({
      agent: { ...SEED_AGENTS.bezalel, restartable: true },
      health: bezalelDead,
      fleet: seedFleet({ allegro: { state: 'dead' }, timmy: { state: 'unknown' } }),
      now: NOW,
      config,
    });
    expect(decision).toMatchObject({ action: 'rollback_and_restart', rule: 'remote.substitute' });
    expect(decision.reason).toContain('no healthy substitute');
  });

  it('does nothing while allegro stands in, and moves on to timmy when allegro dies too', () => {
    const covered = decide({
      agent: SEED_AGENTS.bezalel,
      health: bezalelDead,
      history: { substituted_by: 'allegro' },
      fleet: seedFleet({ allegro: { substituting_for: 'bezalel' } }),
      now: NOW,
      config,
    });
    expect(covered).toMatchObject({ action: 'none', rule: 'substituted' });
    const uncovered = decide({
      agent: SEED_AGENTS.bezalel,
      health: bezalelDead,
      history: { substituted_by: 'allegro' },
      fleet: seedFleet({ allegro: { state: 'dead', substituting_for: 'bezalel' } }),
      now: NOW,
      config,
    });
    expect(uncovered).toMatchObject({ action: 'substitute', substitute: 'timmy' });
  });
});

describe('seed scenario: mission defaults applied after an agent override sets the mission', () => {
  it('gives ezra the archive policy under its own override', () => {
    const policy = resolvePolicy({ config, agent: 'ezra' });
    expect(policy).toMatchObject({
      mission: 'archive',
      mode: 'ask',
      dead_after: 10 * MINUTE,
      substitutes: ['allegro'],
      approval: { channels: ['telegram', 'cli'], timeout: HOUR, on_timeout: 'proceed' },
      backoff: { initial: 10 * SECOND, cap: 5 * MINUTE },
    });
    expect(policy.trace).toMatchObject({
      layers: ['builtin', 'defaults', 'mission:archive', 'agent:ezra'],
      mission: 'archive',
      mission_from: 'agent_override',
    });
    expect(policy.trace.fields).toMatchObject({
      mode: 'mission:archive',
      dead_after: 'agent:ezra',
      'approval.timeout': 'mission:archive',
      'approval.channels': 'defaults',
      'backoff.initial': 'defaults',
      'on_failure.crashed': 'builtin',
    });
  });

  it('lets the override win over the mission of the cell', () => {
    const policy = resolvePolicy({ config, agent: 'ezra', mission: 'forge' });
    expect(policy).toMatchObject({ mission: 'archive', mode: 'ask' });
    expect(policy.trace.layers).not.toContain('mission:forge');
  });

  it('decides for ezra with the archive mode and ezra’s own dead_after', () => {
    const early = decide({
      agent: { name: 'ezra', mission: 'forge' },
      health: deadFor(6 * MINUTE),
      fleet: seedFleet(),
      now: NOW,
      config,
    });
    expect(early).toMatchObject({
      action: 'wait',
      rule: 'dead_after',
      until: NOW + 4 * MINUTE,
      mission: 'archive',
    });
    expect(early.reason).toContain('dead_after=10m (agent:ezra)');
    const later = decide({
      agent: { name: 'ezra', mission: 'forge' },
      health: deadFor(10 * MINUTE),
      fleet: seedFleet(),
      now: NOW,
      config,
    });
    expect(later).toMatchObject({ action: 'ask', rule: 'mode.ask', mission: 'archive' });
  });
});
