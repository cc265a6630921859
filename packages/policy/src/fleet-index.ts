import type { FleetAgent, FleetView } from './decide-input.js';
import { formatDuration } from './duration.js';
import type { FleetBrake } from './policy-config.js';
import { isDeathStorm } from './storm-rule.js';

const FLEET_INDEX = Symbol.for('pit.policy.fleet-index');

/**
 * A {@link FleetView} indexed for many decisions: lookups by name and the deaths sorted by time.
 * Build it once per change with {@link createFleetIndex} and pass it as `fleet` to every
 * `decide()` of that change; treat the view as immutable while the index is in use.
 */
export interface FleetIndex {
  readonly [FLEET_INDEX]: true;
  /** Number of agents in the fleet. */
  readonly size: number;
  /** An agent by name. */
  get(name: string): FleetAgent | undefined;
  /** The agent substituting for `name`, if any. */
  substituteOf(name: string): string | undefined;
  /** The latest fleet-wide start (ms since epoch). */
  readonly lastRestart: number | undefined;
  /** Dead agents with a known `since`, oldest death first (ties by name). */
  readonly dead: readonly { name: string; since: number }[];
  /** The position of a dead agent in `dead`. */
  deadPosition(name: string): number | undefined;
  /** For each entry of `dead`, the largest number of deaths within `window` ending at or before it. @internal */
  clusterSuffixMax(window: number): Int32Array;
}

/** Whether the fleet brake is engaged, and what it did to this decision. */
export interface BrakeStatus {
  engaged: true;
  /** Deaths within one `window` in the current storm. */
  deaths: number;
  /** The same, as a percentage of the fleet. */
  percent: number;
  /** The brake's window (ms). */
  window: number;
  /** When this agent may start (ms since epoch), while starts are spaced. */
  slot: number;
  /** A sentence for people: `fleet brake: 7 of 20 agents (35%) died within 2m`. */
  summary: string;
}

/** Whether `value` is a {@link FleetIndex}. */
export function isFleetIndex(value: unknown): value is FleetIndex {
  return typeof value === 'object' && value !== null && FLEET_INDEX in value;
}

/**
 * What a {@link FleetIndex} is built from without a whole {@link FleetView}: a supervisor's live
 * fleet, where building one object per agent for every change would cost more than the decision.
 * Only the dead agents and the substitutions are listed; everything else is looked up on demand.
 */
export interface FleetSource {
  /** Number of agents in the fleet. */
  size: number;
  /** An agent by name, as a view would list it. */
  get(name: string): FleetAgent | undefined;
  /** Every dead agent with a known `since` (any order). */
  dead: Iterable<{ name: string; since: number }>;
  /** Every substitution: the agent stood in for, and its substitute (dead substitutes included). */
  substitutions: Iterable<readonly [substitutingFor: string, substitute: string]>;
  /** When the Pit last started agents fleet-wide (ms since epoch). */
  restarts?: readonly number[];
}

/**
 * Indexes a fleet view for many decisions (O(n log n) once, then O(log n) per decision).
 * @example
 * const fleet = createFleetIndex({ agents, restarts });
 * const decisions = agents.map((agent) => decide({ ...inputsOf(agent), fleet, now, config }));
 */
export function createFleetIndex(view: FleetView): FleetIndex {
  const byName = new Map<string, FleetAgent>();
  const dead: { name: string; since: number }[] = [];
  const substitutions: [string, string][] = [];
  for (const agent of view.agents) {
    byName.set(agent.name, agent);
    if (agent.substituting_for !== undefined)
      substitutions.push([agent.substituting_for, agent.name]);
    if (agent.state === 'dead' && agent.since !== undefined)
      dead.push({ name: agent.name, since: agent.since });
  }
  return indexFleet({
    size: byName.size,
    get: (name) => byName.get(name),
    dead,
    substitutions,
    ...(view.restarts ? { restarts: view.restarts } : {}),
  });
}

/**
 * Indexes a {@link FleetSource}: O(d log d) in the dead agents d, whatever the fleet's size, so a
 * supervisor can rebuild it after every death of a large fleet.
 * @example
 * const fleet = indexFleet({ size: 2, get: (name) => agents.get(name), dead: [{ name: 'forge', since }], substitutions: [] });
 */
export function indexFleet(source: FleetSource): FleetIndex {
  const substitutes = new Map<string, string>();
  for (const [substitutingFor, substitute] of source.substitutions)
    if (source.get(substitute)?.state !== 'dead') substitutes.set(substitutingFor, substitute);
  const dead: { name: string; since: number }[] = [];
  for (const entry of source.dead)
    if (Number.isFinite(entry.since)) dead.push({ name: entry.name, since: entry.since });
  dead.sort((a, b) => a.since - b.since || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let lastRestart: number | undefined;
  for (const at of source.restarts ?? [])
    if (lastRestart === undefined || at > lastRestart) lastRestart = at;
  const clusters = new Map<number, Int32Array>();
  const positions = new Map(dead.map((entry, position) => [entry.name, position]));
  return {
    [FLEET_INDEX]: true,
    size: source.size,
    get: (name) => source.get(name),
    substituteOf: (name) => substitutes.get(name),
    lastRestart,
    dead,
    deadPosition: (name) => positions.get(name),
    clusterSuffixMax(window) {
      let suffix = clusters.get(window);
      if (suffix !== undefined) return suffix;
      suffix = new Int32Array(dead.length + 1);
      const sizes = new Int32Array(dead.length);
      let left = 0;
      for (let right = 0; right < dead.length; right += 1) {
        while (
          (dead[right] as { since: number }).since - (dead[left] as { since: number }).since >
          window
        )
          left += 1;
        sizes[right] = right - left + 1;
      }
      for (let index = dead.length - 1; index >= 0; index -= 1)
        suffix[index] = Math.max(suffix[index + 1] as number, sizes[index] as number);
      clusters.set(window, suffix);
      return suffix;
    },
  };
}

/** First index in `dead` whose `since` is ≥ `time`. */
function lowerBound(dead: readonly { since: number }[], time: number): number {
  let low = 0;
  let high = dead.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((dead[middle] as { since: number }).since < time) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * The fleet brake for one agent at `now`: `undefined` when it is not engaged. Engaged when, among
 * the dead agents whose death lies within `hold` of now, those that died within `window` of one
 * another make a storm ({@link isDeathStorm}). While
 * engaged, starts are spaced `restart_interval` apart in order of death: this agent's slot is
 * `(latest fleet start + interval, or the storm's first death) + its place in the queue × interval`.
 */
export function assessFleetBrake(options: {
  fleet: FleetIndex;
  agent: string;
  now: number;
  brake: FleetBrake;
}): BrakeStatus | undefined {
  const { fleet, agent, now, brake } = options;
  if (!brake.enabled || fleet.dead.length === 0) return undefined;
  const storm = stormAt(fleet, now, brake);
  if (storm === undefined) return undefined;
  const found = fleet.deadPosition(agent);
  const position =
    found !== undefined && found >= storm.queueStart
      ? found - storm.queueStart
      : fleet.dead.length - storm.queueStart;
  return {
    engaged: true,
    deaths: storm.deaths,
    percent: storm.percent,
    window: brake.window,
    slot: storm.base + position * brake.restart_interval,
    summary: storm.summary,
  };
}

/** The part of the brake's verdict that is the same for every agent of one fleet at one time. */
interface Storm {
  deaths: number;
  percent: number;
  queueStart: number;
  base: number;
  summary: string;
}

/**
 * The latest storm assessed per index: a sweep decides every agent of one index at one `now`
 * with one brake, so the search, the sums and the summary sentence are made once per sweep. Only
 * a frozen brake (decide() freezes its config) is remembered, so a changed one is never stale.
 */
const storms = new WeakMap<
  FleetIndex,
  { now: number; brake: FleetBrake; storm: Storm | undefined }
>();

function stormAt(fleet: FleetIndex, now: number, brake: FleetBrake): Storm | undefined {
  const cached = storms.get(fleet);
  if (cached !== undefined && cached.now === now && cached.brake === brake) return cached.storm;
  const storm = assessStorm(fleet, now, brake);
  if (Object.isFrozen(brake)) storms.set(fleet, { now, brake, storm });
  return storm;
}

function assessStorm(fleet: FleetIndex, now: number, brake: FleetBrake): Storm | undefined {
  const first = lowerBound(fleet.dead, now - brake.hold);
  const deaths = fleet.clusterSuffixMax(brake.window)[first] ?? 0;
  const percent = fleet.size === 0 ? 0 : (deaths / fleet.size) * 100;
  if (!isDeathStorm({ deaths, fleetSize: fleet.size, brake })) return undefined;
  const queueStart = lowerBound(fleet.dead, now - brake.hold - brake.window);
  const onset = (fleet.dead[queueStart] as { since: number }).since;
  const base =
    fleet.lastRestart !== undefined && fleet.lastRestart >= onset
      ? fleet.lastRestart + brake.restart_interval
      : onset;
  const rounded = Math.round(percent * 10) / 10;
  return {
    deaths,
    percent: rounded,
    queueStart,
    base,
    summary: `fleet brake: ${deaths} of ${fleet.size} agents (${rounded}%) died within ${formatDuration(brake.window)}; starts spaced ${formatDuration(brake.restart_interval)} apart`,
  };
}
