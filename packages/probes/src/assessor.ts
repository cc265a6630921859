import { z } from 'zod';
import { formatIssues } from '@pit/cell-spec';
import { ProbeError } from './errors.js';
import { functionSchema, type ProbeFailure, type ProbeResult } from './probe-result.js';

/** An agent's health, as @pit/cell-spec's `AgentState.health` records it. */
export type Health = 'unknown' | 'healthy' | 'degraded' | 'dead';

/** A probe's state after thresholds: `unknown` until it has reached one. */
export type ProbeState = 'unknown' | 'passing' | 'failing';

/** How one probe counts toward an agent's health. */
export interface ProbeRule {
  /** Whether its failure can make the agent dead (otherwise only degraded). @default true */
  critical?: boolean;
  /** Consecutive failed samples before the probe counts as failing. @default the assessor's */
  failureThreshold?: number;
  /** Consecutive ok samples before a failing (or new) probe counts as passing. @default the assessor's */
  successThreshold?: number;
}

/** A probe as the assessor sees it. */
export interface ProbeStatus {
  /** The probe's name (unique per agent). */
  name: string;
  state: ProbeState;
  critical: boolean;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  /** observedAt of the first failure of the current failure streak (kept until the probe passes again), ms. */
  failingSince?: number;
  /** When `state` last changed, ms. */
  stateSince?: number;
  /** The last result recorded. */
  lastResult?: ProbeResult;
}

/**
 * A custom rule: given every probe's status, the agent's health. (Grace and bookkeeping
 * still apply.) `'any'` and `'all'` cover the usual cases.
 */
export type HealthRule = (probes: readonly ProbeStatus[]) => Health;

/** Options of {@link createAssessor}. */
export interface AssessorOptions {
  /** Consecutive failed samples before a probe counts as failing (Kubernetes' default). @default 3 */
  failureThreshold?: number;
  /** Consecutive ok samples before a failing probe counts as passing again. @default 1 */
  successThreshold?: number;
  /**
   * After an agent starts, failures do not make it dead or degraded for this long (it reports
   * `unknown`); the grace ends early once every critical probe is passing (one passing probe
   * while another has not answered yet is not enough). Samples observed before the start are
   * ignored. ms. @default 0
   */
  startupGraceMs?: number;
  /**
   * When the agent is dead: `'any'` critical probe failing (the Kubernetes liveness rule), or
   * `'all'` critical probes failing (with every probe critical: "all failing = dead, some
   * failing = degraded"), or a function. A failing probe that does not make it dead makes it
   * degraded. @default 'any'
   */
  deadWhen?: 'any' | 'all' | HealthRule;
  /** Rules per probe name (e.g. `{ heartbeat: { failureThreshold: 1 }, http: { critical: false } }`). */
  probes?: Record<string, ProbeRule>;
  /** The clock for grace evaluation in {@link Assessor.evaluate}, ms since the Unix epoch. @default Date.now */
  now?: () => number;
}

/** Options of {@link Assessor.track}. */
export interface TrackOptions {
  /** When the agent (re)started; the startup grace runs from here. ms. @default now */
  startedAt?: number;
  /**
   * The agent's probes, declared up front (so `deadWhen: 'all'` knows every one, even before
   * its first sample), with per-agent rules that override the assessor's.
   */
  probes?: string[] | Record<string, ProbeRule>;
}

/** The verdict on one agent after a sample. */
export interface Assessment {
  /** The agent key. */
  agent: string;
  health: Health;
  /** The health before this update. */
  previous: Health;
  /** Whether this update changed the health. */
  changed: boolean;
  /** When the current health began, ms since the Unix epoch. */
  since: number;
  /**
   * When the current unhealthy episode began: the first failed sample since the agent was last
   * healthy (kept across degraded ⇄ dead, cleared when healthy), ms. `now − firstFailedAt` is
   * how long it has been failing.
   */
  firstFailedAt?: number;
  /** The last time it was assessed healthy, ms. */
  lastHealthyAt?: number;
  /** Whether the startup grace is still running. */
  inGrace: boolean;
  /** When the startup grace ends (or ended), ms. */
  graceEndsAt: number;
  /** Names of the probes currently failing. */
  failing: string[];
  /** The failure reason of each failing probe's last failed sample (e.g. `{ heartbeat: 'stuck' }`). */
  failures: Record<string, ProbeFailure | undefined>;
  /** Every probe's status. */
  probes: Record<string, ProbeStatus>;
  /** A human-readable line naming the rule that decided, e.g. `dead: critical probe process failing (…)`. */
  reason: string;
}

/** Folds probe results into per-agent health. Synchronous and in-memory; time comes from the results. */
export interface Assessor {
  /** Starts (or restarts, e.g. after a revive) tracking an agent: counters reset and the grace begins. */
  track(agent: string, options?: TrackOptions): Assessment;
  /** Records one probe result (an unknown agent is tracked from this sample's time). */
  record(agent: string, probe: string, result: ProbeResult): Assessment;
  /** Re-evaluates an agent at `at` (grace expiry) without a new sample. @throws {ProbeError} PROBE_UNKNOWN_AGENT */
  evaluate(agent: string, at?: number): Assessment;
  /** The last assessment, or `undefined` for an agent not tracked. */
  get(agent: string): Assessment | undefined;
  /** Stops tracking an agent; false if it was not tracked. */
  forget(agent: string): boolean;
  /** The agents tracked. */
  agents(): string[];
}

const ProbeRuleSchema = z.strictObject({
  critical: z.boolean().optional(),
  failureThreshold: z.number().int().positive().optional(),
  successThreshold: z.number().int().positive().optional(),
});

const AssessorOptionsSchema = z.strictObject({
  failureThreshold: z.number().int().positive().optional(),
  successThreshold: z.number().int().positive().optional(),
  startupGraceMs: z.number().nonnegative().optional(),
  deadWhen: z.union([z.literal('any'), z.literal('all'), functionSchema<HealthRule>()]).optional(),
  probes: z.record(z.string().min(1), ProbeRuleSchema).optional(),
  now: functionSchema<() => number>().optional(),
});

const TrackOptionsSchema = z.strictObject({
  startedAt: z.number().optional(),
  probes: z
    .union([z.array(z.string().min(1)), z.record(z.string().min(1), ProbeRuleSchema)])
    .optional(),
});

interface AgentRecord {
  agent: string;
  startedAt: number;
  graceOver: boolean;
  health: Health;
  since: number;
  firstFailedAt?: number;
  lastHealthyAt?: number;
  rules: Record<string, ProbeRule>;
  probes: Map<
    string,
    ProbeStatus & { failureThreshold: number; successThreshold: number; lastFailure?: ProbeFailure }
  >;
  last?: Assessment;
}

/**
 * Creates an assessor: it folds each agent's stream of probe results into
 * `healthy | degraded | dead` with consecutive failure/success thresholds (so a flapping
 * probe does not flip the verdict on one sample), a startup grace, and critical probes.
 * @throws {ProbeError} PROBE_INVALID_OPTIONS.
 * @example
 * const assessor = createAssessor({ failureThreshold: 3, startupGraceMs: 60_000, probes: { heartbeat: { failureThreshold: 1 } } });
 * const verdict = assessor.record('forge', 'heartbeat', await heartbeatProbe(target));
 * if (verdict.changed && verdict.health === 'dead') console.log(verdict.reason);
 */
export function createAssessor(options: AssessorOptions = {}): Assessor {
  const parsed = AssessorOptionsSchema.safeParse(options);
  if (!parsed.success)
    throw new ProbeError(
      'PROBE_INVALID_OPTIONS',
      `assessor options: ${formatIssues(parsed.error)}`,
    );
  const failureThreshold = options.failureThreshold ?? 3;
  const successThreshold = options.successThreshold ?? 1;
  const graceMs = options.startupGraceMs ?? 0;
  const deadWhen = options.deadWhen ?? 'any';
  const globalRules = options.probes ?? {};
  const now = options.now ?? Date.now;
  const agents = new Map<string, AgentRecord>();

  const probeStatus = (record: AgentRecord, name: string) => {
    let status = record.probes.get(name);
    if (!status) {
      const rule = { ...globalRules[name], ...record.rules[name] };
      status = {
        name,
        state: 'unknown',
        critical: rule.critical ?? true,
        consecutiveFailures: 0,
        consecutiveSuccesses: 0,
        failureThreshold: rule.failureThreshold ?? failureThreshold,
        successThreshold: rule.successThreshold ?? successThreshold,
      };
      record.probes.set(name, status);
    }
    return status;
  };

  const track = (agent: string, trackOptions: TrackOptions = {}): Assessment => {
    const parsedTrack = TrackOptionsSchema.safeParse(trackOptions);
    if (!parsedTrack.success)
      throw new ProbeError(
        'PROBE_INVALID_OPTIONS',
        `assessor.track(${agent}): ${formatIssues(parsedTrack.error)}`,
      );
    const startedAt = trackOptions.startedAt ?? now();
    const declared = trackOptions.probes;
    const rules = Array.isArray(declared) || declared === undefined ? {} : declared;
    const record: AgentRecord = {
      agent,
      startedAt,
      graceOver: false,
      health: 'unknown',
      since: startedAt,
      rules,
      probes: new Map(),
    };
    agents.set(agent, record);
    for (const name of Array.isArray(declared) ? declared : Object.keys(rules))
      probeStatus(record, name);
    return update(record, startedAt);
  };

  const update = (record: AgentRecord, at: number): Assessment => {
    const statuses = [...record.probes.values()];
    const computed = computeHealth(statuses, deadWhen);
    const graceEndsAt = record.startedAt + graceMs;
    // A started agent proves itself on every critical probe: one passing probe (say, its process
    // is up) while another has not answered yet (its /health not listening yet) is not healthy.
    const unproven = statuses.filter((status) => status.critical && status.state !== 'passing');
    if (
      !record.graceOver &&
      ((computed.health === 'healthy' && unproven.length === 0) || at >= graceEndsAt)
    )
      record.graceOver = true;
    const inGrace = !record.graceOver;
    let health = computed.health;
    let reason = computed.reason;
    if (inGrace && health !== 'unknown') {
      reason =
        health === 'healthy'
          ? `unknown: starting, waiting for ${unproven.map((status) => status.name).join(', ')} within the startup grace until ${new Date(graceEndsAt).toISOString()}`
          : `unknown: starting, within the startup grace until ${new Date(graceEndsAt).toISOString()} (would be ${reason})`;
      health = 'unknown';
    }
    const previous = record.health;
    const changed = health !== previous;
    if (changed) {
      record.health = health;
      record.since = at;
    }
    const failing = statuses.filter((status) => status.state === 'failing');
    if (health === 'healthy') {
      record.lastHealthyAt = at;
      delete record.firstFailedAt;
    } else if ((health === 'dead' || health === 'degraded') && record.firstFailedAt === undefined) {
      const starts = failing.map((status) => status.failingSince ?? at);
      record.firstFailedAt = Math.min(at, ...starts);
    }
    const assessment: Assessment = {
      agent: record.agent,
      health,
      previous,
      changed,
      since: record.since,
      ...(record.firstFailedAt === undefined ? {} : { firstFailedAt: record.firstFailedAt }),
      ...(record.lastHealthyAt === undefined ? {} : { lastHealthyAt: record.lastHealthyAt }),
      inGrace,
      graceEndsAt,
      failing: failing.map((status) => status.name),
      failures: Object.fromEntries(failing.map((status) => [status.name, status.lastFailure])),
      probes: Object.fromEntries(statuses.map((status) => [status.name, publicStatus(status)])),
      reason,
    };
    record.last = assessment;
    return assessment;
  };

  return {
    track,
    record(agent, probe, result) {
      const record =
        agents.get(agent) ??
        (track(agent, { startedAt: result.observedAt }), agents.get(agent) as AgentRecord);
      const at = result.observedAt;
      // A sample taken before the agent's (re)start describes its previous life: it does not count.
      if (at < record.startedAt) return record.last ?? update(record, record.startedAt);
      const status = probeStatus(record, probe);
      status.lastResult = result;
      if (result.ok) {
        status.consecutiveSuccesses += 1;
        status.consecutiveFailures = 0;
        if (status.state === 'passing') {
          delete status.failingSince;
        } else if (status.consecutiveSuccesses >= status.successThreshold) {
          status.state = 'passing';
          status.stateSince = at;
          delete status.failingSince;
        }
      } else {
        status.consecutiveFailures += 1;
        status.consecutiveSuccesses = 0;
        status.failingSince ??= at;
        status.lastFailure = result.failure ?? 'error';
        if (status.state !== 'failing' && status.consecutiveFailures >= status.failureThreshold) {
          status.state = 'failing';
          status.stateSince = at;
        }
      }
      return update(record, at);
    },
    evaluate(agent, at = now()) {
      const record = agents.get(agent);
      if (!record)
        throw new ProbeError(
          'PROBE_UNKNOWN_AGENT',
          `assessor: agent ${JSON.stringify(agent)} is not tracked`,
        );
      return update(record, at);
    },
    get: (agent) => agents.get(agent)?.last,
    forget: (agent) => agents.delete(agent),
    agents: () => [...agents.keys()],
  };
}

function publicStatus(
  status: ProbeStatus & {
    failureThreshold: number;
    successThreshold: number;
    lastFailure?: ProbeFailure;
  },
): ProbeStatus {
  return {
    name: status.name,
    state: status.state,
    critical: status.critical,
    consecutiveFailures: status.consecutiveFailures,
    consecutiveSuccesses: status.consecutiveSuccesses,
    ...(status.failingSince === undefined ? {} : { failingSince: status.failingSince }),
    ...(status.stateSince === undefined ? {} : { stateSince: status.stateSince }),
    ...(status.lastResult === undefined ? {} : { lastResult: status.lastResult }),
  };
}

function computeHealth(
  statuses: ProbeStatus[],
  deadWhen: 'any' | 'all' | HealthRule,
): { health: Health; reason: string } {
  if (typeof deadWhen === 'function') {
    const health = deadWhen(statuses);
    return { health, reason: `${health}: by the custom rule (${describeStates(statuses)})` };
  }
  const failing = statuses.filter((status) => status.state === 'failing');
  if (statuses.every((status) => status.state === 'unknown')) {
    return {
      health: 'unknown',
      reason:
        statuses.length === 0
          ? 'unknown: no probe results yet'
          : `unknown: no probe has reached a threshold yet (${describeStates(statuses)})`,
    };
  }
  const critical = statuses.filter((status) => status.critical);
  const failingCritical = failing.filter((status) => status.critical);
  if (deadWhen === 'any' && failingCritical.length > 0) {
    return {
      health: 'dead',
      reason: `dead: critical probe${failingCritical.length === 1 ? '' : 's'} ${describeFailing(failingCritical)} failing`,
    };
  }
  if (deadWhen === 'all' && critical.length > 0 && failingCritical.length === critical.length) {
    return {
      health: 'dead',
      reason: `dead: every critical probe failing: ${describeFailing(failingCritical)}`,
    };
  }
  if (failing.length > 0) {
    const rule =
      deadWhen === 'all' ? 'not every critical probe is failing' : 'no critical probe is failing';
    return {
      health: 'degraded',
      reason: `degraded: ${describeFailing(failing)} failing (${rule})`,
    };
  }
  const passing = statuses
    .filter((status) => status.state === 'passing')
    .map((status) => status.name);
  return { health: 'healthy', reason: `healthy: ${passing.join(', ')} passing` };
}

function describeFailing(statuses: ProbeStatus[]): string {
  return statuses
    .map((status) => {
      const last = status.lastResult;
      const why = last && !last.ok ? `${last.failure ?? 'error'}: ${last.detail}` : 'recovering';
      return `${status.name} (${status.consecutiveFailures} consecutive; ${why})`;
    })
    .join(', ');
}

function describeStates(statuses: ProbeStatus[]): string {
  return statuses.map((status) => `${status.name} ${status.state}`).join(', ');
}
