import type { z } from 'zod';
import { formatPolicyProblems, PolicyError, type PolicyProblem } from './errors.js';
import {
  AgentPolicySchema,
  ClassifySchema,
  FleetBrakeSchema,
  PolicyConfigSchema,
  PolicyLayerSchema,
  type PolicyConfig,
} from './policy-config.js';
import {
  mergeLayers,
  resolvePolicy,
  type PolicySource,
  type ResolvedPolicy,
} from './resolve-policy.js';

/** What exists around a policy: every reference in it must name one of these. */
export interface PolicyContext {
  /** The agents the daemon supervises, by name or with the mission of their cell. */
  agents: Iterable<string | { name: string; mission?: string }>;
  /** The missions that exist (from the cells and the daemon's config). */
  missions: Iterable<string>;
  /** The approval channels configured in the daemon (`telegram`, `nostr`, `cli`, `http`, …). */
  approvalChannels: Iterable<string>;
}

/** The outcome of {@link validatePolicy}: the parsed config, or every problem found. */
export type ValidatePolicyResult =
  { ok: true; config: PolicyConfig; problems: [] } | { ok: false; problems: PolicyProblem[] };

/**
 * Validates the `[policy]` section of `pit.toml` against its schema and against what exists:
 * every mission, agent, substitute and approval channel it names must exist, an explicit `ask`
 * (a mode, or a failure action) needs at least one approval channel where it applies, and a
 * backoff cap may not be below its initial delay. Reports every problem with its path; never throws.
 * @example
 * const result = validatePolicy(toml.policy, { agents: ['bezalel', 'allegro'], missions: ['forge'], approvalChannels: ['telegram'] });
 * if (!result.ok) console.error(formatPolicyProblems(result.problems));
 */
export function validatePolicy(input: unknown, context: PolicyContext): ValidatePolicyResult {
  const agents = new Map<string, string | undefined>();
  for (const entry of context.agents) {
    if (typeof entry === 'string') agents.set(entry, agents.get(entry));
    else agents.set(entry.name, entry.mission ?? agents.get(entry.name));
  }
  const known = {
    agents,
    missions: new Set(context.missions),
    channels: new Set(context.approvalChannels),
  };
  const problems: PolicyProblem[] = [];
  const parsed = PolicyConfigSchema.safeParse(input);
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap(toProblems));
  problems.push(...referenceProblems(input, known));
  const usable = parsed.success ? parsed.data : salvage(input);
  if (usable !== undefined) problems.push(...resolvedProblems(usable, known.agents));
  const unique = dedupe(problems);
  if (unique.length > 0 || !parsed.success) return { ok: false, problems: unique };
  return { ok: true, config: parsed.data, problems: [] };
}

/**
 * Like {@link validatePolicy}, but returns the config or throws.
 * @param options.root the name of the section, used in messages. @default 'policy'
 * @throws {PolicyError} POLICY_INVALID with every problem in `problems` and in the message.
 */
export function parsePolicy(
  input: unknown,
  context: PolicyContext,
  options: { root?: string } = {},
): PolicyConfig {
  const result = validatePolicy(input, context);
  if (result.ok) return result.config;
  const root = options.root ?? 'policy';
  throw new PolicyError(
    'POLICY_INVALID',
    `${root}: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}:\n${formatPolicyProblems(result.problems, root)}`,
    {
      problems: result.problems,
    },
  );
}

type Path = (string | number)[];
type Loose = Record<string, unknown>;

function isRecord(value: unknown): value is Loose {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One zod issue as problems, with messages that name what was expected. */
function toProblems(issue: z.core.$ZodIssue): PolicyProblem[] {
  const path = issue.path.map((part) => (typeof part === 'symbol' ? String(part) : part));
  if (issue.code === 'unrecognized_keys') {
    const expected = expectedKeys(path);
    return issue.keys.map((key) => ({
      code: 'POLICY_INVALID' as const,
      path: [...path, key],
      message: `unknown key${suggest(key, expected)}`,
    }));
  }
  if (issue.code === 'invalid_key') {
    const inner = issue.issues.map((nested) => nested.message).join('; ');
    return [
      {
        code: 'POLICY_INVALID',
        path,
        message: `invalid name ${JSON.stringify(path.at(-1))}: ${inner}`,
      },
    ];
  }
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const custom = issue.errors.flat().find((nested) => nested.code === 'custom');
    if (custom !== undefined) return [{ code: 'POLICY_INVALID', path, message: custom.message }];
  }
  return [{ code: 'POLICY_INVALID', path, message: issue.message }];
}

const LAYER_KEYS = [
  'mode',
  'dead_after',
  'substitutes',
  'rollback_before_restart',
  'max_revive_attempts',
  'rate_limit_wait',
  'approval',
  'restart_intensity',
  'backoff',
  'on_failure',
];
const NESTED_KEYS: Record<string, string[]> = {
  approval: ['channels', 'timeout', 'on_timeout'],
  restart_intensity: ['max_restarts', 'window'],
  backoff: ['initial', 'factor', 'cap', 'jitter', 'reset_after_stable'],
  on_failure: ['rate_limited', 'auth_failed', 'bad_config', 'crashed', 'stuck', 'unknown'],
};

/** The keys allowed at a path of the policy section. */
function expectedKeys(path: Path): string[] {
  if (path.length === 0) return ['defaults', 'missions', 'agents', 'fleet_brake', 'classify'];
  const [head] = path;
  let rest: Path;
  let base: string[];
  if (head === 'defaults') {
    rest = path.slice(1);
    base = LAYER_KEYS;
  } else if (head === 'missions' || head === 'agents') {
    rest = path.slice(2);
    base = head === 'agents' ? ['mission', ...LAYER_KEYS] : LAYER_KEYS;
  } else if (head === 'fleet_brake') {
    return [
      'enabled',
      'max_deaths',
      'max_percent',
      'min_agents',
      'window',
      'hold',
      'restart_interval',
    ];
  } else if (head === 'classify') {
    return ['exit_codes'];
  } else {
    return [];
  }
  if (rest.length === 0) return base;
  return NESTED_KEYS[String(rest[0])] ?? [];
}

/** ` (did you mean "dead_after"?)` or ` (expected one of: …)`. */
function suggest(key: string, expected: readonly string[]): string {
  if (expected.length === 0) return '';
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of expected) {
    const distance = editDistance(key, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 4)))
    return `; did you mean ${JSON.stringify(best)}?`;
  return `; expected one of: ${expected.join(', ')}`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** Names that must exist: missions, agents, substitutes, channels. Works on the raw input, so it reports even when the schema fails. */
function referenceProblems(
  input: unknown,
  known: { agents: Map<string, string | undefined>; missions: Set<string>; channels: Set<string> },
): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  if (!isRecord(input)) return problems;
  const list = (names: Iterable<string>) => [...names].sort().join(', ') || 'none';

  const checkLayer = (layer: unknown, path: Path, self: string | undefined) => {
    if (!isRecord(layer)) return;
    const substitutes = layer.substitutes;
    if (Array.isArray(substitutes)) {
      const seen = new Set<unknown>();
      substitutes.forEach((name, index) => {
        if (typeof name !== 'string') return;
        if (name === self)
          problems.push({
            code: 'POLICY_INVALID',
            path: [...path, 'substitutes', index],
            message: `${name} cannot substitute for itself`,
          });
        else if (!known.agents.has(name)) {
          problems.push({
            code: 'POLICY_UNKNOWN_AGENT',
            path: [...path, 'substitutes', index],
            message: `unknown agent ${JSON.stringify(name)} (known: ${list(known.agents.keys())})`,
          });
        }
        if (seen.has(name))
          problems.push({
            code: 'POLICY_INVALID',
            path: [...path, 'substitutes', index],
            message: `${name} is listed twice`,
          });
        seen.add(name);
      });
    }
    const approval = layer.approval;
    if (isRecord(approval) && Array.isArray(approval.channels)) {
      approval.channels.forEach((channel, index) => {
        if (typeof channel === 'string' && !known.channels.has(channel)) {
          problems.push({
            code: 'POLICY_UNKNOWN_CHANNEL',
            path: [...path, 'approval', 'channels', index],
            message: `approval channel ${JSON.stringify(channel)} is not configured (configured: ${list(known.channels)})`,
          });
        }
      });
    }
  };

  checkLayer(input.defaults, ['defaults'], undefined);
  if (isRecord(input.missions)) {
    for (const [mission, layer] of Object.entries(input.missions)) {
      if (!known.missions.has(mission)) {
        problems.push({
          code: 'POLICY_UNKNOWN_MISSION',
          path: ['missions', mission],
          message: `unknown mission ${JSON.stringify(mission)} (known: ${list(known.missions)})`,
        });
      }
      checkLayer(layer, ['missions', mission], undefined);
    }
  }
  if (isRecord(input.agents)) {
    for (const [agent, layer] of Object.entries(input.agents)) {
      if (!known.agents.has(agent)) {
        problems.push({
          code: 'POLICY_UNKNOWN_AGENT',
          path: ['agents', agent],
          message: `unknown agent ${JSON.stringify(agent)} (known: ${list(known.agents.keys())})`,
        });
      }
      if (
        isRecord(layer) &&
        typeof layer.mission === 'string' &&
        !known.missions.has(layer.mission)
      ) {
        problems.push({
          code: 'POLICY_UNKNOWN_MISSION',
          path: ['agents', agent, 'mission'],
          message: `unknown mission ${JSON.stringify(layer.mission)} (known: ${list(known.missions)})`,
        });
      }
      checkLayer(layer, ['agents', agent], agent);
    }
  }
  return problems;
}

/**
 * The valid parts of an invalid config (each layer parsed on its own, invalid ones left out), so
 * that the problems which show only once layers merge are reported alongside the schema's.
 */
function salvage(input: unknown): PolicyConfig | undefined {
  if (!isRecord(input)) return undefined;
  const layers = <T>(
    value: unknown,
    schema: { safeParse(value: unknown): { success: true; data: T } | { success: false } },
  ): Record<string, T> => {
    const result: Record<string, T> = {};
    if (!isRecord(value)) return result;
    for (const [name, layer] of Object.entries(value)) {
      const parsed = schema.safeParse(layer);
      if (parsed.success) result[name] = parsed.data;
    }
    return result;
  };
  const defaults = PolicyLayerSchema.safeParse(input.defaults ?? {});
  const brake = FleetBrakeSchema.safeParse(input.fleet_brake ?? {});
  const classify = ClassifySchema.safeParse(input.classify ?? {});
  return {
    defaults: defaults.success ? defaults.data : {},
    missions: layers(input.missions, PolicyLayerSchema),
    agents: layers(input.agents, AgentPolicySchema),
    fleet_brake: brake.success ? brake.data : FleetBrakeSchema.parse({}),
    classify: classify.success ? classify.data : ClassifySchema.parse({}),
  };
}

/** Where a key set by `source` lives in the config. */
function pathOf(source: PolicySource, key: string): Path {
  const keyPath = key.split('.');
  if (source === 'defaults') return ['defaults', ...keyPath];
  if (source.startsWith('mission:'))
    return ['missions', source.slice('mission:'.length), ...keyPath];
  if (source.startsWith('agent:')) return ['agents', source.slice('agent:'.length), ...keyPath];
  return keyPath;
}

/** Problems that show only once layers are merged: an `ask` with nowhere to ask, a cap below its initial delay. */
function resolvedProblems(
  config: PolicyConfig,
  agents: Map<string, string | undefined>,
): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const scopes: Pick<ResolvedPolicy, 'mode' | 'on_failure' | 'approval' | 'backoff' | 'trace'>[] =
    [];
  const defaults = mergeLayers([['defaults', config.defaults]]);
  scopes.push({
    ...defaults.layer,
    trace: { layers: ['builtin', 'defaults'], fields: defaults.fields },
  });
  for (const [mission, layer] of Object.entries(config.missions)) {
    const merged = mergeLayers([
      ['defaults', config.defaults],
      [`mission:${mission}`, layer],
    ]);
    scopes.push({
      ...merged.layer,
      trace: { layers: ['builtin', 'defaults', `mission:${mission}`], fields: merged.fields },
    });
  }
  // An agent without an override resolves exactly like its mission (or the defaults): only overrides add scopes.
  for (const agent of Object.keys(config.agents)) {
    const mission = agents.get(agent);
    scopes.push(
      resolvePolicy(mission === undefined ? { config, agent } : { config, agent, mission }),
    );
  }

  for (const scope of scopes) {
    const fields = scope.trace.fields;
    if (scope.approval.channels.length === 0) {
      const asks: string[] = [];
      if (scope.mode === 'ask') asks.push('mode');
      for (const [failureClass, action] of Object.entries(scope.on_failure))
        if (action === 'ask') asks.push(`on_failure.${failureClass}`);
      for (const key of asks) {
        const source = fields[key] ?? 'builtin';
        if (source === 'builtin') continue;
        const where = scope.trace.layers.at(-1) ?? 'builtin';
        const label = where === 'defaults' ? 'the defaults' : where.replace(':', ' ');
        problems.push({
          code: 'POLICY_NO_APPROVAL_CHANNEL',
          path: pathOf(source, key),
          message: `"ask" needs an approval channel, but approval.channels is empty for ${label}; add one (approval.channels) or choose another action`,
        });
      }
    }
    if (scope.backoff.cap < scope.backoff.initial) {
      const capSource = fields['backoff.cap'] ?? 'builtin';
      const source = capSource === 'builtin' ? (fields['backoff.initial'] ?? 'builtin') : capSource;
      const key = capSource === 'builtin' ? 'backoff.initial' : 'backoff.cap';
      problems.push({
        code: 'POLICY_INVALID',
        path: pathOf(source, key),
        message: `backoff.cap (${scope.backoff.cap} ms) is below backoff.initial (${scope.backoff.initial} ms)`,
      });
    }
  }
  return problems;
}

function dedupe(problems: readonly PolicyProblem[]): PolicyProblem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const key = `${problem.code} ${JSON.stringify(problem.path)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
