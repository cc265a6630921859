import type { AgentConfig } from './config-schema.js';

/** Variables of the daemon's environment every agent inherits (never secrets). */
export const INHERITED_ENV = [
  'PATH',
  'HOME',
  'LANG',
  'LC_ALL',
  'TZ',
  'USER',
  'LOGNAME',
  'TMPDIR',
] as const;

/**
 * An agent's whole environment: a few harmless variables of the daemon's (PATH, HOME, LANG…),
 * the config's literal `env`, then the daemon variables named in `env_from` (how secrets
 * reach an agent). The executor adds LAZARUS_CELL_UUID and LAZARUS_AGENT.
 * @returns the environment and the `env_from` names that were not set.
 */
export function composeAgentEnv(
  agent: Pick<AgentConfig, 'env' | 'env_from'>,
  daemonEnv: Record<string, string | undefined>,
): { env: Record<string, string>; missing: string[] } {
  const env: Record<string, string> = {};
  for (const name of INHERITED_ENV) {
    const value = daemonEnv[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, agent.env);
  const missing: string[] = [];
  for (const name of agent.env_from) {
    const value = daemonEnv[name];
    if (value === undefined) missing.push(name);
    else env[name] = value;
  }
  return { env, missing };
}
