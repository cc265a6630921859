/**
 * The supervision loop, composed: discovery (fleet-sync) → per-agent probes (agent-probes) →
 * the verdict (health) → @pit/policy's decision (evaluation) → the actions it calls for (actions,
 * restart, substitute) → the event log (event-writer) and the state store (state-store). This
 * file builds those modules' shared context and runs the lifecycle (start, sweep, reload, stop);
 * the same code runs the daemon's loop and `pit sweep --once`. It holds no logic of its own.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { createProbeScheduler, createProcessTable } from '@pit/probes';
import { createSnapshotStore } from '@pit/snapshot';
import { createFleetAssessor } from './agent-probes.js';
import { collectApprovalAnswers, decideApproval, onChannelDecision } from './approval-answers.js';
import { openApprovalStore } from './approvals.js';
import { controlAgent } from './controls.js';
import { effectivePolicy } from './effective-policy.js';
import { evaluateSoon, onProbeResult } from './evaluation.js';
import { createEventWriter } from './event-writer.js';
import { createExecutor, type ExecutorOptions } from './executor.js';
import type { PitConfig } from './config-schema.js';
import { createFleet } from './fleet.js';
import { fleetStatus } from './fleet-report.js';
import { createFleetSync, placeableAgents, type FleetSync } from './fleet-sync.js';
import { silentLogger, type Logger } from './logger.js';
import { loopHealth, startLoopTimers, type LoopTimers } from './loop-timers.js';
import { createLoopMetrics, registerLoopGauges } from './loop-metrics.js';
import { createMetricsRegistry } from './metrics.js';
import { silentNotifier } from './notifier.js';
import { providerServices, providerTickMs } from './provider-gate.js';
import { createPeriodicCheckpoints } from './periodic-checkpoints.js';
import { localCells, materialiseCell } from './cluster/cell-takeover.js';
import type { ClusterHooks } from './cluster/cluster-member.js';
import { stopAgent } from './restart.js';
import { openStateStore } from './cluster/shared-state-store.js';
import type { StopOutcome, Supervisor, SupervisorOptions } from './supervisor-api.js';
import type { SupervisorContext } from './supervisor-context.js';
import { sweepFleet } from './sweep.js';
import { detectAgentCgroups } from './agent-cgroups.js';
import { startAgentLogRotator, type AgentLogRotator } from './agent-log-rotator.js';

export type {
  AgentLeft,
  AgentStatus,
  FleetStatus,
  StopOutcome,
  Supervisor,
  SupervisorOptions,
  SweepReport,
} from './supervisor-api.js';

/** What the cluster member may do here (cluster/cluster-member.ts `ClusterHooks`). */
function clusterHooks(context: SupervisorContext, fleetSync: FleetSync): ClusterHooks {
  return {
    placeable: () => placeableAgents(context),
    resync: () => fleetSync.sync('loop'),
    stopLocal: async (key) => {
      const slot = context.fleet.slots.get(key);
      if (slot) await stopAgent(context, slot);
    },
    cells: () => localCells(context),
    materialise: (record, archive, from) => materialiseCell(context, record, archive, from),
  };
}

/**
 * Creates the supervision loop (see the module header).
 * @example
 * const supervisor = await createSupervisor({ config, env: process.env, logger });
 * await supervisor.start();
 */
export async function createSupervisor(options: SupervisorOptions): Promise<Supervisor> {
  const context = await createContext(options);
  const fleetSync = createFleetSync(context);
  const checkpoints = createPeriodicCheckpoints(context);
  const notifications = new Set<Promise<void>>();
  const settleNotifications = () => Promise.all([...notifications]).then(() => undefined);
  context.notify = (work) => {
    notifications.add(work);
    void work.finally(() => notifications.delete(work));
  };
  context.evaluateSoon = (slot) => evaluateSoon(context, slot);
  context.sync = (mode) => fleetSync.sync(mode);
  let timers: LoopTimers | undefined;
  let logRotator: AgentLogRotator | undefined;

  const start = async () => {
    context.scheduler = createProbeScheduler({
      onResult: (probeEvent) => onProbeResult(context, probeEvent),
      logger: context.logger,
      now: context.now,
    });
    await fleetSync.sync('loop');
    context.cluster?.start(clusterHooks(context, fleetSync));
    context.providers.start(providerTickMs(context));
    timers = await startLoopTimers(context, {
      discover: () => fleetSync.sync('loop'),
      housekeep: async () => {
        await collectApprovalAnswers(context);
        await checkpoints.tick();
      },
    });
    logRotator = startAgentLogRotator(context, context.cgroups);
    context.logger.info('supervising', {
      cells_root: context.config.cells.root,
      agents: context.fleet.slots.size,
    });
  };

  const stop: Supervisor['stop'] = async (stopOptions = {}) => {
    timers?.stop();
    await logRotator?.stop();
    context.providers.stop();
    context.providerAlerts.close();
    await context.providerMatrixFile.flush();
    return stopLoop(context, {
      stopAgents: stopOptions.stopAgents ?? false,
      settle: settleNotifications,
    });
  };

  const reload: Supervisor['reload'] = async (next, nextPolicyInput) => {
    context.config = next;
    context.policyInput = nextPolicyInput;
    context.policy = effectivePolicy(next);
    context.fleet.changed();
    await fleetSync.sync(context.scheduler ? 'loop' : 'sweep');
    context.logger.info('config reloaded', { agents: context.fleet.slots.size });
  };

  return {
    start,
    sweep: () => sweepFleet(context, settleNotifications, () => fleetSync.problems()),
    status: () => fleetStatus(context, fleetSync.problems()),
    decideApproval: (id, decision, body) => decideApproval(context, id, decision, body),
    control: (ref, action, request) => controlAgent(context, ref, action, request),
    reload,
    stop,
    health: () => loopHealth(context, fleetSync.last()),
    metrics: context.metrics.registry,
  };
}

/**
 * Stops probing and flushes every record, history and event; stops the agents too when asked.
 * Resolves with what it stopped and what it left running.
 */
async function stopLoop(
  context: SupervisorContext,
  options: { stopAgents: boolean; settle: () => Promise<void> },
): Promise<StopOutcome> {
  context.stopped = true;
  await context.scheduler?.stop();
  const slots = [...context.fleet.slots.values()];
  for (const slot of slots) if (slot.timer) clearTimeout(slot.timer);
  context.store.close();
  await Promise.all(slots.map((slot) => slot.queue));
  await options.settle();
  const outcome: StopOutcome = { leftRunning: [], stopped: [] };
  await Promise.all(
    slots.map(async (slot) => {
      if (!slot.process || slot.process.exit) return;
      const left = { agent: slot.key, pid: slot.process.pid };
      if (!options.stopAgents) return void outcome.leftRunning.push(left);
      await stopAgent(context, slot);
      slot.state.pid = undefined;
      slot.state.pid_start_time = undefined;
      outcome.stopped.push(left);
    }),
  );
  await context.store.flush();
  await context.events.flush();
  await context.executor.close();
  await context.approvals.close();
  for (const list of [outcome.leftRunning, outcome.stopped])
    list.sort((a, b) => a.agent.localeCompare(b.agent));
  return outcome;
}

/**
 * Level-2 agents of a root daemon run as `[sandbox] uid`/`gid`: a user namespace made by root
 * would make them root to the file system. Another daemon's agents are its own user already.
 */
function sandboxUserOf(config: PitConfig): Pick<ExecutorOptions, 'sandboxUser'> {
  return process.getuid?.() === 0
    ? { sandboxUser: { uid: config.sandbox.uid, gid: config.sandbox.gid } }
    : {};
}

/** One cgroup per agent start where the host allows it, as `[sandbox]` says. */
function agentCgroups(config: PitConfig, instance: string, logger: Logger) {
  const { agent_cgroups: setting, cgroup_favordynmods: favorDynmods } = config.sandbox;
  return detectAgentCgroups({ setting, favorDynmods, instance, logger });
}

/** The context every module takes; its callbacks (notify, evaluateSoon, sync) are set by createSupervisor. */
async function createContext(options: SupervisorOptions): Promise<SupervisorContext> {
  const { config } = options;
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? Date.now;
  const stateDir = config.daemon.state_dir;
  await fs.mkdir(stateDir, { recursive: true });
  // Every agent this daemon starts carries this id in its environment (PIT_INSTANCE): the next
  // daemon on the same state dir finds an agent whose pid never reached the state file.
  const instance = createHash('sha256')
    .update(await fs.realpath(stateDir))
    .digest('hex')
    .slice(0, 16);
  // One cgroup per agent start where the host allows it (a dry run starts nothing).
  const cgroups =
    options.executor || options.dryRun ? undefined : await agentCgroups(config, instance, logger);
  const executor =
    options.executor ??
    createExecutor({
      logger,
      env: options.env as NodeJS.ProcessEnv,
      podmanConfigDir: join(stateDir, 'podman'),
      killGroupOnExit: true,
      instance,
      logRotation: { maxBytes: config.logs.max_bytes, keep: config.logs.keep },
      // Agents are forked by the agent launcher (launcher-client.ts): a small process, so a fork
      // does not copy the daemon's page tables; one that is stopped or dies is replaced.
      launcher: true,
      ...(cgroups ? { cgroups } : {}),
      ...sandboxUserOf(config),
    });
  const unset = () => {
    throw new Error('the supervisor context is not wired yet');
  };
  const context: SupervisorContext = {
    config,
    policy: effectivePolicy(config),
    policyInput: options.policyInput,
    env: options.env,
    logger,
    now,
    dryRun: options.dryRun ?? false,
    stateDir,
    instance,
    executor,
    ...(cgroups ? { cgroups } : {}),
    store: await openStateStore({ stateDir, logger, now }, options.cluster),
    events: await createEventWriter({
      stateDir,
      logger,
      rotate: { maxBytes: config.logs.max_bytes, keep: config.logs.keep },
    }),
    approvals: await openApprovalStore({
      stateDir,
      logger,
      now,
      ...(options.approvalChannels ? { channels: options.approvalChannels } : {}),
      onChannelDecision: (approval) => void onChannelDecision(context, approval),
    }),
    snapshots: createSnapshotStore({ stateDir, logger }),
    notifier: options.notifier ?? silentNotifier,
    busHub: options.busHub,
    cluster: options.cluster,
    cgroupOf: cgroups ? (cell, agent) => cgroups.pathOf(cell, agent) : undefined,
    metrics: createLoopMetrics(options.metrics ?? createMetricsRegistry()),
    fleet: createFleet(),
    processTable: createProcessTable({ maxAgeMs: 1000 }),
    assessor: createFleetAssessor(now),
    ...providerServices(() => context, { logger, now, stateDir }),
    scheduler: undefined,
    stopped: false,
    notify: unset,
    evaluateSoon: unset,
    sync: unset,
  };
  registerLoopGauges(context);
  return context;
}
