/**
 * The seed fleet the example policy (`seed-policy.toml`) is written for: what the daemon would
 * pass to `validatePolicy` and to `decide`.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import {
  parsePolicy,
  type AgentRef,
  type FleetAgent,
  type FleetView,
  type PolicyConfig,
  type PolicyContext,
} from '../index.js';

/** The seed policy as written: the `[policy]` section of `pit.toml`. */
export const SEED_POLICY_TOML = readFileSync(
  new URL('./seed-policy.toml', import.meta.url),
  'utf8',
);

/** The `[policy]` table of the seed `pit.toml`, parsed from TOML but not yet validated. */
export function seedPolicyInput(): unknown {
  return (parse(SEED_POLICY_TOML) as { policy: unknown }).policy;
}

/**
 * The agents of the seed fleet as `decide` sees them. bezalel runs on another host that the Pit
 * cannot restart it on, so it relies on its substitutes (allegro, then timmy).
 */
export const SEED_AGENTS: Record<'bezalel' | 'allegro' | 'ezra' | 'timmy', AgentRef> = {
  bezalel: { name: 'bezalel', mission: 'forge', local: false },
  allegro: { name: 'allegro', mission: 'forge' },
  // ezra is a gateway outside any cell: its policy override puts it in the archive mission.
  ezra: { name: 'ezra' },
  timmy: { name: 'timmy', mission: 'sovereign-core' },
};

/** What exists around the seed policy. */
export const SEED_CONTEXT: PolicyContext = {
  agents: [
    { name: 'bezalel', mission: 'forge' },
    { name: 'allegro', mission: 'forge' },
    { name: 'timmy', mission: 'sovereign-core' },
    'ezra',
  ],
  missions: ['forge', 'archive', 'sovereign-core'],
  approvalChannels: ['telegram', 'cli', 'nostr'],
};

/** The seed policy, parsed and validated against the seed fleet. */
export function seedConfig(): PolicyConfig {
  return parsePolicy(seedPolicyInput(), SEED_CONTEXT);
}

/** A fixed moment for the scenarios: 2026-11-22T12:00:00Z. */
export const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);

/** ms in a second, a minute, an hour. */
export const SECOND = 1_000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;

/** A fleet view of the four seed agents, all healthy unless overridden. */
export function seedFleet(overrides: Partial<Record<string, Partial<FleetAgent>>> = {}): FleetView {
  return {
    agents: ['bezalel', 'allegro', 'ezra', 'timmy'].map((name) => ({
      name,
      state: 'healthy' as const,
      since: NOW - 2 * HOUR,
      ...overrides[name],
    })),
  };
}
