/**
 * Builds an agent's probes from its config (@pit/probes: heartbeat, process, HTTP, TCP,
 * WebSocket, exec, pid file, process pattern) and its assessor, and (un)schedules them on the
 * loop's scheduler. It judges nothing: verdicts are the assessor's, read by health.ts.
 */
import {
  createAssessor,
  createHeartbeatCheck,
  execProbe,
  createHttpProbe,
  processProbe,
  tcpProbe,
  wsProbe,
  type Assessor,
  type HeartbeatCheck,
  type ProbeResult,
  type ScheduledProbe,
} from '@pit/probes';
import { cellPaths } from '@pit/cell-spec';
import type { AgentConfig, PitConfig } from './config-schema.js';
import type { SupervisorContext } from './supervisor-context.js';
import { configOf, describeExit, resolveAgentPath, startedByUsAt, type Slot } from './slot.js';

/** The fleet's one assessor: per-agent thresholds and grace are given when an agent is tracked. */
export function createFleetAssessor(now: () => number): Assessor {
  return createAssessor({
    probes: { process: { failureThreshold: 1 }, heartbeat: { failureThreshold: 1 } },
    now,
  });
}

/**
 * (Re)starts assessing an agent from `startedAt`: its thresholds and grace from its config (a
 * sweep judges on one sample), its probes, and the facts only the loop knows: the start of the
 * process the Pit itself started (a heartbeat older than that belongs to the previous
 * incarnation), that a timeout or a zombie of that child is no verdict (wait(2) reports its
 * exit), and that a managed agent's process has ended.
 */
export function trackAgent(
  context: SupervisorContext,
  slot: Slot,
  options: { startedAt: number; probes: readonly ScheduledProbe[] },
): void {
  const agentConfig = configOf(slot);
  const names = options.probes.map((probe) => probe.name);
  const own = slot.process && !slot.process.adopted ? slot.process : undefined;
  context.assessor.track(slot.key, {
    startedAt: options.startedAt,
    failureThreshold: context.scheduler ? (agentConfig?.probes.failure_threshold ?? 3) : 1,
    successThreshold: agentConfig?.probes.success_threshold ?? 1,
    startupGraceMs: (agentConfig?.startup_grace_s ?? 30) * 1000,
    ...(own
      ? {
          notBefore: own.startedAt.getTime(),
          probes: Object.fromEntries(
            names.map((name) => [
              name,
              name === 'process' ? { inconclusive: CHILD_INCONCLUSIVE } : {},
            ]),
          ),
        }
      : { probes: names }),
  });
  reportEnded(context, slot, options.startedAt);
}

/** A failure of the process probe on the daemon's own child that is not a verdict: wait(2) will say. */
const CHILD_INCONCLUSIVE = ['timeout', 'not_running'] as const;

/**
 * Tells the assessor that a managed agent's process has ended: it exited (wait(2) or the exit
 * poll said how), vanished, or none runs although one was recorded or the agent was dead. Dead
 * at once, whatever the grace.
 */
export function reportEnded(context: SupervisorContext, slot: Slot, notBefore = 0): void {
  if (slot.supervision.mode !== 'managed' || (slot.process && !slot.exit)) return;
  const exit = slot.exit;
  if (!exit && slot.state.pid === undefined && slot.state.health !== 'dead') return;
  const at = Math.max(exit?.at.getTime() ?? context.now(), notBefore);
  context.assessor.exited(
    slot.key,
    exit && exit.how !== 'vanished'
      ? { at, code: exit.code, signal: exit.signal }
      : { at, detail: exit ? `process exited (${describeExit(exit)})` : 'process not running' },
  );
}

/** Every probe the agent's config asks for (the heartbeat and process probes by default). */
export function probesOf(context: SupervisorContext, slot: Slot): ScheduledProbe[] {
  const timing = probeTiming(context.config, configOf(slot));
  return [
    ...heartbeatProbes(context, slot, timing),
    ...(slot.supervision.mode === 'managed' ? [ownProcessProbe(slot, timing)] : []),
    ...targetProbes(context, slot, timing),
  ];
}

interface ProbeTiming {
  intervalMs: number;
  timeoutMs: number;
}

function probeTiming(config: PitConfig, agentConfig: AgentConfig | undefined): ProbeTiming {
  return {
    intervalMs: (agentConfig?.probes.interval_s ?? config.cells.poll_interval_s) * 1000,
    timeoutMs: (agentConfig?.probes.timeout_s ?? 5) * 1000,
  };
}

/**
 * The fleet's heartbeat probe: one `run` for every agent, judging by the config in force (one
 * check per config, validated once), so an agent costs its schedule entry and nothing else.
 */
const heartbeatRuns = new WeakMap<SupervisorContext, ScheduledProbe['run']>();
const heartbeatChecks = new WeakMap<PitConfig, HeartbeatCheck>();

function heartbeatRun(context: SupervisorContext): ScheduledProbe['run'] {
  let run = heartbeatRuns.get(context);
  if (run === undefined) {
    run = (runOptions, { agent }) => {
      const slot = context.fleet.slots.get(agent);
      if (!slot?.cell) return Promise.resolve(unsupervised(agent, runOptions.now()));
      return heartbeatCheck(context.config)(slot.cell.dir, slot.name, runOptions);
    };
    heartbeatRuns.set(context, run);
  }
  return run;
}

function heartbeatCheck(config: PitConfig): HeartbeatCheck {
  let check = heartbeatChecks.get(config);
  if (check === undefined) {
    check = createHeartbeatCheck({ maxAgeMs: config.cells.heartbeat_stale_s * 1000 });
    heartbeatChecks.set(config, check);
  }
  return check;
}

/** A run for an agent removed meanwhile (its result is dropped by the scheduler). */
function unsupervised(agent: string, now: number): ProbeResult {
  return {
    kind: 'heartbeat',
    ok: false,
    latencyMs: 0,
    detail: `${agent}: no longer supervised`,
    observedAt: now,
    failure: 'error',
  };
}

function heartbeatProbes(
  context: SupervisorContext,
  slot: Slot,
  timing: ProbeTiming,
): ScheduledProbe[] {
  if (!slot.cell || !(configOf(slot)?.probes.heartbeat ?? true)) return [];
  const probe: ScheduledProbe = {
    name: 'heartbeat',
    ...timing,
    watchPath: cellPaths(slot.cell.dir).heartbeat(slot.name),
    // Watched, a fresh heartbeat is read when it is written and a stale one at its deadline: the
    // poll only catches a change notification the kernel dropped, a third of the stale age apart.
    watchedIntervalMs: Math.max(
      timing.intervalMs,
      (context.config.cells.heartbeat_stale_s * 1000) / 3,
    ),
    run: heartbeatRun(context),
  };
  return [probe];
}

/** The process the Pit started or adopted: alive, and the same process (its start time). */
function ownProcessProbe(slot: Slot, timing: ProbeTiming): ScheduledProbe {
  return {
    name: 'process',
    ...timing,
    run: async (runOptions) => {
      const agentProcess = slot.process;
      const exit = agentProcess?.exit;
      if (!agentProcess || exit) {
        return {
          kind: 'process',
          ok: false,
          latencyMs: 0,
          detail: exit ? `exited (${describeExit(exit)})` : 'not running (not started by the pit)',
          observedAt: runOptions.now(),
          failure: 'not_running',
        } satisfies ProbeResult;
      }
      return processProbe({ pid: agentProcess.pid, startTime: agentProcess.startTime }, runOptions);
    },
  };
}

/** The probes of the agent's targets: HTTP, TCP, WebSocket, exec, pid file, process pattern. */
function targetProbes(
  context: SupervisorContext,
  slot: Slot,
  timing: ProbeTiming,
): ScheduledProbe[] {
  const agentConfig = configOf(slot);
  const probes = agentConfig?.probes;
  if (!probes) return [];
  const list: ScheduledProbe[] = [];
  const add = (name: string, run: ScheduledProbe['run']) => list.push({ name, ...timing, run });
  const { health_url: url, ws, tcp, exec, pid_file: pidFileSetting, process: pattern } = probes;
  // The config accepts only http(s) URLs, so the probe is built once here, not at every run.
  if (url) add('http', createHttpProbe(url));
  if (tcp) {
    const index = tcp.lastIndexOf(':');
    const target = {
      host: tcp.slice(0, index).replace(/^\[(.*)\]$/, '$1'),
      port: Number(tcp.slice(index + 1)),
    };
    add('tcp', (runOptions) => tcpProbe(target, runOptions));
  }
  if (ws) add('ws', (runOptions) => wsProbe({ url: ws }, runOptions));
  const [command, ...args] = exec ?? [];
  if (command !== undefined) {
    const cwd = slot.cell ? cellPaths(slot.cell.dir).workspace : agentConfig.cwd;
    add('exec', (runOptions) => execProbe({ command, args, ...(cwd ? { cwd } : {}) }, runOptions));
  }
  if (pidFileSetting) {
    const pidFile = resolveAgentPath(slot, pidFileSetting, context.stateDir);
    add('pid_file', (runOptions) => processProbe({ pidFile }, runOptions));
  }
  if (pattern) {
    const processTable = context.processTable;
    add('pattern', (runOptions) => processProbe({ pattern }, { ...runOptions, processTable }));
  }
  return list;
}

/**
 * Whether a failed probe failed for want of the daemon's own resources (out of descriptors or
 * memory, an I/O error: EMFILE, ENFILE, EAGAIN, ENOMEM, EIO), which says nothing about the agent:
 * such a sample is not evidence, and counting it would declare running agents dead.
 */
export function isOwnResourceFailure(result: ProbeResult): boolean {
  return (
    !result.ok &&
    result.failure === 'error' &&
    /\b(EMFILE|ENFILE|EAGAIN|ENOMEM|EIO)\b/.test(result.detail)
  );
}

/** Counts a probe run in the loop's metrics. */
export function countProbe(context: SupervisorContext, result: ProbeResult): void {
  context.metrics.probesTotal.inc({ kind: result.kind, ok: String(result.ok) });
  context.metrics.probeLatency.observe({ kind: result.kind }, result.latencyMs / 1000);
}

/** Schedules the agent's probes (loop mode); an agent without any probe is reported, not scheduled. */
export function scheduleProbes(context: SupervisorContext, slot: Slot): void {
  const scheduler = context.scheduler;
  if (!scheduler) return;
  const probes = probesOf(context, slot);
  trackAgent(context, slot, { startedAt: startedByUsAt(slot) ?? context.now(), probes });
  if (probes.length === 0) {
    context.logger.warn('agent has no probe: not supervised until it has one', { agent: slot.key });
    return;
  }
  scheduler.add({ agent: slot.key, probes });
  slot.scheduled = true;
}

/** Stops probing the agent. */
export function unscheduleProbes(context: SupervisorContext, slot: Slot): void {
  if (slot.scheduled) context.scheduler?.remove(slot.key);
  slot.scheduled = false;
}
