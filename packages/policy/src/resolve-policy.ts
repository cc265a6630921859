import {
  BUILTIN_POLICY,
  type PolicyConfig,
  type PolicyLayer,
  type ResolvedLayer,
} from './policy-config.js';

/** Which layer set a value: the built-in defaults, `[policy.defaults]`, a mission or an agent override. */
export type PolicySource = 'builtin' | 'defaults' | `mission:${string}` | `agent:${string}`;

/**
 * Where a value came from, as an operator reads it: `built-in default` (no layer set it),
 * `[policy.defaults]`, `[policy.missions.<name>]` or `[policy.agents.<name>]` (names that are
 * not bare TOML keys are quoted, as in the file).
 * @example
 * describePolicySource('builtin');               // 'built-in default'
 * describePolicySource('mission:Port the parser'); // '[policy.missions."Port the parser"]'
 */
export function describePolicySource(source: PolicySource): string {
  if (source === 'builtin') return 'built-in default';
  if (source === 'defaults') return '[policy.defaults]';
  const agent = source.startsWith('agent:');
  const name = source.slice(agent ? 'agent:'.length : 'mission:'.length);
  const key = /^[A-Za-z0-9_-]+$/.test(name) ? name : JSON.stringify(name);
  return `[policy.${agent ? 'agents' : 'missions'}.${key}]`;
}

/** How a policy was resolved: what `pit why` shows next to a decision. */
export interface PolicyTrace {
  /** The layers applied, lowest first (`builtin`, `defaults`, `mission:forge`, `agent:bezalel`). */
  layers: PolicySource[];
  /** The mission whose policy applied, if any. */
  mission?: string;
  /** Where the mission came from: the agent override's `mission`, or the agent's cell. */
  mission_from?: 'agent_override' | 'cell';
  /** For every key (dotted: `backoff.cap`, `on_failure.stuck`), the layer that set it. */
  fields: Record<string, PolicySource>;
}

/** The policy that applies to one agent: every key set, durations in ms, plus how it was resolved. */
export interface ResolvedPolicy extends ResolvedLayer {
  agent: string;
  /** The mission whose policy applied (from the agent override or the cell), if any. */
  mission?: string;
  trace: PolicyTrace;
}

/** Options of {@link resolvePolicy}. */
export interface ResolvePolicyOptions {
  /** A parsed policy config (see `PolicyConfigSchema` / `validatePolicy`). */
  config: PolicyConfig;
  /** The agent's name. */
  agent: string;
  /** The mission of the agent's cell, if it has one; an override's `mission` wins over it. */
  mission?: string;
}

/** Every key of a layer, as a path of one or two parts. */
const LEAF_PATHS: readonly (readonly [string] | readonly [string, string])[] = [
  ['mode'],
  ['dead_after'],
  ['substitutes'],
  ['rollback_before_restart'],
  ['max_revive_attempts'],
  ['rate_limit_wait'],
  ['approval', 'channels'],
  ['approval', 'timeout'],
  ['approval', 'on_timeout'],
  ['restart_intensity', 'max_restarts'],
  ['restart_intensity', 'window'],
  ['backoff', 'initial'],
  ['backoff', 'factor'],
  ['backoff', 'cap'],
  ['backoff', 'jitter'],
  ['backoff', 'reset_after_stable'],
  ...Object.keys(BUILTIN_POLICY.on_failure).map((name) => ['on_failure', name] as const),
];
const LEAF_KEYS = LEAF_PATHS.map((path) => path.join('.'));

type Loose = Record<string, unknown>;

/**
 * Resolves the policy of one agent: built-in defaults → `defaults` → its mission → its own
 * override, key by key (tables merge, lists replace). An override's `mission` replaces the
 * cell's mission, and that mission's policy then applies under the override. The agent never
 * appears in its own substitutes.
 * @example
 * const policy = resolvePolicy({ config, agent: 'ezra' });
 * policy.mode;                    // 'ask' (from mission archive, set by ezra's override)
 * policy.trace.fields.dead_after; // 'agent:ezra'
 */
export function resolvePolicy(options: ResolvePolicyOptions): ResolvedPolicy {
  const { config, agent } = options;
  const override = config.agents[agent];
  const mission = override?.mission ?? options.mission;
  const layers: [PolicySource, PolicyLayer][] = [['defaults', config.defaults]];
  const missionLayer = mission === undefined ? undefined : config.missions[mission];
  if (missionLayer !== undefined) layers.push([`mission:${mission}`, missionLayer]);
  if (override !== undefined) layers.push([`agent:${agent}`, override]);
  const resolved = mergeLayers(layers);
  const trace: PolicyTrace = {
    layers: ['builtin', ...layers.map(([source]) => source)],
    fields: resolved.fields,
  };
  if (mission !== undefined) {
    trace.mission = mission;
    trace.mission_from = override?.mission !== undefined ? 'agent_override' : 'cell';
  }
  const policy: ResolvedPolicy = { ...resolved.layer, agent, trace };
  if (policy.substitutes.includes(agent))
    policy.substitutes = policy.substitutes.filter((name) => name !== agent);
  if (mission !== undefined) policy.mission = mission;
  return policy;
}

/**
 * The policy `decide()` applies to one agent: its resolution without the agent's name (which
 * decide() takes from its own input), so that agents with the same policy can share one object.
 */
export type AgentPolicy = Readonly<Omit<ResolvedPolicy, 'agent'>>;

/** One mission's resolutions (for one config): the one agents without an override share, and the rest. */
interface MissionResolutions {
  /** The resolution of every agent without an override of its own (not named among its substitutes). */
  shared: AgentPolicy;
  /** Agents with an override, or named among the shared resolution's substitutes: their own. */
  own: Map<string, AgentPolicy>;
}

/** Per config object: per mission (`undefined` for none), its frozen resolutions. */
const resolutions = new WeakMap<PolicyConfig, Map<string | undefined, MissionResolutions>>();

/**
 * {@link resolvePolicy} without the agent's name, memoised per config object and deep-frozen:
 * what `decide()` uses, so a fleet of thousands resolves its policies once per config. Agents
 * without an override of their own get one shared object (10,000 plain agents hold one
 * resolution, and nothing per agent). The config is frozen too, so changing it after the first
 * decision fails loudly instead of leaving stale resolutions behind; parse a new config to change
 * the policy.
 * @internal
 */
export function resolvePolicyCached(options: ResolvePolicyOptions): AgentPolicy {
  return resolvePolicyMemo(options.config, options.agent, options.mission);
}

/**
 * The lookup behind {@link resolvePolicyCached}, without an options object or a composite key:
 * a hit allocates nothing (decide() runs it for every agent of every sweep).
 * @internal
 */
export function resolvePolicyMemo(
  config: PolicyConfig,
  agent: string,
  mission: string | undefined,
): AgentPolicy {
  let byMission = resolutions.get(config);
  if (byMission === undefined) {
    deepFreeze(config);
    byMission = new Map();
    resolutions.set(config, byMission);
  }
  let resolved = byMission.get(mission);
  if (resolved === undefined) {
    resolved = { shared: sharedResolution(config, mission), own: new Map() };
    byMission.set(mission, resolved);
  }
  // An agent named among its own substitutes gets a resolution without itself in them.
  if (!Object.hasOwn(config.agents, agent) && !resolved.shared.substitutes.includes(agent))
    return resolved.shared;
  let policy = resolved.own.get(agent);
  if (policy === undefined) {
    policy = deepFreeze(
      resolvePolicy(mission === undefined ? { config, agent } : { config, agent, mission }),
    );
    resolved.own.set(agent, policy);
  }
  return policy;
}

/** The name the shared resolution is made for (never a valid agent name, so never a substitute). */
const TEMPLATE_AGENT = '\0';

/**
 * The policy of every agent of `mission` without an override of its own: resolved for a name no
 * agent has, without that name.
 */
function sharedResolution(config: PolicyConfig, mission: string | undefined): AgentPolicy {
  const { agent: _template, ...shared } = resolvePolicy(
    mission === undefined
      ? { config, agent: TEMPLATE_AGENT }
      : { config, agent: TEMPLATE_AGENT, mission },
  );
  return deepFreeze(shared);
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const nested of Object.values(value as Loose)) deepFreeze(nested);
  return value;
}

const LEAF_HEADS = LEAF_PATHS.map((path) => path[0]);
const LEAF_TAILS = LEAF_PATHS.map((path) => path[1]);
const BUILTIN_VALUES = LEAF_PATHS.map(([head, tail]) => {
  const container = (BUILTIN_POLICY as unknown as Loose)[head];
  return tail === undefined ? container : (container as Loose)[tail];
});

/** Merges layers over the built-in defaults, recording which layer set each key. */
export function mergeLayers(layers: readonly (readonly [PolicySource, PolicyLayer])[]): {
  layer: ResolvedLayer;
  fields: Record<string, PolicySource>;
} {
  const result: Loose = { approval: {}, restart_intensity: {}, backoff: {}, on_failure: {} };
  const fields: Record<string, PolicySource> = {};
  for (let leaf = 0; leaf < LEAF_KEYS.length; leaf += 1) {
    const head = LEAF_HEADS[leaf] as string;
    const tail = LEAF_TAILS[leaf];
    let value = BUILTIN_VALUES[leaf];
    let source: PolicySource = 'builtin';
    for (let index = 0; index < layers.length; index += 1) {
      const [layerSource, layer] = layers[index] as readonly [PolicySource, PolicyLayer];
      const container = (layer as Loose)[head];
      if (container === undefined) continue;
      const candidate = tail === undefined ? container : (container as Loose)[tail];
      if (candidate !== undefined) {
        value = candidate;
        source = layerSource;
      }
    }
    if (Array.isArray(value)) value = value.slice();
    if (tail === undefined) result[head] = value;
    else (result[head] as Loose)[tail] = value;
    fields[LEAF_KEYS[leaf] as string] = source;
  }
  return { layer: result as unknown as ResolvedLayer, fields };
}
