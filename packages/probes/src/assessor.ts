import { z } from 'zod';
import { formatIssues } from '@pit/cell-spec';
import { ProbeError } from './errors.js';
import { AgentRecord, ProbeTrack } from './assessor-record.js';
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
  /**
   * Failures that count neither as a failure nor as a pass (the sample is shown as the probe's
   * last result, its counters do not move). For a process probe on your own child, whose exit
   * wait(2) reports (pass it to {@link Assessor.exited}): `['timeout', 'not_running']` — a slow
   * `/proc` read is no death, and a zombie is an exit about to be reported with its status.
   */
  inconclusive?: readonly ProbeFailure[];
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
   * The start of the agent's current incarnation (take it just before spawning the process),
   * ms since the Unix epoch. An ok result whose evidence is older (`evidenceAt`, e.g. a
   * heartbeat written by the previous process) counts as a `stale` failure: there is no
   * tolerance, since any would let the previous incarnation's last beat pass. @default none
   */
  notBefore?: number;
  /** This agent's {@link AssessorOptions.failureThreshold} (per-probe rules still win). */
  failureThreshold?: number;
  /** This agent's {@link AssessorOptions.successThreshold} (per-probe rules still win). */
  successThreshold?: number;
  /** This agent's {@link AssessorOptions.startupGraceMs}. ms. */
  startupGraceMs?: number;
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
  /** The process's exit, once {@link Assessor.exited} reported it for this incarnation. */
  exit?: ProcessExit;
}

/** What {@link Assessor.note} returns: the fields of {@link Assessment} it names. */
export interface HealthNote {
  health: Health;
  changed: boolean;
}

/** The fact that an agent's process ended, as the caller's wait(2) (a child's `exit` event) saw it. */
export interface ProcessExit {
  /** When it ended, ms since the Unix epoch. */
  at: number;
  /** Its exit code, when it exited. */
  code?: number | null;
  /** The signal that ended it. */
  signal?: string | null;
  /** How to describe it instead, e.g. `not running (not started by the pit)`. @default from code and signal */
  detail?: string;
  /** The probe it fails. @default 'process' */
  probe?: string;
}

/** Folds probe results into per-agent health. Synchronous and in-memory; time comes from the results. */
export interface Assessor {
  /** Starts (or restarts, e.g. after a revive) tracking an agent: counters reset and the grace begins. */
  track(agent: string, options?: TrackOptions): Assessment;
  /** Records one probe result (an unknown agent is tracked from this sample's time). */
  record(agent: string, probe: string, result: ProbeResult): Assessment;
  /**
   * {@link Assessor.record} without building the assessment (for a fleet's every probe run):
   * the health after the sample and whether this sample changed it. {@link Assessor.get} gives
   * the full assessment when it is needed.
   */
  note(agent: string, probe: string, result: ProbeResult): HealthNote;
  /**
   * Records that the agent's process ended: dead at once, whatever the grace and thresholds,
   * until the next {@link Assessor.track} (a new incarnation). An exit from before the current
   * start is ignored. An unknown agent is tracked from the exit's time.
   */
  exited(agent: string, exit: ProcessExit): Assessment;
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
  inconclusive: z.array(z.string().min(1)).readonly().optional(),
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
  notBefore: z.number().optional(),
  failureThreshold: z.number().int().positive().optional(),
  successThreshold: z.number().int().positive().optional(),
  startupGraceMs: z.number().nonnegative().optional(),
  probes: z
    .union([z.array(z.string().min(1)), z.record(z.string().min(1), ProbeRuleSchema)])
    .optional(),
});

const ProcessExitSchema = z.strictObject({
  at: z.number(),
  code: z.number().int().nullable().optional(),
  signal: z.string().min(1).nullable().optional(),
  detail: z.string().min(1).optional(),
  probe: z.string().min(1).optional(),
});

/** The rule that makes an agent dead. */
type DeadWhen = NonNullable<AssessorOptions['deadWhen']>;

/** What an agent's probes are judged by: the assessor's defaults under its own overrides. */
interface AgentRules {
  failureThreshold: number;
  successThreshold: number;
  probes: Record<string, ProbeRule> | undefined;
}

/**
 * Creates an assessor: it folds each agent's stream of probe results into
 * `healthy | degraded | dead` with consecutive failure/success thresholds (so a flapping
 * probe does not flip the verdict on one sample), a startup grace, critical probes, and the
 * facts a supervisor knows besides its probes (the process exited; the incarnation's start).
 * One assessor serves a whole fleet: per-agent thresholds and grace go to {@link Assessor.track}.
 * It keeps a few dozen bytes of numbers per probe, not the results.
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
  const defaults = {
    failureThreshold: options.failureThreshold ?? 3,
    successThreshold: options.successThreshold ?? 1,
    graceMs: options.startupGraceMs ?? 0,
  };
  const deadWhen = options.deadWhen ?? 'any';
  const globalRules = options.probes ?? {};
  const now = options.now ?? Date.now;
  const agents = new Map<string, AgentRecord>();
  /** Per-agent rules, kept only for agents tracked with some (most share the defaults). */
  const agentRules = new Map<string, AgentRules>();
  const defaultRules: AgentRules = { ...defaults, probes: undefined };

  const probeTrack = (record: AgentRecord, name: string): ProbeTrack => {
    const known = record.probe(name);
    if (known) return known;
    const own = agentRules.get(record.agent) ?? defaultRules;
    const rule = { ...globalRules[name], ...own.probes?.[name] };
    const track = new ProbeTrack(
      name,
      rule.critical ?? true,
      rule.failureThreshold ?? own.failureThreshold,
      rule.successThreshold ?? own.successThreshold,
      rule.inconclusive,
    );
    // concat, not a spread: `[...probes, track]` is built by pushing, and keeps room for 17.
    record.probes = record.probes.concat(track);
    return track;
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
    const rules = Array.isArray(declared) || declared === undefined ? undefined : declared;
    const own: AgentRules = {
      failureThreshold: trackOptions.failureThreshold ?? defaults.failureThreshold,
      successThreshold: trackOptions.successThreshold ?? defaults.successThreshold,
      probes: rules,
    };
    if (
      rules === undefined &&
      own.failureThreshold === defaults.failureThreshold &&
      own.successThreshold === defaults.successThreshold
    )
      agentRules.delete(agent);
    else agentRules.set(agent, own);
    const record = new AgentRecord(
      agent,
      startedAt,
      trackOptions.startupGraceMs ?? defaults.graceMs,
      trackOptions.notBefore ?? Number.NaN,
    );
    agents.set(agent, record);
    for (const name of Array.isArray(declared) ? declared : Object.keys(rules ?? {}))
      probeTrack(record, name);
    update(record, startedAt, deadWhen);
    return view(record, deadWhen);
  };

  const recordOf = (agent: string, at: number): AgentRecord =>
    agents.get(agent) ?? (track(agent, { startedAt: at }), agents.get(agent) as AgentRecord);

  /** Folds one sample into the agent's record and moves its verdict to the sample's time. */
  const sample = (agent: string, probe: string, result: ProbeResult): AgentRecord => {
    const record = recordOf(agent, result.observedAt);
    const at = result.observedAt;
    // A sample taken before the agent's (re)start describes its previous life: it does not count.
    if (at < record.startedAt) return record;
    fold(probeTrack(record, probe), record, result);
    update(record, at, deadWhen);
    return record;
  };

  return {
    track,
    record(agent, probe, result) {
      return view(sample(agent, probe, result), deadWhen);
    },
    note(agent, probe, result) {
      const record = sample(agent, probe, result);
      return { health: record.health, changed: record.changed };
    },
    exited(agent, exit) {
      const parsedExit = ProcessExitSchema.safeParse(exit);
      if (!parsedExit.success)
        throw new ProbeError(
          'PROBE_INVALID_OPTIONS',
          `assessor.exited(${agent}): ${formatIssues(parsedExit.error)}`,
        );
      const record = recordOf(agent, exit.at);
      if (exit.at < record.startedAt || record.exit) return view(record, deadWhen);
      record.exit = { ...exit };
      const probe = probeTrack(record, exit.probe ?? 'process');
      const detail = `exited (${describeExit(exit)})`;
      probe.remember(
        { kind: probe.name, ok: false, latencyMs: 0, detail, observedAt: exit.at },
        false,
        'not_running',
        detail,
      );
      probe.lastFailure = 'not_running';
      if (probe.state !== 'failing') {
        probe.state = 'failing';
        probe.stateSinceMs = exit.at;
      }
      if (Number.isNaN(probe.failingSinceMs)) probe.failingSinceMs = exit.at;
      update(record, exit.at, deadWhen);
      return view(record, deadWhen);
    },
    evaluate(agent, at = now()) {
      const record = agents.get(agent);
      if (!record)
        throw new ProbeError(
          'PROBE_UNKNOWN_AGENT',
          `assessor: agent ${JSON.stringify(agent)} is not tracked`,
        );
      update(record, at, deadWhen);
      return view(record, deadWhen);
    },
    get(agent) {
      const record = agents.get(agent);
      return record && view(record, deadWhen);
    },
    forget(agent) {
      agentRules.delete(agent);
      return agents.delete(agent);
    },
    agents: () => [...agents.keys()],
  };
}

/** Moves the agent's verdict to `at`: grace, health, since and the episode's bookkeeping. */
function update(record: AgentRecord, at: number, deadWhen: DeadWhen): void {
  const health = record.exit ? 'dead' : healthOnly(record.probes, deadWhen);
  if (
    !record.graceOver &&
    (at >= record.startedAt + record.graceMs || provenHealthy(record, health))
  )
    record.graceOver = true;
  const shown = shownHealth(record, health);
  record.previous = record.health;
  record.changed = shown !== record.health;
  if (record.changed) {
    record.health = shown;
    record.since = record.exit && shown === 'dead' ? record.exit.at : at;
  }
  if (shown === 'healthy') {
    record.lastHealthyAt = at;
    record.firstFailedAt = Number.NaN;
  } else if ((shown === 'dead' || shown === 'degraded') && Number.isNaN(record.firstFailedAt)) {
    let first = at;
    for (const probe of record.probes)
      if (probe.state === 'failing' && probe.failingSinceMs < first) first = probe.failingSinceMs;
    record.firstFailedAt = first;
  }
}

/** The health and its reason from the probes and the exit alone, before the grace. */
function verdict(record: AgentRecord, deadWhen: DeadWhen): { health: Health; reason: string } {
  if (record.exit)
    return { health: 'dead', reason: `dead: process exited (${describeExit(record.exit)})` };
  return computeHealth(record.probes, deadWhen);
}

/** The health shown: unknown while the grace runs (an exit is dead whatever the grace). */
function shownHealth(record: AgentRecord, health: Health): Health {
  return !record.graceOver && !record.exit && health !== 'unknown' ? 'unknown' : health;
}

/** The last verdict as an {@link Assessment} (built on demand: nothing of it is kept). */
function view(record: AgentRecord, deadWhen: DeadWhen): Assessment {
  const computed = verdict(record, deadWhen);
  const graceEndsAt = record.startedAt + record.graceMs;
  const inGrace = !record.graceOver;
  let reason = computed.reason;
  if (inGrace && !record.exit && computed.health !== 'unknown') {
    const unproven = record.probes.filter((probe) => probe.critical && probe.state !== 'passing');
    reason =
      computed.health === 'healthy'
        ? `unknown: starting, waiting for ${unproven.map((probe) => probe.name).join(', ')} within the startup grace until ${new Date(graceEndsAt).toISOString()}`
        : `unknown: starting, within the startup grace until ${new Date(graceEndsAt).toISOString()} (would be ${reason})`;
  }
  const failing = record.probes.filter((probe) => probe.state === 'failing');
  return {
    agent: record.agent,
    health: record.health,
    previous: record.previous,
    changed: record.changed,
    since: record.since,
    ...(Number.isNaN(record.firstFailedAt) ? {} : { firstFailedAt: record.firstFailedAt }),
    ...(Number.isNaN(record.lastHealthyAt) ? {} : { lastHealthyAt: record.lastHealthyAt }),
    inGrace,
    graceEndsAt,
    failing: failing.map((probe) => probe.name),
    failures: Object.fromEntries(failing.map((probe) => [probe.name, probe.lastFailure])),
    probes: Object.fromEntries(record.probes.map((probe) => [probe.name, probe.toStatus()])),
    reason,
    ...(record.exit ? { exit: { ...record.exit } } : {}),
  };
}

/** A started agent proves itself on every critical probe: one passing probe (its process up) while another has not answered yet is not healthy. */
function provenHealthy(record: AgentRecord, health: Health): boolean {
  if (health !== 'healthy') return false;
  for (const probe of record.probes) if (probe.critical && probe.state !== 'passing') return false;
  return true;
}

/** Folds one sample into a probe's counters and state. */
function fold(probe: ProbeTrack, record: AgentRecord, result: ProbeResult): void {
  const at = result.observedAt;
  let ok = result.ok;
  let failure = result.failure;
  let detail = result.detail;
  // Evidence from before this incarnation (the previous process's last heartbeat) proves nothing now.
  if (ok && result.evidenceAt !== undefined && result.evidenceAt < record.notBefore) {
    ok = false;
    failure = 'stale';
    detail = `evidence predates the agent's start (${Math.round(record.notBefore - result.evidenceAt)} ms earlier): ${result.detail}`;
  }
  probe.remember(result, ok, failure ?? 'error', detail);
  if (!ok && probe.inconclusive?.includes(failure ?? 'error')) return;
  if (ok) {
    probe.consecutiveSuccesses += 1;
    probe.consecutiveFailures = 0;
    if (probe.state !== 'passing' && probe.consecutiveSuccesses >= probe.successThreshold) {
      probe.state = 'passing';
      probe.stateSinceMs = at;
    }
    if (probe.state === 'passing') probe.failingSinceMs = Number.NaN;
    return;
  }
  probe.consecutiveFailures += 1;
  probe.consecutiveSuccesses = 0;
  if (Number.isNaN(probe.failingSinceMs)) probe.failingSinceMs = at;
  probe.lastFailure = failure ?? 'error';
  if (probe.state !== 'failing' && probe.consecutiveFailures >= probe.failureThreshold) {
    probe.state = 'failing';
    probe.stateSinceMs = at;
  }
}

/** `exit code 1`, `signal SIGKILL`, or the exit's own detail. */
function describeExit(exit: ProcessExit): string {
  if (exit.detail !== undefined) return exit.detail;
  if (exit.signal) return `signal ${exit.signal}`;
  if (exit.code !== null && exit.code !== undefined) return `exit code ${exit.code}`;
  return 'status unknown';
}

/** {@link computeHealth}'s health without its reason (no string built: this runs on every sample). */
function healthOnly(
  statuses: readonly ProbeStatus[],
  deadWhen: 'any' | 'all' | HealthRule,
): Health {
  if (typeof deadWhen === 'function') return computeHealth(statuses, deadWhen).health;
  let known = false;
  let failing = false;
  let critical = 0;
  let failingCritical = 0;
  for (const status of statuses) {
    if (status.state !== 'unknown') known = true;
    if (status.critical) critical += 1;
    if (status.state !== 'failing') continue;
    failing = true;
    if (status.critical) failingCritical += 1;
  }
  if (!known) return 'unknown';
  if (deadWhen === 'any' && failingCritical > 0) return 'dead';
  if (deadWhen === 'all' && critical > 0 && failingCritical === critical) return 'dead';
  return failing ? 'degraded' : 'healthy';
}

function computeHealth(
  statuses: readonly ProbeStatus[],
  deadWhen: 'any' | 'all' | HealthRule,
): { health: Health; reason: string } {
  if (typeof deadWhen === 'function') {
    const health = deadWhen(statuses.map((status) => publicStatus(status)));
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

function publicStatus(status: ProbeStatus): ProbeStatus {
  return status instanceof ProbeTrack ? status.toStatus() : status;
}

function describeFailing(statuses: readonly ProbeStatus[]): string {
  return statuses
    .map((status) => {
      const last = status.lastResult;
      const why = last && !last.ok ? `${last.failure ?? 'error'}: ${last.detail}` : 'recovering';
      return `${status.name} (${status.consecutiveFailures} consecutive; ${why})`;
    })
    .join(', ');
}

function describeStates(statuses: readonly ProbeStatus[]): string {
  return statuses.map((status) => `${status.name} ${status.state}`).join(', ');
}
