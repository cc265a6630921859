/**
 * The seed fleet the example policy (`seed-policy.toml`) is written for: what the daemon would
 * pass to `validatePolicy` and to `decide`.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import type { AgentRef, PolicyContext } from '../index.js';

/** The seed policy as written: the `[policy]` section of `pit.toml`. */
export const SEED_POLICY_TOML = readFileSync(new URL('./seed-policy.toml', import.meta.url), 'utf8');

/** The `[policy]` table of the seed `pit.toml`, parsed from TOML but not yet validated. */
export function seedPolicyInput(): unknown {
  return (parse(SEED_POLICY_TOML) as { policy: unknown }).policy;
}

/** The agents of the seed fleet as `decide` sees them; allegro runs on another host. */
export const SEED_AGENTS: Record<'bezalel' | 'allegro' | 'ezra' | 'timmy', AgentRef> = {
  bezalel: { name: 'bezalel', mission: 'forge' },
  allegro: { name: 'allegro', mission: 'forge', local: false, restartable: true },
  // ezra is a gateway outside any cell: its policy override puts it in the archive mission.
  ezra: { name: 'ezra' },
  timmy: { name: 'timmy', mission: 'sovereign-core' },
};

/** What exists around the seed policy. */
export const SEED_CONTEXT: PolicyContext = {
  agents: [{ name: 'bezalel', mission: 'forge' }, { name: 'allegro', mission: 'forge' }, { name: 'timmy', mission: 'sovereign-core' }, 'ezra'],
  missions: ['forge', 'archive', 'sovereign-core'],
  approvalChannels: ['telegram', 'cli', 'nostr'],
};
