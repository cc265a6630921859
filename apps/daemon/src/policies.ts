import { discoverCells } from '@pit/cell-spec';
import { resolvePolicy, type ResolvedPolicy } from '@pit/policy';
import type { PitConfig } from './config-schema.js';
import { effectivePolicy } from './effective-policy.js';

/** One agent's resolved policy, as `pit config check` prints it. */
export interface AgentPolicyReport {
  agent: string;
  /** The cell it was found in (agents listed in a cell's manifest). */
  cell?: string;
  mission?: string;
  /** Whether `[agents.<name>]` configures how to run it. */
  configured: boolean;
  policy: ResolvedPolicy;
}

/**
 * The resolved policy of every agent the daemon would supervise: each agent of each active or
 * frozen cell (with its cell's mission) and each configured agent found in no cell, in the
 * order defaults → mission → agent override, with the trace of which layer set each key.
 * @example
 * for (const { agent, policy } of await resolveAgentPolicies(config)) console.log(agent, policy.mode, policy.trace.fields.mode);
 */
export async function resolveAgentPolicies(config: PitConfig): Promise<AgentPolicyReport[]> {
  const policy = effectivePolicy(config);
  const reports: AgentPolicyReport[] = [];
  const seen = new Set<string>();
  const discovery = await discoverCells(config.cells.root);
  for (const cell of discovery.supervised) {
    for (const agent of cell.manifest.agents) {
      const agentConfig = config.agents[agent.name];
      if (agentConfig?.cell !== undefined && agentConfig.cell !== cell.uuid) continue;
      seen.add(agent.name);
      reports.push({
        agent: agent.name,
        cell: cell.uuid,
        mission: cell.manifest.mission,
        configured: agentConfig !== undefined,
        policy: resolvePolicy({
          config: policy,
          agent: agent.name,
          mission: cell.manifest.mission,
        }),
      });
    }
  }
  for (const name of Object.keys(config.agents)) {
    if (seen.has(name)) continue;
    reports.push({
      agent: name,
      configured: true,
      policy: resolvePolicy({ config: policy, agent: name }),
    });
  }
  return reports;
}
