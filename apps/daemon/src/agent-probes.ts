/**
 * Builds an agent's probes from its config (@pit/probes: heartbeat, process, HTTP, TCP,
 * WebSocket, exec, pid file, process pattern) and its assessor, and (un)schedules them on the
 * loop's scheduler. It judges nothing: verdicts are the assessor's, read by health.ts.
 */
import {
  createAssessor,
  createHeartbeatProbe,
  execProbe,
  httpProbe,
  processProbe,
  tcpProbe,
  wsProbe,
  type Assessor,
  type ProbeResult,
  type ScheduledProbe,
} from '@pit/probes';
import { cellPaths } from '@pit/cell-spec';
import type { AgentConfig, PitConfig } from './config-schema.js';
import type { SupervisorContext, SyncMode } from './supervisor-context.js';
import { configOf, describeExit, resolveAgentPath, startedByUsAt, type Slot } from './slot.js';

/** How long a probe that found the daemon's own child gone waits for wait(2) to say how it ended (ms). */
const EXIT_STATUS_WAIT_MS = 1000;

/** Assessors shared by the agents whose assessment settings are the same (one per setting, not per agent). */
export interface AssessorPool {
  /** The assessor for this config: failure and success thresholds, startup grace. A sweep judges on one sample. */
  forConfig(agentConfig: AgentConfig | undefined, mode: SyncMode): Assessor;
}

/** Creates an empty pool. */
export function createAssessorPool(now: () => number): AssessorPool {
  const pool = new Map<string, Assessor>();
  return {
    forConfig(agentConfig, mode) {
      const failureThreshold = mode === 'sweep' ? 1 : (agentConfig?.probes.failure_threshold ?? 3);
      const successThreshold = agentConfig?.probes.success_threshold ?? 1;
      const startupGraceMs = (agentConfig?.startup_grace_s ?? 30) * 1000;
      const key = `${failureThreshold}/${successThreshold}/${startupGraceMs}`;
      let assessor = pool.get(key);
      if (!assessor) {
        assessor = createAssessor({
          failureThreshold,
          successThreshold,
          startupGraceMs,
          probes: { process: { failureThreshold: 1 }, heartbeat: { failureThreshold: 1 } },
          now,
        });
        pool.set(key, assessor);
      }
      return assessor;
    },
  };
}

/** Every probe the agent's config asks for (the heartbeat and process probes by default). */
export function probesOf(context: SupervisorContext, slot: Slot): ScheduledProbe[] {
  const timing = probeTiming(context.config, configOf(slot));
  return [
    ...heartbeatProbes(context.config, slot, timing),
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

function heartbeatProbes(config: PitConfig, slot: Slot, timing: ProbeTiming): ScheduledProbe[] {
  if (!slot.cell || !(configOf(slot)?.probes.heartbeat ?? true)) return [];
  slot.heartbeat ??= createHeartbeatProbe({
    cellDir: slot.cell.dir,
    agent: slot.name,
    maxAgeMs: config.cells.heartbeat_stale_s * 1000,
  });
  const heartbeat = slot.heartbeat;
  const probe: ScheduledProbe = {
    name: 'heartbeat',
    ...timing,
    watchPath: cellPaths(slot.cell.dir).heartbeat(slot.name),
    run: async (runOptions) => {
      const result = await heartbeat.run(runOptions);
      // A heartbeat written before the agent was (re)started belongs to the previous incarnation.
      const startedAt = startedByUsAt(slot);
      const beatAt = result.heartbeat ? result.heartbeat.timestamp * 1000 : undefined;
      if (
        result.ok &&
        startedAt !== undefined &&
        beatAt !== undefined &&
        beatAt < startedAt - 1000
      ) {
        return {
          ...result,
          ok: false,
          failure: 'stale',
          detail: `heartbeat predates the agent's start (${Math.round((startedAt - beatAt) / 1000)} s earlier)`,
        };
      }
      return result;
    },
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
      const result = await processProbe(
        { pid: agentProcess.pid, startTime: agentProcess.startTime },
        runOptions,
      );
      if (result.ok || agentProcess.adopted || agentProcess.exit) return result;
      // The daemon's own child is alive until wait(2) says otherwise (its exit event, which also
      // triggers this probe): a /proc read that timed out in a busy thread pool is no death.
      if (result.failure === 'timeout') {
        return {
          ...result,
          ok: true,
          failure: undefined,
          detail: `pid ${agentProcess.pid}: running (the daemon's child, watched by wait(2); /proc read timed out: ${result.detail})`,
        };
      }
      // A zombie (or gone) child of the daemon: wait(2) is about to report how it ended. Wait for
      // that (bounded), so the death is recorded with its exit status, not as "zombie".
      let timer: NodeJS.Timeout | undefined;
      const exited = await Promise.race([
        agentProcess.exited,
        new Promise<undefined>(
          (resolve) => (timer = setTimeout(() => resolve(undefined), EXIT_STATUS_WAIT_MS)),
        ),
      ]);
      clearTimeout(timer);
      return exited ? { ...result, detail: `exited (${describeExit(exited)})` } : result;
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
  if (url) add('http', (runOptions) => httpProbe({ url }, runOptions));
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
  slot.assessor.track(slot.key, {
    startedAt: startedByUsAt(slot) ?? context.now(),
    probes: probes.map((probe) => probe.name),
  });
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
