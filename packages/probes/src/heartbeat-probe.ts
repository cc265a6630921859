import { z } from 'zod';
import {
  AgentNameSchema,
  heartbeatPath,
  readHeartbeat,
  readHeartbeatSync,
  type Heartbeat,
} from '@pit/cell-spec';
import type { PhiAccrualDetector } from './phi-accrual.js';
import {
  describeError,
  parseTarget,
  probeNow,
  runProbe,
  withoutLazySignal,
  type Outcome,
  type ProbeOptions,
  type ProbeResult,
} from './probe-result.js';

/**
 * Memory of an agent's work cycle between two heartbeat probes: which `cycle` (of which
 * `pid`) was seen, and since when. Pass the last result's `progress` back as `previous`.
 */
export interface CycleProgress {
  /** The heartbeat's `cycle`. */
  cycle: number;
  /** The heartbeat's `pid`: a new pid (restart) starts a new progress record. */
  pid: number;
  /** The timestamp of the first heartbeat seen with this cycle and pid, ms since the Unix epoch. */
  since: number;
}

/** Which heartbeat {@link heartbeatProbe} reads and how it judges it. */
export interface HeartbeatTarget {
  /** The cell directory (`<cells_root>/<uuid>`). */
  cellDir: string;
  /** The agent name; its heartbeat is `.lazarus/heartbeats/<agent>.json`. */
  agent: string;
  /** Stale (dead) when the heartbeat is older than this. ms. Required unless `detector` is given. */
  maxAgeMs?: number;
  /**
   * Stuck when the heartbeat is fresh but its `cycle` has not advanced for longer than this
   * (alive but not working). Needs `previous` (or {@link createHeartbeatProbe}). ms. @default off
   */
  stuckAfterMs?: number;
  /** The previous result's `progress`, for stuck detection. */
  previous?: CycleProgress;
  /**
   * A phi-accrual detector for this agent's stream: each new heartbeat timestamp is fed to it
   * and the heartbeat is stale once phi reaches its threshold (and, if given, also past `maxAgeMs`).
   */
  detector?: PhiAccrualDetector;
}

const CycleProgressSchema = z.strictObject({
  cycle: z.number().int().nonnegative(),
  pid: z.number().int().positive(),
  since: z.number(),
});

const HeartbeatTargetSchema = z
  .strictObject({
    cellDir: z.string().min(1),
    agent: AgentNameSchema,
    maxAgeMs: z.number().positive().optional(),
    stuckAfterMs: z.number().positive().optional(),
    previous: CycleProgressSchema.optional(),
    detector: z
      .custom<PhiAccrualDetector>(
        (value) =>
          typeof value === 'object' &&
          value !== null &&
          typeof (value as PhiAccrualDetector).phi === 'function',
        {
          message: 'must be a phi-accrual detector',
        },
      )
      .optional(),
  })
  .refine((target) => target.maxAgeMs !== undefined || target.detector !== undefined, {
    message: 'give maxAgeMs, a detector, or both',
    path: ['maxAgeMs'],
  });

/** The result of {@link heartbeatProbe}. */
export interface HeartbeatProbeResult extends ProbeResult {
  kind: 'heartbeat';
  /** The heartbeat read, when it was valid. */
  heartbeat?: Heartbeat;
  /** now − heartbeat timestamp, ms (negative when the timestamp is in the future). */
  ageMs?: number;
  /** Fresh but the cycle has not advanced for longer than `stuckAfterMs`. */
  stuck: boolean;
  /** The cycle memory to pass as `previous` next time. */
  progress?: CycleProgress;
  /** The detector's phi at observation time, when a detector is used. */
  phi?: number;
}

/**
 * Reads an agent's heartbeat (via @pit/cell-spec) and judges it: ok while its age is within
 * `maxAgeMs` (or its phi below the detector's threshold) and, with `stuckAfterMs`, while its
 * `cycle` keeps advancing. A missing or invalid heartbeat is a result, not an error. When
 * ok, `deadlineAt` is the instant it will turn stale or stuck unless a new heartbeat arrives.
 * Stateless: pass the last result's `progress` as `previous`; {@link createHeartbeatProbe} does that for you.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a bad agent name or thresholds; PROBE_INVALID_OPTIONS.
 * @example
 * const first = await heartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 30_000, stuckAfterMs: 600_000 });
 * const next = await heartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 30_000, stuckAfterMs: 600_000, previous: first.progress });
 */
export async function heartbeatProbe(
  target: HeartbeatTarget,
  options?: ProbeOptions,
): Promise<HeartbeatProbeResult> {
  const spec = parseTarget('heartbeat', HeartbeatTargetSchema, target);
  return probeHeartbeat(spec, options, spec.previous);
}

/**
 * heartbeatProbe after validation (createHeartbeatProbe validates its fixed target once). A read
 * of a file cannot be cancelled, so a scheduler's lazy signal is not made for it (see
 * withoutLazySignal).
 */
function probeHeartbeat(
  spec: HeartbeatTarget,
  options: ProbeOptions | undefined,
  previous: CycleProgress | undefined,
): Promise<HeartbeatProbeResult> {
  const path = heartbeatPath(spec.cellDir, spec.agent);
  return runProbe<HeartbeatProbeResult>(
    { kind: 'heartbeat', describe: `heartbeat ${path}` },
    withoutLazySignal(options),
    async (attempt) => {
      let heartbeat: Heartbeat;
      try {
        heartbeat = await readHeartbeat(spec.cellDir, spec.agent);
      } catch (error) {
        attempt.settle(readFailure(error, path));
        return;
      }
      attempt.settle(judge(spec, heartbeat, attempt.now(), previous));
    },
  );
}

/** A heartbeat that could not be read: missing (none written yet), unreadable, or invalid. */
function readFailure(error: unknown, path: string): Outcome<HeartbeatProbeResult> {
  const code = (error as { code?: string }).code;
  if (code === 'CELL_NOT_FOUND')
    return {
      ok: false,
      failure: 'missing',
      stuck: false,
      detail: `heartbeat ${path}: not written yet`,
    };
  return {
    ok: false,
    failure: code === 'CELL_IO' ? 'error' : 'invalid',
    stuck: false,
    detail: describeError(error),
  };
}

function judge(
  spec: HeartbeatTarget,
  heartbeat: Heartbeat,
  now: number,
  previous: CycleProgress | undefined,
): Omit<HeartbeatProbeResult, 'kind' | 'latencyMs' | 'observedAt'> {
  const beatAt = heartbeat.timestamp * 1000;
  const rawAge = now - beatAt;
  const ageMs = Math.round(rawAge);
  const progress: CycleProgress =
    previous && previous.cycle === heartbeat.cycle && previous.pid === heartbeat.pid
      ? previous
      : { cycle: heartbeat.cycle, pid: heartbeat.pid, since: beatAt };
  const detector = spec.detector;
  if (detector && (detector.lastHeartbeatAt === undefined || beatAt > detector.lastHeartbeatAt))
    detector.heartbeat(beatAt);
  const phi = detector?.phi(now);
  const facts = {
    heartbeat,
    ageMs,
    evidenceAt: beatAt,
    progress,
    ...(phi === undefined ? {} : { phi: round(phi, 3) }),
  };
  const who = `${heartbeat.agent} (pid ${heartbeat.pid}, cycle ${heartbeat.cycle}, ${heartbeat.status})`;
  const age = ageMs < 0 ? `timestamp ${seconds(-ageMs)} in the future` : `age ${seconds(ageMs)}`;

  if (spec.maxAgeMs !== undefined && rawAge > spec.maxAgeMs) {
    return {
      ok: false,
      failure: 'stale',
      stuck: false,
      ...facts,
      detail: `${who}: heartbeat stale: ${age} > ${seconds(spec.maxAgeMs)}`,
    };
  }
  if (detector && phi !== undefined && phi >= detector.threshold) {
    return {
      ok: false,
      failure: 'stale',
      stuck: false,
      ...facts,
      detail: `${who}: heartbeat suspected: phi ${round(phi, 2)} ≥ ${detector.threshold} (${age})`,
    };
  }
  const stuckFor = now - progress.since;
  if (spec.stuckAfterMs !== undefined && stuckFor > spec.stuckAfterMs) {
    return {
      ok: false,
      failure: 'stuck',
      stuck: true,
      ...facts,
      detail: `${who}: stuck: heartbeat fresh (${age}) but cycle ${heartbeat.cycle} has not advanced for ${seconds(stuckFor)} > ${seconds(spec.stuckAfterMs)}`,
    };
  }
  const deadlines = [
    spec.maxAgeMs === undefined ? Infinity : beatAt + spec.maxAgeMs,
    detector?.suspectAt() ?? Infinity,
    spec.stuckAfterMs === undefined ? Infinity : progress.since + spec.stuckAfterMs,
  ];
  const deadlineAt = Math.min(...deadlines);
  return {
    ok: true,
    stuck: false,
    ...facts,
    ...(Number.isFinite(deadlineAt) ? { deadlineAt: Math.ceil(deadlineAt) } : {}),
    detail: `${who}: heartbeat fresh (${age}${phi === undefined ? '' : `, phi ${round(phi, 2)}`})`,
  };
}

/** A heartbeat probe that remembers the agent's cycle between runs (for stuck detection). */
export interface HeartbeatProbe {
  /** Reads and judges the heartbeat, passing the remembered progress. */
  run(options?: ProbeOptions): Promise<HeartbeatProbeResult>;
  /** The remembered cycle progress, if any. */
  readonly progress: CycleProgress | undefined;
  /** Forgets the cycle memory (e.g. after the daemon restarted the agent). */
  reset(): void;
}

/**
 * Creates a stateful {@link heartbeatProbe} for one agent: it keeps the last cycle progress
 * itself, so stuck detection works across runs.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a bad target.
 * @example
 * const probe = createHeartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 30_000, stuckAfterMs: 600_000 });
 * scheduler.add({ agent: 'forge', probes: [{ name: 'heartbeat', intervalMs: 10_000, run: probe.run }] });
 */
export function createHeartbeatProbe(target: Omit<HeartbeatTarget, 'previous'>): HeartbeatProbe {
  const spec = parseTarget('heartbeat', HeartbeatTargetSchema, target);
  // The heartbeat's path is not kept (~120 bytes per agent): each run joins it again.
  let progress: CycleProgress | undefined;
  let generation = 0;
  return {
    async run(options) {
      const started = generation;
      // The target was validated once, here; a run validates only its options.
      const result = await probeHeartbeat(spec, options, progress);
      if (result.progress && started === generation) progress = result.progress;
      return result;
    },
    get progress() {
      return progress;
    },
    reset() {
      progress = undefined;
      generation += 1;
    },
  };
}

/** How {@link createHeartbeatCheck} judges every heartbeat it reads (a {@link HeartbeatTarget} without the agent). */
export type HeartbeatRule = Pick<HeartbeatTarget, 'maxAgeMs' | 'stuckAfterMs'>;

/**
 * Reads and judges one agent's heartbeat by a rule validated once (see {@link createHeartbeatCheck}).
 * Stateless: pass the last result's `progress` as `previous` for stuck detection.
 */
export type HeartbeatCheck = (
  cellDir: string,
  agent: string,
  options?: ProbeOptions,
  previous?: CycleProgress,
) => Promise<HeartbeatProbeResult>;

const HeartbeatRuleSchema = z.strictObject({
  maxAgeMs: z.number().positive(),
  stuckAfterMs: z.number().positive().optional(),
});

/**
 * One {@link heartbeatProbe} for a whole fleet whose agents share a rule: the rule is validated
 * once, here, and each call reads one agent's heartbeat, with nothing kept per agent (the
 * agent's name is checked by the read). For thousands of agents, instead of one
 * {@link createHeartbeatProbe} each.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a bad rule.
 * @example
 * const check = createHeartbeatCheck({ maxAgeMs: 90_000 });
 * const result = await check(cellDir, 'forge', { timeoutMs: 5000 });
 */
export function createHeartbeatCheck(rule: HeartbeatRule): HeartbeatCheck {
  const spec = parseTarget('heartbeat', HeartbeatRuleSchema, rule);
  return (cellDir, agent, options, previous) => {
    const target = { ...spec, cellDir, agent };
    const path = () => heartbeatPath(cellDir, agent);
    // Most reads are answered at once from a file the kernel has cached: no timer, no abort
    // listener, no signal made (see RunOptions).
    const now = probeNow<HeartbeatProbeResult>(
      'heartbeat',
      options,
      (clock) => {
        let heartbeat: Heartbeat | undefined;
        try {
          heartbeat = readHeartbeatSync(cellDir, agent);
        } catch (error) {
          return readFailure(error, path());
        }
        return heartbeat === undefined ? undefined : judge(target, heartbeat, clock(), previous);
      },
      () => `heartbeat ${path()}`,
    );
    if (now !== undefined) return Promise.resolve(now);
    // The full read, which may wait (with a scheduler's signal only if the probe already has one).
    return probeHeartbeat(target, options, previous);
  };
}

function seconds(ms: number): string {
  return `${round(ms / 1000, ms < 10_000 ? 3 : 1)} s`;
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
