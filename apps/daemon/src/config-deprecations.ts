/**
 * Config keys kept for existing fleets whose setting now lives elsewhere: which they are, where
 * each setting lives now, and the notice that says so. The keys stay accepted (fleets upgraded
 * from the first daemon still write `[cells] resurrect_after_s`); `[policy.defaults]` is the one
 * home, and the only default, of each setting (@pit/policy's built-in when neither is set).
 * Pure; reads a parsed config, never the disk.
 */
import { formatDuration } from '@pit/policy';
import type { PitConfig } from './config-schema.js';

/** An older key that was set, and what to write instead. */
export interface DeprecatedKey {
  /** Key path of the older key (`cells.resurrect_after_s`). */
  path: string[];
  message: string;
}

/** One older key and the `[policy.defaults]` key that replaced it. */
interface MovedKey {
  section: 'cells';
  key: 'resurrect_after_s' | 'max_revive_attempts';
  current: 'dead_after' | 'max_revive_attempts';
  /** The older key's value as the current key takes it (`dead_after` is a duration). */
  convert(value: number): number;
  /** The value as it would be written in TOML under the current key. */
  write(value: number): string;
}

const MOVED_KEYS: readonly MovedKey[] = [
  {
    section: 'cells',
    key: 'resurrect_after_s',
    current: 'dead_after',
    convert: (seconds) => seconds * 1000,
    write: (seconds) => JSON.stringify(formatDuration(seconds * 1000)),
  },
  {
    section: 'cells',
    key: 'max_revive_attempts',
    current: 'max_revive_attempts',
    convert: (count) => count,
    write: (count) => String(count),
  },
];

/**
 * The `[policy.defaults]` values that older keys supply: each older key that is set, unless
 * `[policy.defaults]` sets the same setting itself (then that one wins).
 */
export function movedDefaults(config: PitConfig): {
  dead_after?: number;
  max_revive_attempts?: number;
} {
  const moved: { dead_after?: number; max_revive_attempts?: number } = {};
  for (const entry of MOVED_KEYS) {
    const value = config[entry.section][entry.key];
    if (value !== undefined && config.policy.defaults[entry.current] === undefined)
      moved[entry.current] = entry.convert(value);
  }
  return moved;
}

/**
 * The older keys set in `config`, each with the key to use instead (or, when both are set,
 * that the older one is ignored).
 * @example
 * findDeprecatedKeys(config);
 * // [{ path: ['cells', 'resurrect_after_s'], message: 'deprecated: write dead_after = "2m" under [policy.defaults] instead' }]
 */
export function findDeprecatedKeys(config: PitConfig): DeprecatedKey[] {
  const found: DeprecatedKey[] = [];
  for (const entry of MOVED_KEYS) {
    const value = config[entry.section][entry.key];
    if (value === undefined) continue;
    const replaced = config.policy.defaults[entry.current] !== undefined;
    found.push({
      path: [entry.section, entry.key],
      message: replaced
        ? `deprecated and ignored: [policy.defaults] sets ${entry.current}, which wins; remove this key`
        : `deprecated: write ${entry.current} = ${entry.write(value)} under [policy.defaults] instead`,
    });
  }
  return found;
}
