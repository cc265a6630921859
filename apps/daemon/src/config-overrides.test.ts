import { describe, expect, it } from 'vitest';
import { parseConfig, type LoadedConfig } from './config.js';
import { applyConfigOverrides } from './config-overrides.js';

function loaded(text: string): LoadedConfig {
  const parsed = parseConfig(text, 'toml');
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return {
    config: parsed.config,
    source: 'flag',
    baseDir: '/',
    secrets: [],
    policyInput: parsed.policyInput,
    notices: [],
    warnings: [],
  };
}

describe('applyConfigOverrides', () => {
  it('lays the command line over the file: poll_interval_s and [policy.defaults] dead_after', () => {
    const file = loaded(
      '[cells]\npoll_interval_s = 30\n[policy.defaults]\ndead_after = "2m"\nmode = "ask"\n[policy.missions.forge]\ndead_after = "5m"\n',
    );
    const result = applyConfigOverrides(file, { pollIntervalS: 15, deadThresholdS: 60 });
    expect(result.config.cells.poll_interval_s).toBe(15);
    expect(result.config.policy.defaults).toMatchObject({ dead_after: 60_000, mode: 'ask' });
    // A mission that sets its own keeps it.
    expect(result.config.policy.missions.forge?.dead_after).toBe(300_000);
    expect(result.policyInput).toMatchObject({ defaults: { dead_after: 60, mode: 'ask' } });
    // The loaded config itself is left as it was (a reload starts from the file again).
    expect(file.config.cells.poll_interval_s).toBe(30);
    expect(file.config.policy.defaults.dead_after).toBe(120_000);
  });

  it('returns the loaded config as it is when nothing is overridden', () => {
    const file = loaded('');
    expect(applyConfigOverrides(file, undefined)).toBe(file);
    expect(applyConfigOverrides(file, {})).toBe(file);
  });
});
