/**
 * Settings given on the command line (`pit daemon|sweep --poll-interval S --dead-threshold S`,
 * the flags of the first daemons) laid over a loaded config: the command line wins over the
 * file, at every load and reload. This module owns which key each flag sets; it never reads a
 * file or the environment.
 */
import type { LoadedConfig } from './config.js';

/** Command-line settings that override the config file. */
export interface ConfigOverrides {
  /** `--poll-interval S`: sets `[cells] poll_interval_s` (s, > 0). */
  pollIntervalS?: number;
  /**
   * `--dead-threshold S`: sets `[policy.defaults] dead_after` (s, ≥ 0): how long an agent whose
   * death the Pit infers must have been dead before the Pit acts. Missions and agents that set
   * their own `dead_after` keep it.
   */
  deadThresholdS?: number;
}

/**
 * The loaded config with `overrides` applied (a new object; `loaded` is left as it is).
 * @example
 * const loaded = applyConfigOverrides(await loadConfig(...), { pollIntervalS: 15 });
 */
export function applyConfigOverrides(
  loaded: LoadedConfig,
  overrides: ConfigOverrides | undefined,
): LoadedConfig {
  if (!overrides) return loaded;
  const { pollIntervalS, deadThresholdS } = overrides;
  if (pollIntervalS === undefined && deadThresholdS === undefined) return loaded;
  const config = structuredClone(loaded.config);
  let policyInput = loaded.policyInput;
  if (pollIntervalS !== undefined) config.cells.poll_interval_s = pollIntervalS;
  if (deadThresholdS !== undefined) {
    config.policy.defaults.dead_after = deadThresholdS * 1000;
    const input = (policyInput ?? {}) as { defaults?: Record<string, unknown> };
    policyInput = { ...input, defaults: { ...input.defaults, dead_after: deadThresholdS } };
  }
  return { ...loaded, config, policyInput };
}
