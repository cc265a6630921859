/**
 * Discovery: reads the cells root and the config and says which agents should be supervised
 * now, as a diff against the fleet (added, changed, removed), with every problem found on the way
 * (a corrupt manifest, a policy naming an agent that does not exist, a manifest entry the
 * operator never granted, a `home` in a manifest). An agent in a cell is wanted only when the
 * operator granted it that cell (membership.ts); the rest is refused and reported. It reads and
 * compares only (but for membership's one-time migration); fleet-sync.ts applies the diff.
 */
import {
  describeDiscoveryProblem,
  discoverCells,
  silentLogger,
  type DiscoveredCell,
  type Logger,
} from '@pit/cell-spec';
import { formatPolicyProblems, validatePolicy } from '@pit/policy';
import type { AgentConfig, PitConfig } from './config-schema.js';
import { approvalChannels } from './effective-policy.js';
import { hash53 } from './hash53.js';
import {
  grantOf,
  grantsOf,
  loadMembers,
  type MemberGrants,
  type MembersRead,
} from './membership.js';
import { HOST, type Slot, type SlotCell } from './slot.js';

/** An agent that should be supervised. */
export interface WantedAgent {
  key: string;
  name: string;
  cell?: SlotCell;
  config: AgentConfig | undefined;
  /** A hash of the config's JSON, to notice a change (hash53.ts: no copy of the JSON per agent). */
  configHash: number;
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

/** Something a cell's manifest asked for that the daemon refused: reported once per daemon. */
export interface Refusal {
  cell: { uuid: string; dir: string };
  agent: string;
  /** What was refused: the agent's entry (`agents`) or the `home` it names. */
  field: 'agents' | 'home';
  reason: string;
}

/** One discovery pass's findings. */
export interface Discovered {
  wanted: Map<string, WantedAgent>;
  problems: string[];
  /** The cells root or cell directories that could not be read (EMFILE, EIO…): what they hold is unknown, not gone. */
  unreadable: string[];
  refused: Refusal[];
}

/** Discovery with its memory of the last policy check (re-validated only when something it names changed). */
export interface Discovery {
  discover(config: PitConfig, policyInput: unknown): Promise<Discovered>;
}

/** Options of {@link createDiscovery}. */
export interface DiscoveryOptions {
  /** For membership's one-time migration notice. @default silentLogger */
  logger?: Logger;
  /** @default Date.now */
  now?: () => number;
}

/** Creates a discovery. */
export function createDiscovery(options: DiscoveryOptions = {}): Discovery {
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? Date.now;
  let lastGrants: MemberGrants | undefined;
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
      const membership = await loadMembers({
        stateDir: config.daemon.state_dir,
        cells: discovery.supervised.map((cell) => ({
          uuid: cell.uuid,
          agents: cell.manifest.agents.map((agent) => agent.name),
        })),
        now: new Date(now()),
        logger,
      });
      if (membership.problem) problems.push(membership.problem);
      const grants = grantsInForce(membership, lastGrants, problems);
      lastGrants = grants.keep;
      const wanted = new Map<string, WantedAgent>();
      const want = (agent: Omit<WantedAgent, 'configHash'>) =>
        wanted.set(agent.key, { ...agent, configHash: configHashOf(agent.config) });
      const refused: Refusal[] = [];
      for (const cell of discovery.supervised) {
        for (const agent of cellAgents(config, grants.now, cell, refused)) want(agent);
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
      for (const refusal of refused)
        problems.push(`${refusal.cell.dir}/cell.json: ${refusal.agent}: ${refusal.reason}`);
      return { wanted, problems, unreadable, refused };
    },
  };
}

/** The hash of each agent config object's JSON: a config is parsed once per load and never changed after. */
const configHashes = new WeakMap<AgentConfig, number>();

/** The hash of an agent without a config of its own (`null` as JSON). */
const NO_CONFIG_HASH = hash53('null');

/** The hash of an agent's config (hash53 of its JSON), computed once per config object. */
function configHashOf(config: AgentConfig | undefined): number {
  if (config === undefined) return NO_CONFIG_HASH;
  let hash = configHashes.get(config);
  if (hash === undefined) configHashes.set(config, (hash = hash53(JSON.stringify(config))));
  return hash;
}

/**
 * A members file that cannot be read now (damaged, or an I/O error) grants what it granted when it
 * last could: a read error never un-supervises an agent. Returns the grants in force now and the
 * grants to remember (without their times: {@link grantsOf}).
 */
function grantsInForce(
  membership: MembersRead,
  last: MemberGrants | undefined,
  problems: string[],
): { now: MemberGrants; keep: MemberGrants | undefined } {
  if (!membership.problem) {
    const grants = grantsOf(membership.members);
    return { now: grants, keep: grants };
  }
  if (membership.exists && last) {
    problems.push(
      'membership: the grants last read from members.json stay in force until it can be read again',
    );
    return { now: last, keep: last };
  }
  return { now: membership.members, keep: last };
}

/** The agents of one cell the operator granted; the rest (and any manifest `home`) into `refused`. */
export function cellAgents(
  config: PitConfig,
  members: MemberGrants,
  cell: DiscoveredCell,
  refused: Refusal[],
): Array<Omit<WantedAgent, 'configHash'>> {
  const where = { uuid: cell.uuid, dir: cell.dir };
  const agents: Array<Omit<WantedAgent, 'configHash'>> = [];
  // One frozen SlotCell for the agents of one role (a cell's 100 workers share one).
  const byRole = new Map<string, SlotCell>();
  for (const agent of cell.manifest.agents) {
    if (agent.home !== undefined)
      refused.push({
        cell: where,
        agent: agent.name,
        field: 'home',
        reason: `home ${JSON.stringify(agent.home)} in cell.json is ignored: an agent's home comes only from [agents.${agent.name}] home in the config`,
      });
    const agentConfig = config.agents[agent.name];
    if (grantOf(config, members, cell.uuid, agent.name) === undefined) {
      refused.push({
        cell: where,
        agent: agent.name,
        field: 'agents',
        reason: `not started: ${agent.name} is listed in cell.json but not granted this cell by the operator (config cell/cells, pit cell create or pit cell join)`,
      });
      continue;
    }
    let slotCell = byRole.get(agent.role);
    if (slotCell === undefined) {
      slotCell = Object.freeze({
        uuid: cell.uuid,
        dir: cell.dir,
        manifest: cell.manifest,
        role: agent.role,
      });
      byRole.set(agent.role, slotCell);
    }
    agents.push({
      key: `${cell.uuid}/${agent.name}`,
      name: agent.name,
      cell: slotCell,
      config: agentConfig,
    });
  }
  return agents;
}

/** The diff between the fleet and the agents wanted. Pure. */
export function diffFleet(
  slots: ReadonlyMap<string, Slot>,
  wanted: ReadonlyMap<string, WantedAgent>,
): FleetDiff {
  const diff: FleetDiff = { added: [], kept: [], removed: [] };
  for (const want of wanted.values()) {
    const slot = slots.get(want.key);
    if (slot) diff.kept.push({ slot, want, configChanged: slot.configHash !== want.configHash });
    else diff.added.push(want);
  }
  for (const [key, slot] of slots) if (!wanted.has(key)) diff.removed.push(slot);
  return diff;
}
