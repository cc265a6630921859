/**
 * The policy the loop runs: the config's `[policy]` table completed from the older `[cells]`
 * and `[agents]` keys, and the approval channels the daemon offers. Pure; owns no state.
 */
import type { PolicyConfig } from '@pit/policy';
import { movedDefaults } from './config-deprecations.js';
import type { PitConfig } from './config-schema.js';

/** The approval channels the daemon offers: the CLI and HTTP always, Telegram and Nostr when configured. */
export function approvalChannels(config: PitConfig): string[] {
  return [
    'cli',
    'http',
    ...(config.telegram ? ['telegram'] : []),
    ...(config.nostr ? ['nostr'] : []),
  ];
}

/**
 * The policy the loop uses: `[policy]`, with the older `cells.resurrect_after_s` and
 * `cells.max_revive_attempts` as the defaults' `dead_after` and `max_revive_attempts` when
 * they are set and `[policy.defaults]` does not set those itself (see ./config-deprecations.ts;
 * when neither is set, @pit/policy's built-in default applies), and each agent's `substitutes`
 * from `[agents.<name>]` when `[policy.agents.<name>]` does not name any.
 */
export function effectivePolicy(config: PitConfig): PolicyConfig {
  const defaults = { ...config.policy.defaults, ...movedDefaults(config) };
  const agents = { ...config.policy.agents };
  for (const [name, agent] of Object.entries(config.agents)) {
    if (agent.substitutes.length > 0 && agents[name]?.substitutes === undefined)
      agents[name] = { ...agents[name], substitutes: agent.substitutes };
  }
  return { ...config.policy, defaults, agents };
}
