/**
 * The supervision loop, composed: discovery (fleet-sync) → per-agent probes (agent-probes) →
 * the verdict (health) → @pit/policy's decision (evaluation) → the actions it calls for (actions,
 * restart, substitute) → the event log (event-writer) and the state store (state-store). This
 * file builds those modules' shared context and runs the lifecycle (start, sweep, reload, stop);
 * the same code runs the daemon's loop and `pit sweep --once`. It holds no logic of its own.
 */
import { getHeapStatistics } from 'node:v8';
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
import { silentLogger } from './logger.js';
import { startLoopTimers, type LoopTimers } from './loop-timers.js';
import {
  LATENCY_BUCKETS_S,
  createMetricsRegistry,
  type Labels,
  type MetricsRegistry,
} from './metrics.js';
import { silentNotifier } from './notifier.js';
import { createProviderAlerts } from './provider-alerts.js';
import { createProviderTracker } from './provider-health.js';
import { createProviderMatrixWriter } from './provider-matrix-file.js';
import { onProviderChange, providerAgents, switchBackDue } from './provider-gate.js';
import { createPeriodicCheckpoints } from './periodic-checkpoints.js';
import { localCells, materialiseCell } from './cluster/cell-takeover.js';
import type { ClusterHooks } from './cluster/cluster-member.js';
import { stopAgent } from './restart.js';
import { openFileStateStore, type StateStore } from './state-store.js';
import type { ClusterMember } from './cluster/cluster-member.js';
import { withSharedRecords } from './cluster/shared-state-store.js';
import type { StopOutcome, Supervisor, SupervisorOptions } from './supervisor-api.js';
import { iso, type SupervisorContext, type SupervisorMetrics } from './supervisor-context.js';
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
    health: () => loopHealth(context, fleetSync),
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

/** The loop's own health: discovery ran recently and the last one succeeded. */
function loopHealth(
  context: SupervisorContext,
  fleetSync: FleetSync,
): ReturnType<Supervisor['health']> {
  const last = fleetSync.last();
  if (!last) return { ok: false, reason: 'no discovery yet' };
  const staleAfter = Math.max(30_000, context.config.cells.poll_interval_s * 5000);
  const at = { last_discovery: iso(last.at) };
  if (!last.ok)
    return {
      ok: false,
      ...at,
      reason: `the last discovery failed: ${last.error ?? 'unknown error'}`,
    };
  const silentFor = context.now() - last.at;
  if (silentFor > staleAfter) {
    return {
      ok: false,
      ...at,
      reason: `no discovery for ${Math.round(silentFor / 1000)} s (the loop is stuck)`,
    };
  }
  return { ok: true, ...at };
}

/** The file store; clustered, its records of agents this host holds are shared across hosts too. */
async function openStateStore(
  options: Parameters<typeof openFileStateStore>[0],
  cluster: ClusterMember | undefined,
): Promise<StateStore> {
  const files = await openFileStateStore(options);
  return cluster ? withSharedRecords(files, cluster) : files;
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
    options.executor || options.dryRun
      ? undefined
      : await detectAgentCgroups({ setting: config.sandbox.agent_cgroups, instance, logger });
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
    metrics: createMetrics(options.metrics ?? createMetricsRegistry()),
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
  registerGauges(context);
  return context;
}

/** The provider matrix and its outage alerts, over the context (read when they run, not now). */
function providerServices(
  contextOf: () => SupervisorContext,
  options: { logger: SupervisorContext['logger']; now: () => number; stateDir: string },
): Pick<SupervisorContext, 'providers' | 'providerAlerts' | 'providerMatrixFile'> {
  const { logger, now } = options;
  const providerMatrixFile = createProviderMatrixWriter(options);
  return {
    providerMatrixFile,
    providers: createProviderTracker({
      providers: () => contextOf().config.providers,
      agents: () => providerAgents(contextOf()),
      logger,
      now,
      onChange: (change) => onProviderChange(contextOf(), change),
      afterTick: () => {
        const context = contextOf();
        switchBackDue(context);
        // For `pit status` with no daemon to ask: written in the background, only on a change.
        if (!context.dryRun) providerMatrixFile.offer(context.providers.matrix());
      },
    }),
    providerAlerts: createProviderAlerts({
      send: (kind, summary) => {
        const context = contextOf();
        const notice = context.notifier.notice;
        if (notice) context.notify(notice(kind, summary));
      },
      now,
    }),
  };
}

/** How often the provider matrix is looked at: the poll interval, or a provider's interval when shorter (≥ 100 ms). */
function providerTickMs(context: SupervisorContext): number {
  const intervals = Object.values(context.config.providers).map((provider) => provider.interval_s);
  return Math.max(100, Math.min(context.config.cells.poll_interval_s, ...intervals) * 1000);
}

function createMetrics(registry: MetricsRegistry): SupervisorMetrics {
  return {
    registry,
    probesTotal: registry.counter('pit_probes_total', 'Probe runs by kind and outcome.', [
      'kind',
      'ok',
    ]),
    probeLatency: registry.histogram(
      'pit_probe_latency_seconds',
      'Probe latency by kind.',
      LATENCY_BUCKETS_S,
      ['kind'],
    ),
    restartsTotal: registry.counter('pit_restarts_total', 'Agents (re)started by the Pit.', [
      'agent',
    ]),
    rollbacksTotal: registry.counter(
      'pit_rollbacks_total',
      'Config rollbacks to last known good.',
      ['agent'],
    ),
    approvalsTotal: registry.counter('pit_approvals_total', 'Approval requests by outcome.', [
      'outcome',
    ]),
    sweepDuration: registry.histogram(
      'pit_sweep_duration_seconds',
      'Duration of full sweeps.',
      [0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    ),
  };
}

const PROVIDER_STATUSES = ['healthy', 'degraded', 'dead', 'unknown'] as const;

function registerGauges(context: SupervisorContext): void {
  const registry = context.metrics.registry;
  registry.gauge('pit_agents', 'Supervised agents by health.', ['state'], () => {
    const counts: Record<string, number> = { unknown: 0, healthy: 0, degraded: 0, dead: 0 };
    for (const slot of context.fleet.slots.values())
      counts[slot.state.health] = (counts[slot.state.health] ?? 0) + 1;
    return Object.entries(counts).map(([state, value]) => [{ state }, value]);
  });
  const cluster = context.cluster;
  if (cluster) {
    registry.gauge(
      'pit_cluster_fenced',
      '1 while this host has lost its cluster lease (it revives nothing), else 0.',
      [],
      () => [[{}, cluster.fenced() ? 1 : 0]],
    );
    registry.gauge('pit_cluster_agents_held', 'Agents this host owns in the cluster.', [], () => [
      [{}, cluster.heldCount()],
    ]);
  }
  registry.gauge(
    'pit_provider_status',
    'Model providers by status (1 for the status each is in).',
    ['provider', 'status'],
    () =>
      context.providers
        .matrix()
        .flatMap((entry) =>
          PROVIDER_STATUSES.map((status): [Labels, number] => [
            { provider: entry.provider, status },
            entry.status === status ? 1 : 0,
          ]),
        ),
  );
  registry.gauge('pit_approvals_pending', 'Approval requests waiting for an answer.', [], () => [
    [{}, context.approvals.list('pending').length],
  ]);
  registry.gauge(
    'pit_daemon_memory_bytes',
    "The daemon's own memory: resident set, V8 heap used, V8 heap limit (--max-old-space-size).",
    ['kind'],
    () => [
      [{ kind: 'resident' }, process.memoryUsage.rss()],
      [{ kind: 'heap_used' }, process.memoryUsage().heapUsed],
      [{ kind: 'heap_limit' }, getHeapStatistics().heap_size_limit],
    ],
  );
}
