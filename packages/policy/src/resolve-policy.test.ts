import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BUILTIN_POLICY, PolicyConfigSchema, type PolicyLayerInput } from './policy-config.js';
import { describePolicySource, resolvePolicy } from './resolve-policy.js';

describe('resolvePolicy', () => {
  const config = PolicyConfigSchema.parse({
    defaults: {
      mode: 'auto',
      dead_after: '1m',
      approval: { channels: ['telegram'], timeout: '30m' },
      backoff: { initial: '5s' },
    },
    missions: { forge: { dead_after: '2m', backoff: { cap: '1m' } }, archive: { mode: 'ask' } },
    agents: {
      bezalel: { substitutes: ['bezalel', 'allegro'], backoff: { factor: 3 } },
      ezra: { mission: 'archive' },
    },
  });

  it('applies built-in defaults, then defaults, then the mission, then the agent, key by key', () => {
    const policy = resolvePolicy({ config, agent: 'bezalel', mission: 'forge' });
    expect(policy).toMatchObject({
      agent: 'bezalel',
      mission: 'forge',
      mode: 'auto',
      dead_after: 120_000,
      backoff: { initial: 5_000, cap: 60_000, factor: 3, jitter: BUILTIN_POLICY.backoff.jitter },
      approval: { channels: ['telegram'], timeout: 1_800_000, on_timeout: 'record_only' },
    });
    expect(policy.trace).toMatchObject({
      layers: ['builtin', 'defaults', 'mission:forge', 'agent:bezalel'],
      mission: 'forge',
      mission_from: 'cell',
      fields: {
        mode: 'defaults',
        dead_after: 'mission:forge',
        'backoff.initial': 'defaults',
        'backoff.cap': 'mission:forge',
        'backoff.factor': 'agent:bezalel',
        'backoff.jitter': 'builtin',
      },
    });
  });

  it('never lists an agent among its own substitutes', () => {
    expect(resolvePolicy({ config, agent: 'bezalel' }).substitutes).toEqual(['allegro']);
  });

  it('uses the mission named by the override', () => {
    const policy = resolvePolicy({ config, agent: 'ezra', mission: 'forge' });
    expect(policy).toMatchObject({ mission: 'archive', mode: 'ask', dead_after: 60_000 });
    expect(policy.trace.mission_from).toBe('agent_override');
  });

  it('resolves an agent without a mission or override to the defaults', () => {
    const policy = resolvePolicy({ config, agent: 'stranger' });
    expect(policy.mission).toBeUndefined();
    expect(policy.trace.layers).toEqual(['builtin', 'defaults']);
    expect(policy.on_failure).toEqual(BUILTIN_POLICY.on_failure);
  });

  it('returns copies that cannot change the config or the built-in defaults', () => {
    const policy = resolvePolicy({ config, agent: 'stranger' });
    policy.approval.channels.push('nostr');
    policy.substitutes.push('x');
    expect(config.defaults.approval?.channels).toEqual(['telegram']);
    expect(BUILTIN_POLICY.substitutes).toEqual([]);
  });

  it('takes every key from the highest layer that sets it (property)', () => {
    const layer = fc.record(
      {
        mode: fc.constantFrom('auto', 'yes', 'ask', 'never', 'no', 'substitute'),
        dead_after: fc.integer({ min: 0, max: 10_000 }),
        max_revive_attempts: fc.integer({ min: 1, max: 50 }),
        backoff: fc.record(
          { initial: fc.integer({ min: 0, max: 100 }), factor: fc.integer({ min: 1, max: 5 }) },
          { requiredKeys: [] },
        ),
        on_failure: fc.record(
          {
            stuck: fc.constantFrom('restart', 'record_only'),
            crashed: fc.constantFrom('restart', 'substitute'),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        layer,
        layer,
        layer,
        fc.boolean(),
        (defaults, mission, agent, overrideMission) => {
          const parsed = PolicyConfigSchema.parse({
            defaults,
            missions: { m: mission, other: { mode: 'never' } },
            agents: { a: overrideMission ? { ...agent, mission: 'm' } : agent },
          });
          const policy = resolvePolicy(
            overrideMission
              ? { config: parsed, agent: 'a', mission: 'other' }
              : { config: parsed, agent: 'a', mission: 'm' },
          );
          const layers = [
            parsed.defaults,
            parsed.missions.m,
            parsed.agents.a,
          ] as PolicyLayerInput[];
          const pick = (get: (value: PolicyLayerInput) => unknown, fallback: unknown) =>
            layers.reduce<unknown>((value, current) => get(current) ?? value, fallback);
          expect(policy.mode).toBe(pick((value) => value.mode, 'auto'));
          expect(policy.dead_after).toBe(pick((value) => value.dead_after, 0));
          expect(policy.max_revive_attempts).toBe(
            pick((value) => value.max_revive_attempts, BUILTIN_POLICY.max_revive_attempts),
          );
          expect(policy.backoff.initial).toBe(
            pick((value) => value.backoff?.initial, BUILTIN_POLICY.backoff.initial),
          );
          expect(policy.backoff.factor).toBe(
            pick((value) => value.backoff?.factor, BUILTIN_POLICY.backoff.factor),
          );
          expect(policy.on_failure.stuck).toBe(pick((value) => value.on_failure?.stuck, 'restart'));
          expect(policy.on_failure.crashed).toBe(
            pick((value) => value.on_failure?.crashed, 'restart'),
          );
          expect(policy.mission).toBe('m');
        },
      ),
    );
  });
});

describe('resolvePolicyMemo', () => {
  it('gives agents without an override one shared resolution, and each agent the answers resolvePolicy gives but its name', async () => {
    const { resolvePolicyMemo } = await import('./resolve-policy.js');
    const config = PolicyConfigSchema.parse({
      defaults: { substitutes: ['spare', 'forge'], backoff: { cap: '5m' } },
      missions: { m: { mode: 'ask' } },
      agents: { ezra: { mode: 'never' } },
    });
    const a = resolvePolicyMemo(config, 'agent-1', 'm');
    const b = resolvePolicyMemo(config, 'agent-2', 'm');
    expect(a).toBe(b);
    expect(a).not.toHaveProperty('agent');
    expect(resolvePolicyMemo(config, 'ezra', 'm')).not.toBe(a);
    expect(resolvePolicyMemo(config, 'forge', 'm')).not.toBe(a);
    expect(resolvePolicyMemo(config, 'agent-3', undefined)).not.toBe(a);
    for (const [agent, mission] of [
      ['agent-1', 'm'],
      ['agent-2', 'm'],
      ['agent-3', undefined],
      ['ezra', 'm'],
      ['forge', 'm'],
      ['spare', undefined],
    ] as const) {
      const { agent: _name, ...expected } = resolvePolicy(
        mission === undefined ? { config, agent } : { config, agent, mission },
      );
      const { agent: _own, ...memo } = resolvePolicyMemo(config, agent, mission) as {
        agent?: string;
      };
      expect(JSON.parse(JSON.stringify(memo))).toEqual(JSON.parse(JSON.stringify(expected)));
    }
    // An agent named among the substitutes never appears in its own.
    expect(resolvePolicyMemo(config, 'forge', 'm').substitutes).toEqual(['spare']);
    expect(resolvePolicyMemo(config, 'ezra', 'm').mode).toBe('never');
    expect(Object.isFrozen(a)).toBe(true);
  });
});

describe('describePolicySource', () => {
  it('names each layer the way the config file spells it', () => {
    expect(describePolicySource('builtin')).toBe('built-in default');
    expect(describePolicySource('defaults')).toBe('[policy.defaults]');
    expect(describePolicySource('mission:forge')).toBe('[policy.missions.forge]');
    expect(describePolicySource('mission:Port the parser')).toBe(
      '[policy.missions."Port the parser"]',
    );
    expect(describePolicySource('agent:ezra')).toBe('[policy.agents.ezra]');
  });
});
