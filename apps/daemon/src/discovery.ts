/**
 * Discovery: reads the cells root and the config and says which agents should be supervised
 * now, as a diff against the fleet (added, changed, removed), with every problem found on the way
 * (a corrupt manifest, a policy naming an agent that does not exist). It reads and compares
 * only; fleet-sync.ts applies the diff.
 */
import { describeDiscoveryProblem, discoverCells } from '@pit/cell-spec';
import { formatPolicyProblems, validatePolicy } from '@pit/policy';
import type { AgentConfig, PitConfig } from './config-schema.js';
import { approvalChannels } from './effective-policy.js';
import { HOST, type Slot, type SlotCell } from './slot.js';

/** An agent that should be supervised. */
export interface WantedAgent {
  key: string;
  name: string;
  cell?: SlotCell;
  config: AgentConfig | undefined;
  /** The config as JSON, to notice a change. */
  configJson: string;
}

/** What changed between the fleet and what discovery found. */
export interface FleetDiff {
  /** Seen for the first time. */
  added: WantedAgent[];
  /** Still wanted: its cell (manifest, directory) is refreshed; `configChanged` when its config differs. */
  kept: Array<{ slot: Slot; want: WantedAgent; configChanged: boolean }>;
  /** No longer wanted. */
  removed: Slot[];
}

/** One discovery pass's findings. */
export interface Discovered {
  wanted: Map<string, WantedAgent>;
  problems: string[];
  /** The cells root or cell directories that could not be read (EMFILE, EIO…): what they hold is unknown, not gone. */
  unreadable: string[];
}

/** Discovery with its memory of the last policy check (re-validated only when something it names changed). */
export interface Discovery {
  discover(config: PitConfig, policyInput: unknown): Promise<Discovered>;
}

/** Creates a discovery. */
export function createDiscovery(): Discovery {
  let policyCheck:
    { input: unknown; config: PitConfig; fleet: string; problem: string | undefined } | undefined;
  const checkPolicy = (
    config: PitConfig,
    policyInput: unknown,
    wanted: Iterable<WantedAgent>,
    missions: Set<string>,
  ) => {
    // Checked again only when the policy or the fleet it names changed (a discovery every poll
    // over 10,000 agents would otherwise re-validate them all, ~100 ms of a blocked loop each time).
    const agents = [...wanted]
      .map((agent) => ({
        name: agent.name,
        ...(agent.cell ? { mission: agent.cell.manifest.mission } : {}),
      }))
      .concat(Object.keys(config.agents).map((name) => ({ name })));
    const fleet = `${agents.map((agent) => `${agent.name}\0${agent.mission ?? ''}`).join('\n')}\n\n${[...missions].join('\n')}`;
    const last = policyCheck;
    if (last && last.input === policyInput && last.config === config && last.fleet === fleet) {
      return last.problem;
    }
    const checked = validatePolicy(policyInput, {
      agents,
      missions: [...missions, ...Object.keys(config.policy.missions)],
      approvalChannels: approvalChannels(config),
    });
    const problem = checked.ok
      ? undefined
      : `policy: ${formatPolicyProblems(checked.problems, 'policy')}`;
    policyCheck = { input: policyInput, config, fleet, problem };
    return problem;
  };
  return {
    async discover(config, policyInput) {
      const discovery = await discoverCells(config.cells.root);
      const problems = discovery.problems.map(describeDiscoveryProblem);
      const wanted = new Map<string, WantedAgent>();
      const want = (agent: Omit<WantedAgent, 'configJson'>) =>
        wanted.set(agent.key, { ...agent, configJson: JSON.stringify(agent.config ?? null) });
      for (const cell of discovery.supervised) {
        for (const agent of cell.manifest.agents) {
          const agentConfig = config.agents[agent.name];
          if (agentConfig && agentConfig.cell !== undefined && agentConfig.cell !== cell.uuid)
            continue;
          const slotCell = {
            uuid: cell.uuid,
            dir: cell.dir,
            manifest: cell.manifest,
            role: agent.role,
          };
          want({
            key: `${cell.uuid}/${agent.name}`,
            name: agent.name,
            cell: slotCell,
            config: agentConfig,
          });
        }
      }
      for (const [name, agentConfig] of Object.entries(config.agents)) {
        if (agentConfig.cell === 'none')
          want({ key: `${HOST}/${name}`, name, config: agentConfig });
      }
      if (policyInput !== undefined) {
        const missions = new Set(discovery.supervised.map((cell) => cell.manifest.mission));
        const problem = checkPolicy(config, policyInput, wanted.values(), missions);
        if (problem) problems.push(problem);
      }
      const unreadable = discovery.problems
        .filter((problem) => problem.kind === 'unreadable')
        .map((problem) => problem.path);
      return { wanted, problems, unreadable };
    },
  };
}

/** The diff between the fleet and the agents wanted. Pure. */
export function diffFleet(
  slots: ReadonlyMap<string, Slot>,
  wanted: ReadonlyMap<string, WantedAgent>,
): FleetDiff {
  const diff: FleetDiff = { added: [], kept: [], removed: [] };
  for (const want of wanted.values()) {
    const slot = slots.get(want.key);
    if (slot) diff.kept.push({ slot, want, configChanged: slot.configJson !== want.configJson });
    else diff.added.push(want);
  }
  for (const [key, slot] of slots) if (!wanted.has(key)) diff.removed.push(slot);
  return diff;
}
