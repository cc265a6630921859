/**
 * One supervised agent as the loop holds it (a slot): who it is, where it lives, how it is
 * supervised (managed: the Pit starts and restarts it; observed: it only watches it), its probe
 * verdicts and its persisted state. Also the small facts derived from a slot that several
 * modules need (its key, its container name, its own home, where a relative path points).
 * Owns no behaviour: the modules that act on slots take them as arguments.
 */
import { isAbsolute, resolve } from 'node:path';
import type { AgentState, CellManifest } from '@pit/cell-spec';
import type { HealthyPeriod } from '@pit/policy';
import { agentLogPaths } from './agent-log.js';
import type { AgentConfig, PitConfig } from './config-schema.js';
import type { AgentExit, AgentProcess } from './executor.js';

/** The scope of agents configured outside cells (`host/<name>`), and their state's target. */
export const HOST = 'host';

/** A config that lets the Pit start the agent: a command, run on this host. */
export type ManagedAgentConfig = AgentConfig & { argv: string[]; host: 'local' };

/**
 * How an agent is supervised. Managed: the Pit started it (or adopted it) and restarts it; its
 * process is watched. Observed: it runs elsewhere or has no command; only its probes are read.
 */
export type Supervision =
  | { mode: 'managed'; config: ManagedAgentConfig }
  | { mode: 'observed'; config: AgentConfig | undefined };

/** The cell an agent was found in. */
export interface SlotCell {
  uuid: string;
  dir: string;
  manifest: CellManifest;
  /** The agent's role in the cell's manifest. */
  role: string;
}

/** One supervised agent. */
export interface Slot {
  /** `<cell uuid>/<name>`, or `host/<name>` outside cells. */
  key: string;
  name: string;
  cell?: SlotCell;
  supervision: Supervision;
  state: AgentState;
  /** Recent healthy periods (ms), for the policy's backoff reset. */
  healthy: HealthyPeriod[];
  /** The process the Pit started or adopted. */
  process?: AgentProcess;
  /** How that process ended, once it did (or `vanished` when it could not be found or started). */
  exit?: AgentExit;
  /** Evaluations run one at a time per agent: the last one queued, until it ends (none held while idle). */
  queue: Promise<void> | undefined;
  /**
   * The evaluation queued and not started yet: a later request joins it (it reads the agent's
   * verdict when it starts), so a burst of probe results queues one evaluation, not one each.
   */
  nextEvaluation?: Promise<void>;
  /** A wake-up the policy asked for (backoff end, approval expiry). */
  timer?: NodeJS.Timeout;
  lastSnapshotAt: number;
  /** `action:rule` of the last decision, so that repeats are not logged again. */
  lastRule?: string;
  /** A death of the current episode was reported to people. */
  reported: boolean;
  scheduled: boolean;
  /** A hash of the agent's config as JSON, to notice a change on reload. */
  configHash: number;
  /**
   * The record an evaluation last saved, as a 53-bit hash of its JSON (NaN: none yet), and the
   * store's revision right after (evaluation.ts: a record that did not change is not saved again).
   */
  savedHash: number;
  savedRevision: number;
  /** Where its state is persisted: its cell's dir, or {@link HOST}. */
  target: string;
  /** In a cluster: the host running the current incarnation and its fencing epoch (in every event of it). */
  incarnation?: { host: string; epoch: number };
  /** In a cluster: why the last claim to start it was refused (recorded once per reason). */
  refused?: string;
  /**
   * Settles once the record naming `state.next_spawn_nonce` is on disk (the save that followed
   * the last start): a restart that uses that nonce forks once this has settled.
   */
  aheadRecorded?: Promise<void>;
}

/** The supervision of every agent without a config: one frozen object (never changed, only replaced). */
const OBSERVED_UNCONFIGURED: Supervision = Object.freeze({ mode: 'observed', config: undefined });

/** Managed when the config gives a command to run on this host; observed otherwise. */
export function supervisionOf(config: AgentConfig | undefined): Supervision {
  if (config?.argv !== undefined && config.host === 'local') {
    return { mode: 'managed', config: { ...config, argv: config.argv, host: 'local' } };
  }
  return config === undefined ? OBSERVED_UNCONFIGURED : { mode: 'observed', config };
}

/**
 * An agent's `restarts` while it has none: one frozen empty array for the whole fleet (the
 * records replace their `restarts` when they change it, never push to it), not one per agent.
 */
export const NO_RESTARTS: string[] = Object.freeze([]) as unknown as string[];

/** A record to hold: its empty `restarts` replaced by {@link NO_RESTARTS}. */
export function compactRecord(state: AgentState): AgentState {
  if (state.restarts.length === 0 && state.restarts !== NO_RESTARTS) state.restarts = NO_RESTARTS;
  return state;
}

/** The agent's config, whatever its supervision. */
export const configOf = (slot: Slot): AgentConfig | undefined => slot.supervision.config;

/** The key of the agent `name` in `slot`'s cell (or outside cells, when `slot` is). */
export const scopedKey = (slot: { cell?: { uuid: string } }, name: string): string =>
  `${slot.cell?.uuid ?? HOST}/${name}`;

/** The level-3 container of an agent. */
export const containerName = (slot: Slot): string =>
  `pit-${slot.name}-${slot.cell ? slot.cell.uuid.slice(0, 8) : 'host'}`;

/** When the process the Pit itself started began (ms); `undefined` for none or an adopted one. */
export const startedByUsAt = (slot: Slot): number | undefined =>
  slot.process && !slot.process.adopted ? slot.process.startedAt.getTime() : undefined;

/** A path of the agent's config: relative to its cell, or to its `cwd` outside cells. */
export function resolveAgentPath(slot: Slot, path: string, stateDir: string): string {
  return isAbsolute(path) ? path : resolve(slot.cell?.dir ?? configOf(slot)?.cwd ?? stateDir, path);
}

/**
 * Where the agent's output goes: `stdout` its `<agent>.log`, `stderr` its `<agent>.err.log` or
 * `undefined` when its `merge_stderr` (else `[logs] merge_stderr`) puts both in the one log.
 */
export function slotLogPaths(
  context: { config: PitConfig; stateDir: string },
  slot: Slot,
): { stdout: string; stderr: string | undefined } {
  return agentLogPaths({
    stateDir: context.stateDir,
    cell: slot.cell,
    name: slot.name,
    merged: configOf(slot)?.merge_stderr ?? context.config.logs.merge_stderr,
  });
}

/** The agent's own home: `[agents.<name>] home` in the config (never `home` in `cell.json`). */
export const ownHome = (slot: Slot): string | undefined => configOf(slot)?.home;

/**
 * What the level-2 sandbox hides from the agent `name`: every `[sandbox] home_roots` and every
 * other configured agent's home (its own home is re-exposed read-only below them).
 */
export function hiddenHomes(config: PitConfig, name: string): string[] {
  const homes = new Set(config.sandbox.home_roots);
  for (const [other, home] of agentHomes(config)) if (other !== name) homes.add(home);
  return [...homes];
}

/** The agents that have a `home`, per config (a start of each of 3,000 agents read them all). */
const homesOf = new WeakMap<PitConfig, Array<[string, string]>>();

function agentHomes(config: PitConfig): Array<[string, string]> {
  let homes = homesOf.get(config);
  if (!homes) {
    homes = [];
    for (const [name, agent] of Object.entries(config.agents))
      if (agent.home) homes.push([name, agent.home]);
    homesOf.set(config, homes);
  }
  return homes;
}

/**
 * Everything the level-2 sandbox hides from the agent `name`: {@link hiddenHomes}, the daemon's
 * state directory (other agents' records and spawn nonces, approvals, bus tokens) and the cells
 * root (other cells; the agent's own cell is bound back over it).
 */
export function hiddenFromAgent(config: PitConfig, stateDir: string, name: string): string[] {
  return [
    ...new Set([...hiddenHomes(config, name), resolve(stateDir), resolve(config.cells.root)]),
  ];
}

/** `signal SIGKILL`, `exit code 78`, or `status unknown`. */
export function describeExit(exit: { code?: number | null; signal?: string | null }): string {
  if (exit.signal) return `signal ${exit.signal}`;
  if (exit.code !== null && exit.code !== undefined) return `exit code ${exit.code}`;
  return 'status unknown';
}
