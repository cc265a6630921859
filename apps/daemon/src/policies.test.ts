import { join } from 'node:path';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { makeCell } from '../test/helpers.js';
import { testConfig } from '../test/fleet.js';
import { resolveAgentPolicies } from './policies.js';
import { effectivePolicy } from './effective-policy.js';
import { BUILTIN_POLICY, resolvePolicy } from '@pit/policy';

afterEach(cleanup);

describe('resolveAgentPolicies', () => {
  it('resolves every agent of every cell with its mission, and configured agents outside cells', async () => {
    const base = await tempDir();
    const cell = await makeCell([{ name: 'forge' }, { name: 'scribe' }], join(base, 'missions'));
    const { config } = testConfig(
      [
        '[cells]',
        'root = "missions"',
        'resurrect_after_s = 30',
        '[policy.missions."test mission"]',
        'mode = "ask"',
        'approval = { channels = ["http"] }',
        '[policy.agents.forge]',
        'mode = "never"',
        '[agents.forge]',
        'argv = ["x"]',
        '[agents.gateway]',
        'cell = "none"',
        'cwd = "/"',
        'argv = ["y"]',
      ].join('\n'),
      base,
    );
    const reports = await resolveAgentPolicies(config);
    const byName = Object.fromEntries(reports.map((report) => [report.agent, report]));
    expect(byName.forge).toMatchObject({
      cell: cell.uuid,
      mission: 'test mission',
      configured: true,
      policy: { mode: 'never' },
    });
    expect(byName.scribe).toMatchObject({
      cell: cell.uuid,
      configured: false,
      policy: { mode: 'ask', dead_after: 30_000 },
    });
    expect(byName.gateway).toMatchObject({ configured: true, policy: { mode: 'auto' } });
    expect(byName.gateway?.cell).toBeUndefined();
    expect(byName.scribe?.policy.trace.layers).toEqual([
      'builtin',
      'defaults',
      'mission:test mission',
    ]);
  });
});

describe('effectivePolicy', () => {
  it('takes dead_after and max_revive_attempts from [cells] and substitutes from [agents] unless the policy sets them', () => {
    const { config } = testConfig(
      '[cells]\nresurrect_after_s = 7\nmax_revive_attempts = 2\n[agents.forge]\nargv = ["x"]\nsubstitutes = ["anvil"]\n[agents.anvil]\nargv = ["y"]\n[policy.agents.anvil]\nsubstitutes = []\n',
      '/',
    );
    const policy = effectivePolicy(config);
    expect(policy.defaults).toMatchObject({ dead_after: 7000, max_revive_attempts: 2 });
    expect(policy.agents.forge?.substitutes).toEqual(['anvil']);
    expect(policy.agents.anvil?.substitutes).toEqual([]);
    const set = testConfig('[policy.defaults]\ndead_after = "1s"\n', '/').config;
    expect(effectivePolicy(set).defaults.dead_after).toBe(1000);
    const both = testConfig(
      '[cells]\nresurrect_after_s = 7\n[policy.defaults]\ndead_after = "1s"\n',
      '/',
    ).config;
    expect(effectivePolicy(both).defaults.dead_after).toBe(1000);
  });

  it("has one default for each setting: @pit/policy's built-in, when neither key is set", () => {
    const policy = resolvePolicy({
      config: effectivePolicy(testConfig('', '/').config),
      agent: 'forge',
    });
    expect(policy).toMatchObject({
      dead_after: BUILTIN_POLICY.dead_after,
      max_revive_attempts: BUILTIN_POLICY.max_revive_attempts,
    });
    expect(policy.trace.fields.dead_after ?? 'builtin').toBe('builtin');
  });
});
