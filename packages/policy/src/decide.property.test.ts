import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type {
  AgentHealth,
  AgentHistory,
  AgentRef,
  ApprovalRecord,
  FleetAgent,
  FleetView,
} from './decide-input.js';
import { decide, type DecideOptions } from './decide.js';
import type { ApprovalRequestDraft, Decision } from './decision.js';
import { createFleetIndex } from './fleet-index.js';
import { FAILURE_CLASSES, PolicyConfigSchema, type PolicyConfig } from './policy-config.js';
import { resolvePolicy } from './resolve-policy.js';

const NOW = 1_800_000_000_000;
const HOUR = 3_600_000;
const NAMES = ['a', 'b', 'c', 'd', 'e'] as const;
const STATES = ['healthy', 'degraded', 'dead', 'unknown'] as const;
const REMEDIES = ['restart', 'rollback_and_restart', 'substitute'] as const;

const time = fc.integer({ min: NOW - 3 * HOUR, max: NOW });
/** Present half of the time. */
const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.oneof(fc.constant(undefined), arbitrary);
/** Present a quarter of the time. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary, weight: 1 });
/** Mostly `common`, sometimes anything in `all`. */
const mostly = <T>(common: T, all: readonly T[]) =>
  fc.oneof(
    { arbitrary: fc.constant(common), weight: 3 },
    { arbitrary: fc.constantFrom(...all), weight: 1 },
  );

const layer = fc.record(
  {
    mode: fc.constantFrom('auto', 'yes', 'ask', 'never', 'no', 'substitute'),
    dead_after: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 900 })),
    substitutes: fc.shuffledSubarray([...NAMES]),
    rollback_before_restart: fc.boolean(),
    max_revive_attempts: fc.integer({ min: 1, max: 10 }),
    rate_limit_wait: fc.integer({ min: 0, max: 3_600 }),
    approval: fc.record(
      {
        channels: fc.subarray(['cli', 'telegram']),
        timeout: fc.integer({ min: 1, max: 7_200 }),
        on_timeout: fc.constantFrom('record_only', 'proceed', ...REMEDIES),
      },
      { requiredKeys: [] },
    ),
    restart_intensity: fc.record(
      { max_restarts: fc.integer({ min: 1, max: 10 }), window: fc.integer({ min: 1, max: 7_200 }) },
      { requiredKeys: [] },
    ),
    backoff: fc.record(
      {
        initial: fc.integer({ min: 0, max: 600 }),
        factor: fc.double({ min: 1, max: 4, noNaN: true }),
        cap: fc.integer({ min: 0, max: 3_600 }),
        jitter: fc.double({ min: 0, max: 1, noNaN: true }),
        reset_after_stable: fc.integer({ min: 0, max: 3_600 }),
      },
      { requiredKeys: [] },
    ),
    on_failure: fc.record(
      Object.fromEntries(
        FAILURE_CLASSES.map((name) => [
          name,
          fc.constantFrom(
            'restart',
            'rollback_and_restart',
            'wait',
            'ask',
            'substitute',
            'record_only',
          ),
        ]),
      ),
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: [] },
);

const config: fc.Arbitrary<PolicyConfig> = fc
  .record({
    defaults: layer,
    missions: fc.record({ m1: layer, m2: layer }, { requiredKeys: [] }),
    agents: fc.dictionary(
      fc.constantFrom(...NAMES),
      fc
        .tuple(layer, optional(fc.constantFrom('m1', 'm2')))
        .map(([value, mission]) => (mission === undefined ? value : { ...value, mission })),
      {
        maxKeys: 5,
      },
    ),
    fleet_brake: fc.record(
      {
        max_deaths: fc.integer({ min: 0, max: 5 }),
        max_percent: fc.integer({ min: 0, max: 100 }),
        window: fc.integer({ min: 1, max: 3_600 }),
        restart_interval: fc.integer({ min: 0, max: 120 }),
      },
      { requiredKeys: [] },
    ),
  })
  .map((input) => PolicyConfigSchema.parse(input));

const failure = fc.record(
  {
    class: fc.constantFrom(...FAILURE_CLASSES),
    exit_code: fc.constantFrom(0, 1, 2, 75, 77, 78, 137),
    signal: fc.constantFrom('SIGKILL', 'SIGSEGV'),
    stuck: fc.boolean(),
    reset_at: fc.integer({ min: NOW - HOUR, max: NOW + HOUR }),
    failing_probes: fc.subarray(['heartbeat', 'http', 'process', 'stuck']),
  },
  { requiredKeys: [] },
);

const health: fc.Arbitrary<AgentHealth> = fc
  .record({ state: mostly('dead', STATES), since: optional(time), failure: optional(failure) })
  .map(({ state, since, failure: info }) => ({
    state,
    ...(since === undefined ? {} : { since }),
    ...(info === undefined ? {} : { failure: info }),
  }));

const approval: fc.Arbitrary<ApprovalRecord> = fc
  .record({
    kind: fc.constantFrom('revive', 'escalation'),
    status: fc.constantFrom('pending', 'approved', 'denied', 'expired'),
    proposed: fc.constantFrom(...REMEDIES),
    substitute: optional(fc.constantFrom(...NAMES)),
    action: optional(fc.constantFrom(...REMEDIES)),
    requested_at: time,
    open_for: fc.integer({ min: 1, max: 2 * HOUR }),
    decided_after: optional(fc.integer({ min: 0, max: HOUR })),
    on_timeout: optional(fc.constantFrom('record_only', 'proceed', ...REMEDIES)),
  })
  .map(({ open_for, decided_after, ...record }) => {
    const result: ApprovalRecord = {
      id: 'q',
      kind: record.kind,
      status: record.status,
      proposed: record.proposed,
      requested_at: record.requested_at,
      expires_at: record.requested_at + open_for,
    };
    if (record.substitute !== undefined) result.substitute = record.substitute;
    if (record.action !== undefined) result.action = record.action;
    if (decided_after !== undefined) result.decided_at = record.requested_at + decided_after;
    if (record.on_timeout !== undefined) result.on_timeout = record.on_timeout;
    return result;
  });

const history: fc.Arbitrary<AgentHistory> = fc
  .record({
    restarts: fc.array(time, { maxLength: 12 }),
    healthy: fc.array(
      fc.record({ from: time, length: optional(fc.integer({ min: 0, max: 2 * HOUR })) }),
      { maxLength: 4 },
    ),
    approval: rarely(approval),
    substituted_by: rarely(fc.constantFrom(...NAMES)),
  })
  .map(({ restarts, healthy, approval: record, substituted_by }) => {
    const result: AgentHistory = {
      restarts,
      healthy: healthy.map(({ from, length }) =>
        length === undefined ? { from } : { from, to: from + length },
      ),
    };
    if (record !== undefined) result.approval = record;
    if (substituted_by !== undefined) result.substituted_by = substituted_by;
    return result;
  });

const fleet: fc.Arbitrary<FleetView> = fc
  .record({
    agents: fc.tuple(
      ...NAMES.map((name) =>
        fc
          .record({
            state: mostly('healthy', STATES),
            since: optional(time),
            substituting_for: rarely(fc.constantFrom(...NAMES)),
            present: mostly(true, [false]),
          })
          .map(({ state, since, substituting_for, present }): FleetAgent | undefined => {
            if (!present) return undefined;
            const agent: FleetAgent = { name, state };
            if (since !== undefined) agent.since = since;
            if (substituting_for !== undefined && substituting_for !== name)
              agent.substituting_for = substituting_for;
            return agent;
          }),
      ),
    ),
    restarts: fc.array(time, { maxLength: 5 }),
  })
  .map(({ agents, restarts }) => ({
    agents: agents.filter((agent): agent is FleetAgent => agent !== undefined),
    restarts,
  }));

const agent: fc.Arbitrary<AgentRef> = fc
  .record({
    name: fc.constantFrom(...NAMES),
    mission: optional(fc.constantFrom('m1', 'm2')),
    local: optional(fc.boolean()),
    restartable: optional(fc.boolean()),
  })
  .map(({ name, mission, local, restartable }) => {
    const ref: AgentRef = { name };
    if (mission !== undefined) ref.mission = mission;
    if (local !== undefined) ref.local = local;
    if (restartable !== undefined) ref.restartable = restartable;
    return ref;
  });

const inputs: fc.Arbitrary<DecideOptions> = fc
  .record({
    agent,
    health,
    history,
    fleet,
    config,
    seed: fc.integer(),
    offset: fc.integer({ min: 0, max: HOUR }),
  })
  .map(({ offset, ...options }) => ({ ...options, now: NOW + offset }));

const RUNS = { numRuns: 400 };

function nameOf(options: DecideOptions): string {
  return typeof options.agent === 'string' ? options.agent : options.agent.name;
}

function expectHealthySubstitute(options: DecideOptions, substitute: string | undefined) {
  if (substitute === undefined) return;
  const view = options.fleet as FleetView;
  const candidate = view.agents.find((entry) => entry.name === substitute);
  expect(substitute).not.toBe(nameOf(options));
  expect(candidate?.state).toBe('healthy');
  expect(
    candidate?.substituting_for === undefined || candidate.substituting_for === nameOf(options),
  ).toBe(true);
}

function requestOf(decision: Decision): ApprovalRequestDraft | undefined {
  return decision.action === 'ask' || decision.action === 'escalate' ? decision.request : undefined;
}

describe('decide (properties)', () => {
  it('never restarts, substitutes or asks for an agent whose mode is never', () => {
    fc.assert(
      fc.property(inputs, (options) => {
        const name = nameOf(options);
        const forced = PolicyConfigSchema.parse({
          ...options.config,
          agents: {
            ...options.config.agents,
            [name]: { ...options.config.agents[name], mode: 'no' },
          },
        });
        for (const config of [options.config, forced]) {
          const ref = typeof options.agent === 'string' ? { name } : options.agent;
          if (
            resolvePolicy(
              ref.mission === undefined
                ? { config, agent: name }
                : { config, agent: name, mission: ref.mission },
            ).mode !== 'never'
          )
            continue;
          const decision = decide({ ...options, config });
          expect(['none', 'wait', 'record_only']).toContain(decision.action);
        }
      }),
      RUNS,
    );
  });

  it('gives the same decision for the same inputs, with a plain fleet view or an index', () => {
    fc.assert(
      fc.property(inputs, (options) => {
        const first = decide(options);
        expect(decide(structuredClone(options))).toEqual(first);
        expect(decide({ ...options, fleet: createFleetIndex(options.fleet as FleetView) })).toEqual(
          first,
        );
      }),
      RUNS,
    );
  });

  it('only ever hands over to (or suggests) a healthy substitute that is not the dead agent nor busy elsewhere', () => {
    fc.assert(
      fc.property(inputs, (options) => {
        const decision = decide(options);
        if (decision.action === 'substitute') expectHealthySubstitute(options, decision.substitute);
        expectHealthySubstitute(options, requestOf(decision)?.suggested_substitute);
      }),
      RUNS,
    );
  });

  it('always says which rule fired and why, waits only into the future, and asks only where it can', () => {
    fc.assert(
      fc.property(inputs, (options) => {
        const decision = decide(options);
        expect(decision.reason.length).toBeGreaterThan(0);
        expect(decision.rule.length).toBeGreaterThan(0);
        expect(decision.agent).toBe(nameOf(options));
        if (decision.action === 'wait') expect(decision.until).toBeGreaterThan(options.now);
        const request = requestOf(decision);
        if (
          decision.action === 'ask' ||
          (decision.action === 'escalate' && decision.then === 'ask')
        ) {
          expect(request?.channels.length).toBeGreaterThan(0);
          expect(request?.expires_at).toBeGreaterThan(options.now);
        }
        if (options.health.state !== 'dead') expect(decision.action).toBe('none');
      }),
      RUNS,
    );
  });

  it('never restarts past the restart budget without a human’s approval', () => {
    fc.assert(
      fc.property(inputs, (options) => {
        const decision = decide(options);
        if (decision.action !== 'restart' && decision.action !== 'rollback_and_restart') return;
        if (decision.rule === 'approval.approved' || decision.rule === 'escalation.approved')
          return;
        const name = nameOf(options);
        const ref = typeof options.agent === 'string' ? { name } : options.agent;
        const policy = resolvePolicy(
          ref.mission === undefined
            ? { config: options.config, agent: name }
            : { config: options.config, agent: name, mission: ref.mission },
        );
        const { window, max_restarts } = policy.restart_intensity;
        const recent = (options.history?.restarts ?? []).filter(
          (at) => at > options.now - window && at <= options.now,
        ).length;
        expect(recent).toBeLessThan(max_restarts);
      }),
      RUNS,
    );
  });
});
