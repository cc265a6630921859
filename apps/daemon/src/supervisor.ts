import { createHash } from 'node:crypto';
import { watch, type FSWatcher, promises as fs } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import {
  appendEvent,
  cellPaths,
  discoverCells,
  readCellState,
  readHeartbeat,
  readJsonFile,
  updateManifest,
  writeCellState,
  writeJsonAtomic,
  CellStateSchema,
  type AgentState,
  type AgentEventInput,
  type CellEventInput,
  type CellManifest,
  type CellState,
} from '@pit/cell-spec';
import {
  createFleetIndex,
  decide,
  validatePolicy,
  formatPolicyProblems,
  type ApprovalRecord,
  type Decision,
  type FleetIndex,
  type FleetView,
  type HealthyPeriod,
} from '@pit/policy';
import {
  createAssessor,
  createHeartbeatProbe,
  createProbeScheduler,
  execProbe,
  httpProbe,
  processProbe,
  tcpProbe,
  wsProbe,
  createProcessTable,
  type Assessor,
  type HeartbeatProbe,
  type ProbeEvent,
  type ProbeResult,
  type ProbeScheduler,
  type ScheduledProbe,
} from '@pit/probes';
import {
  createSnapshotStore,
  listCheckpoints,
  restoreCheckpoint,
  createCheckpoint,
  pruneCheckpoints,
  type CanonicalSource,
  type SnapshotStore,
} from '@pit/snapshot';
import { composeAgentEnv } from './agent-env.js';
import type { BusHub } from './bus-hub.js';
import { publishHandoff } from './handoff.js';
import type { ApprovalChannel } from '@pit/notify';
import { openApprovalStore, type ApprovalStore, type StoredApproval } from './approvals.js';
import type { AgentConfig, PitConfig } from './config-schema.js';
import { createExecutor, type AgentExit, type AgentProcess, type Executor } from './executor.js';
import type { ApprovalDecisionBody, ApprovalDecisionResult } from './http.js';
import { silentLogger, type Logger } from './logger.js';
import { silentNotifier, type Notifier } from './notifier.js';
import { LATENCY_BUCKETS_S, createMetricsRegistry, type MetricsRegistry } from './metrics.js';
import { findMarkedProcesses, markedKey, type MarkedProcess } from './proc.js';
import { z } from 'zod';
import { approvalChannels, effectivePolicy } from './effective-policy.js';

/** Options of {@link createSupervisor}. */
export interface SupervisorOptions {
  /** The validated config (paths absolute). */
  config: PitConfig;
  /** The daemon's environment (PATH for agents, `env_from` secrets). */
  env: Record<string, string | undefined>;
  logger?: Logger;
  metrics?: MetricsRegistry;
  /** Decide and record, but start, stop and roll back nothing. @default false */
  dryRun?: boolean;
  /** Clock, ms since epoch. @default Date.now */
  now?: () => number;
  /** Use this executor (tests). */
  executor?: Executor;
  /** The `[policy]` table as written, for @pit/policy's reference checks (agents, missions, channels it names must exist). */
  policyInput?: unknown;
  /** Where deaths and recoveries are reported (death issues). @default nobody */
  notifier?: Notifier;
  /** The mission buses served over WebSocket: agents get credentials, handoffs go through the open bus. */
  busHub?: BusHub;
  /** Channels that show approval requests and bring answers back (Telegram, Nostr). */
  approvalChannels?: ApprovalChannel[];
}

/** One supervised agent in {@link FleetStatus}. */
export interface AgentStatus {
  key: string;
  agent: string;
  cell?: string;
  mission?: string;
  host: string;
  health: AgentState['health'];
  since?: string;
  first_dead_at?: string;
  heartbeat_age_s?: number;
  pid?: number;
  revive_attempts: number;
  restarts: number;
  backoff_until?: string;
  pending_approval?: string;
  substituted_by?: string;
  last_decision?: AgentState['last_decision'];
  failing: string[];
}

/** What `GET /api/status` and `pit status` show. */
export interface FleetStatus {
  generated_at: string;
  cells: Array<{ uuid: string; name?: string; mission: string; status: string; agents: string[] }>;
  agents: AgentStatus[];
  approvals: StoredApproval[];
  problems: string[];
}

/** The outcome of one {@link Supervisor.sweep}. */
export interface SweepReport {
  /** Every agent healthy (the exit code of `pit sweep --once`). */
  healthy: boolean;
  agents: Array<{
    key: string;
    health: AgentState['health'];
    action?: string;
    rule?: string;
    reason?: string;
  }>;
  durationMs: number;
}

/** The supervision loop. */
export interface Supervisor {
  /** Discovers cells, adopts or starts agents and schedules their probes. */
  start(): Promise<void>;
  /**
   * One full check of every agent and the actions it calls for (the cron one-shot): each
   * probe runs once, each verdict goes to the policy, decisions are carried out and persisted.
   */
  sweep(): Promise<SweepReport>;
  status(): Promise<FleetStatus>;
  /** Answers an approval request (HTTP, CLI): the approved action is carried out at once. */
  decideApproval(
    id: string,
    decision: 'approve' | 'deny',
    body: ApprovalDecisionBody & { channel?: 'http' | 'cli' },
  ): Promise<ApprovalDecisionResult>;
  /** Applies a new config: agents added are supervised, removed ones no longer, changed ones re-scheduled. */
  reload(config: PitConfig, policyInput?: unknown): Promise<void>;
  /** Stops probing and flushes state; stops the agents too when `stopAgents`. */
  stop(options?: { stopAgents?: boolean }): Promise<void>;
  /** The loop's own health: discovery ran recently and the last one succeeded. */
  health(): { ok: boolean; last_discovery?: string; reason?: string };
  metrics: MetricsRegistry;
}

interface Slot {
  key: string;
  name: string;
  cell?: { uuid: string; dir: string; manifest: CellManifest; role: string };
  config: AgentConfig | undefined;
  state: AgentState;
  healthy: HealthyPeriod[];
  process?: AgentProcess;
  exit?: AgentExit;
  assessor: Assessor;
  heartbeat?: HeartbeatProbe;
  queue: Promise<void>;
  timer?: NodeJS.Timeout;
  lastSnapshotAt: number;
  lastRule?: string;
  /** A death of the current episode was reported to people. */
  reported: boolean;
  scheduled: boolean;
  configJson: string;
  /** Where its state is persisted: its cell's dir, or {@link HOST}. */
  target: string;
  /** When its state was last written whole (ms; the start of that write). */
  persistedAt: number;
}

/** A healthy agent's state (last_healthy_at) is written at least this often while nothing else changes (ms). */
const HEALTHY_PERSIST_MS = 60_000;
/** history.json is written at most this often while it keeps changing (ms). */
const HISTORY_WRITE_MS = 2_000;
/** A failed state write is retried after this long, doubling up to {@link PERSIST_RETRY_MAX_MS} (ms). */
const PERSIST_RETRY_MS = 500;
const PERSIST_RETRY_MAX_MS = 8_000;

const HistorySchema = z.strictObject({
  version: z.literal(1),
  agents: z.record(
    z.string(),
    z.strictObject({
      healthy: z.array(z.strictObject({ from: z.number(), to: z.number().optional() })),
    }),
  ),
  fleet_restarts: z.array(z.number()),
});

const HOST = 'host';

/** The key of the agent `name` in `slot`'s cell (or outside cells, when `slot` is). */
const scopedKey = (slot: { cell?: { uuid: string } }, name: string) =>
  `${slot.cell?.uuid ?? HOST}/${name}`;

/**
 * Creates the supervision loop: discovery → per-agent probes (@pit/probes) → assessment →
 * `decide()` (@pit/policy) → actions (executor, @pit/snapshot) → `events.jsonl` and
 * `.lazarus/state.json`. The same code runs the daemon's loop and `pit sweep --once`.
 * @example
 * const supervisor = await createSupervisor({ config, env: process.env, logger });
 * await supervisor.start();
 */
export async function createSupervisor(options: SupervisorOptions): Promise<Supervisor> {
  let config = options.config;
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? Date.now;
  const dryRun = options.dryRun ?? false;
  const stateDir = config.daemon.state_dir;
  const hostEvents = join(stateDir, 'logs', 'events.jsonl');
  // Created once here, not before every append (the hot path from an exit to its restart).
  await fs.mkdir(join(stateDir, 'logs'), { recursive: true });
  // Every agent this daemon starts carries this id in its environment (PIT_INSTANCE): the next
  // daemon on the same state dir finds an agent whose pid never reached the state file.
  const instance = createHash('sha256')
    .update(await fs.realpath(stateDir))
    .digest('hex')
    .slice(0, 16);
  const executor =
    options.executor ??
    createExecutor({
      logger,
      env: options.env as NodeJS.ProcessEnv,
      podmanConfigDir: join(stateDir, 'podman'),
      killGroupOnExit: true,
      instance,
    });
  const snapshots: SnapshotStore = createSnapshotStore({ stateDir, logger });
  const approvals: ApprovalStore = await openApprovalStore({
    stateDir,
    logger,
    now,
    ...(options.approvalChannels ? { channels: options.approvalChannels } : {}),
    onChannelDecision: (approval) => void onChannelDecision(approval),
  });
  const metrics = options.metrics ?? createMetricsRegistry();
  const slots = new Map<string, Slot>();
  /** The slots persisted together (one cell's state file, or the host state), by target. */
  const members = new Map<string, Set<Slot>>();
  const addSlot = (slot: Slot) => {
    slots.set(slot.key, slot);
    let group = members.get(slot.target);
    if (!group) members.set(slot.target, (group = new Set()));
    group.add(slot);
    fleetChanged();
  };
  const removeSlot = (slot: Slot) => {
    slots.delete(slot.key);
    const group = members.get(slot.target);
    group?.delete(slot);
    if (group?.size === 0) members.delete(slot.target);
    fleetChanged();
  };
  /**
   * The fleet as policy sees it, indexed once and shared by every decision until something in it
   * changes (a health or `since`, a substitution, a start, the set of agents, the config).
   */
  let fleetIndex: FleetIndex | undefined;
  const fleetChanged = () => {
    fleetIndex = undefined;
  };
  /** Substitutes being set up: discovery must not start them before their handoff exists. */
  const heldBack = new Set<string>();
  const problems: string[] = [];
  const processTable = createProcessTable({ maxAgeMs: 1000 });
  const historyPath = join(stateDir, 'history.json');
  const history: z.infer<typeof HistorySchema> = await readJsonFile(
    historyPath,
    HistorySchema,
  ).catch(() => ({ version: 1 as const, agents: {}, fleet_restarts: [] }));
  let scheduler: ProbeScheduler | undefined;
  let rootWatcher: FSWatcher | undefined;
  let discoveryTimer: NodeJS.Timeout | undefined;
  let housekeepingTimer: NodeJS.Timeout | undefined;
  let stopped = false;
  let policy = effectivePolicy(config);
  let policyInput = options.policyInput;
  const notifier = options.notifier ?? silentNotifier;
  const notifications = new Set<Promise<void>>();
  const notify = (work: Promise<void>) => {
    notifications.add(work);
    void work.finally(() => notifications.delete(work));
  };

  // Metrics.
  const probesTotal = metrics.counter('pit_probes_total', 'Probe runs by kind and outcome.', [
    'kind',
    'ok',
  ]);
  const probeLatency = metrics.histogram(
    'pit_probe_latency_seconds',
    'Probe latency by kind.',
    LATENCY_BUCKETS_S,
    ['kind'],
  );
  const restartsTotal = metrics.counter('pit_restarts_total', 'Agents (re)started by the Pit.', [
    'agent',
  ]);
  const rollbacksTotal = metrics.counter(
    'pit_rollbacks_total',
    'Config rollbacks to last known good.',
    ['agent'],
  );
  const approvalsTotal = metrics.counter('pit_approvals_total', 'Approval requests by outcome.', [
    'outcome',
  ]);
  const sweepDuration = metrics.histogram(
    'pit_sweep_duration_seconds',
    'Duration of full sweeps.',
    [0.01, 0.05, 0.1, 0.5, 1, 5, 30],
  );
  metrics.gauge('pit_agents', 'Supervised agents by health.', ['state'], () => {
    const counts: Record<string, number> = { unknown: 0, healthy: 0, degraded: 0, dead: 0 };
    for (const slot of slots.values())
      counts[slot.state.health] = (counts[slot.state.health] ?? 0) + 1;
    return Object.entries(counts).map(([state, value]) => [{ state }, value]);
  });
  metrics.gauge('pit_approvals_pending', 'Approval requests waiting for an answer.', [], () => [
    [{}, approvals.list('pending').length],
  ]);

  const iso = (ms: number) => new Date(ms).toISOString();

  // ---- persistence -------------------------------------------------------------------
  // Writes are coalesced: a write that has not started yet already covers every later change
  // of its cell (it writes every member's state as it is when it runs).
  const cellWrites = new Map<string, Promise<void>>();
  const queuedWrites = new Map<string, Promise<void>>();
  /**
   * history.json (every agent's healthy periods, the fleet's restarts) is one file for the whole
   * fleet: written one at a time, at most every HISTORY_WRITE_MS while it keeps changing (a storm
   * of 1,000 deaths is one or two writes, not 1,000 concurrent ones), and at once by sweep() and
   * stop(). A daemon SIGKILLed loses at most that much of it; the restarts that the intensity
   * and backoff rules count are in each cell's state file, written with the agent's state.
   */
  let historyChain: Promise<void> = Promise.resolve();
  let historyTimer: NodeJS.Timeout | undefined;
  let lastHistoryWrite = 0;
  /** Healthy periods or fleet restarts changed since history.json was last written. */
  let historyDirty = false;
  const flushHistory = (): Promise<void> => {
    if (historyTimer) clearTimeout(historyTimer);
    historyTimer = undefined;
    historyChain = historyChain
      .then(async () => {
        if (!historyDirty) return;
        historyDirty = false;
        lastHistoryWrite = Date.now();
        for (const slot of slots.values())
          history.agents[slot.key] = { healthy: slot.healthy.slice(-5) };
        history.fleet_restarts = history.fleet_restarts
          .filter((at) => now() - at < 24 * 3600_000)
          .slice(-500);
        await writeJsonAtomic(historyPath, history);
      })
      .catch((error: unknown) => {
        historyDirty = true;
        logger.error('cannot persist history', { error: String(error) });
      });
    return historyChain;
  };
  const scheduleHistory = () => {
    if (!historyDirty || historyTimer || stopped) return;
    historyTimer = setTimeout(
      () => void flushHistory(),
      Math.max(0, lastHistoryWrite + HISTORY_WRITE_MS - Date.now()),
    );
    historyTimer.unref();
  };
  /** A failed write is retried on a timer (one per target), so that it lands once space or access returns. */
  const persistRetries = new Map<string, { timer?: NodeJS.Timeout; delay: number }>();
  const persist = (slot: Slot): Promise<void> => {
    const target = slot.target;
    const queued = queuedWrites.get(target);
    if (queued) return queued;
    const previous = cellWrites.get(target) ?? Promise.resolve();
    const next = previous.then(async () => {
      queuedWrites.delete(target);
      const startedAt = now();
      const group = [...(members.get(target) ?? [])];
      const existing = slot.cell
        ? await readCellState(slot.cell.dir).catch(() => emptyState())
        : await readHostState();
      const state: CellState = {
        version: 1,
        updated_at: iso(startedAt),
        agents: { ...existing.agents },
      };
      for (const member of group) state.agents[member.name] = member.state;
      if (slot.cell) await writeCellState(slot.cell.dir, state);
      else await writeJsonAtomic(join(stateDir, 'host-state.json'), CellStateSchema.parse(state));
      // Only a write that landed counts: a healthy agent whose write failed is written again.
      for (const member of group) member.persistedAt = startedAt;
      const retry = persistRetries.get(target);
      if (retry) {
        clearTimeout(retry.timer);
        persistRetries.delete(target);
        logger.info('state persisted again', { target: slot.cell?.dir ?? 'host' });
      }
      scheduleHistory();
    });
    const settled = next.catch((error: unknown) => {
      const retry = persistRetries.get(target) ?? { delay: PERSIST_RETRY_MS / 2 };
      retry.delay = Math.min(retry.delay * 2, PERSIST_RETRY_MAX_MS);
      logger.error('cannot persist state', {
        agent: slot.key,
        error: String(error),
        retry_in_ms: retry.delay,
      });
      if (!retry.timer && !stopped) {
        retry.timer = setTimeout(() => {
          retry.timer = undefined;
          const member = members.get(target)?.values().next().value;
          if (!stopped && member) void persist(member);
        }, retry.delay);
        retry.timer.unref();
      }
      persistRetries.set(target, retry);
    });
    queuedWrites.set(target, settled);
    cellWrites.set(target, settled);
    return settled;
  };
  const readHostState = async (): Promise<CellState> =>
    readJsonFile(join(stateDir, 'host-state.json'), CellStateSchema).catch(() => emptyState());

  /**
   * Appends go through one queue per log file: the order in the log is the order of the calls,
   * so a caller on the hot path (an exit, its decision, the restart) need not wait for the write.
   * `ts` is taken when the event is queued. Every queue is flushed by `sweep` and `stop`.
   */
  const eventQueues = new Map<string, Promise<void>>();
  const appendQueued = (
    path: string,
    input: CellEventInput,
    what: { agent: string },
  ): Promise<void> => {
    const record = { ...input, ts: input.ts ?? new Date().toISOString() };
    const write = async () => {
      try {
        await appendEvent(path, record);
      } catch (error) {
        // The host log's directory removed while running: make it again, once.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || path !== hostEvents) throw error;
        await fs.mkdir(join(stateDir, 'logs'), { recursive: true });
        await appendEvent(path, record);
      }
    };
    const next = (eventQueues.get(path) ?? Promise.resolve()).then(write).catch((error: unknown) =>
      logger.error('cannot append event', {
        agent: what.agent,
        event: input.event,
        error: String(error),
      }),
    );
    eventQueues.set(path, next);
    void next.then(() => {
      if (eventQueues.get(path) === next) eventQueues.delete(path);
    });
    return next;
  };
  const event = (slot: Slot, input: AgentEventInput): Promise<void> =>
    appendQueued(
      slot.cell ? cellPaths(slot.cell.dir).events : hostEvents,
      { ...input, agent: slot.name },
      { agent: slot.key },
    );
  const flushEvents = () => Promise.all([...eventQueues.values()]);

  // ---- discovery ---------------------------------------------------------------------
  const desiredSlots = async () => {
    const wanted = new Map<
      string,
      { name: string; cell?: Slot['cell']; config: AgentConfig | undefined }
    >();
    const discovery = await discoverCells(config.cells.root);
    problems.length = 0;
    for (const problem of discovery.problems) problems.push(`${problem.path}: ${problem.reason}`);
    for (const cell of discovery.supervised) {
      for (const agent of cell.manifest.agents) {
        const agentConfig = config.agents[agent.name];
        if (agentConfig && agentConfig.cell !== undefined && agentConfig.cell !== cell.uuid)
          continue;
        wanted.set(`${cell.uuid}/${agent.name}`, {
          name: agent.name,
          cell: { uuid: cell.uuid, dir: cell.dir, manifest: cell.manifest, role: agent.role },
          config: agentConfig,
        });
      }
    }
    for (const [name, agentConfig] of Object.entries(config.agents)) {
      if (agentConfig.cell === 'none') wanted.set(`${HOST}/${name}`, { name, config: agentConfig });
    }
    const missions = new Set(discovery.supervised.map((cell) => cell.manifest.mission));
    if (policyInput !== undefined) {
      // Checked again only when the policy or the fleet it names changed (a discovery every poll
      // over 10,000 agents would otherwise re-validate them all, ~100 ms of a blocked loop each time).
      const agents = [...wanted.values()]
        .map((slot) => ({
          name: slot.name,
          ...(slot.cell ? { mission: slot.cell.manifest.mission } : {}),
        }))
        .concat(Object.keys(config.agents).map((name) => ({ name })));
      const fleetSignature = `${agents.map((agent) => `${agent.name}\0${agent.mission ?? ''}`).join('\n')}\n\n${[...missions].join('\n')}`;
      if (
        policyCheck?.input !== policyInput ||
        policyCheck.config !== config ||
        policyCheck.fleet !== fleetSignature
      ) {
        const checked = validatePolicy(policyInput, {
          agents,
          missions: [...missions, ...Object.keys(config.policy.missions)],
          approvalChannels: approvalChannels(config),
        });
        policyCheck = {
          input: policyInput,
          config,
          fleet: fleetSignature,
          problem: checked.ok
            ? undefined
            : `policy: ${formatPolicyProblems(checked.problems, 'policy')}`,
        };
      }
      if (policyCheck.problem) problems.push(policyCheck.problem);
    }
    return { wanted, discovery };
  };
  /** The last policy check, and what it checked. */
  let policyCheck:
    { input: unknown; config: PitConfig; fleet: string; problem: string | undefined } | undefined;

  /** Live processes marked with this daemon's instance, read from `/proc` once per discovery pass (when one is needed). */
  let marked: Promise<Map<string, MarkedProcess>> | undefined;
  let lastDiscovery: { at: number; ok: boolean; error?: string } | undefined;
  /** Discovery runs one at a time (timer, root watcher, reloads and substitutions all call it). */
  let syncing: Promise<void> = Promise.resolve();
  const sync = (mode: 'loop' | 'sweep') => {
    const next = syncing.then(() => syncNow(mode));
    syncing = next.catch(() => undefined);
    return next;
  };
  const syncNow = async (mode: 'loop' | 'sweep') => {
    if (stopped) return;
    let desired: Awaited<ReturnType<typeof desiredSlots>>;
    try {
      desired = await desiredSlots();
      lastDiscovery = { at: now(), ok: true };
    } catch (error) {
      lastDiscovery = {
        at: now(),
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      };
      throw error;
    }
    const { wanted } = desired;
    marked = undefined;
    // Saved states are read only for agents seen for the first time (once per cell, once for the host).
    const persisted = new Map<string, Promise<CellState>>();
    const savedState = (dir: string | undefined): Promise<CellState> => {
      const key = dir ?? HOST;
      let state = persisted.get(key);
      if (!state)
        persisted.set(
          key,
          (state = dir ? readCellState(dir).catch(() => emptyState()) : readHostState()),
        );
      return state;
    };
    for (const [key, want] of wanted) {
      const existing = slots.get(key);
      const configJson = JSON.stringify(want.config ?? null);
      if (existing) {
        if (want.cell) {
          if (want.cell.dir !== existing.target) {
            removeSlot(existing);
            existing.target = want.cell.dir;
            addSlot(existing);
          }
          existing.cell = want.cell;
        }
        if (existing.configJson !== configJson) {
          existing.config = want.config;
          existing.configJson = configJson;
          fleetChanged();
          existing.assessor = makeAssessor(want.config, mode);
          existing.heartbeat = undefined;
          if (existing.scheduled) unschedule(existing);
          logger.info('agent config changed', { agent: key });
        }
        if (mode === 'loop' && !existing.scheduled) schedule(existing);
        continue;
      }
      const saved = (await savedState(want.cell?.dir)).agents[want.name];
      const slot: Slot = {
        key,
        name: want.name,
        ...(want.cell ? { cell: want.cell } : {}),
        config: want.config,
        state: saved ?? { health: 'unknown', revive_attempts: 0, restarts: [] },
        healthy: history.agents[key]?.healthy ?? [],
        assessor: makeAssessor(want.config, mode),
        queue: Promise.resolve(),
        lastSnapshotAt: 0,
        reported: false,
        scheduled: false,
        configJson,
        target: want.cell?.dir ?? HOST,
        persistedAt: 0,
      };
      // An approval request stored by a daemon killed before the agent's state named it: link it
      // again, so that answers from another process (`pit approve`) and the status see it.
      const latest = approvals.latest(key);
      if (latest?.status === 'pending' && slot.state.pending_approval !== latest.id) {
        slot.state.pending_approval = latest.id;
        logger.info('re-linked a pending approval request the state file did not name', {
          agent: key,
          approval: latest.id,
        });
      }
      addSlot(slot);
      await attach(slot, saved === undefined);
      if (mode === 'loop') schedule(slot);
    }
    for (const [key, slot] of slots) {
      if (wanted.has(key)) continue;
      unschedule(slot);
      if (slot.timer) clearTimeout(slot.timer);
      removeSlot(slot);
      logger.info('agent no longer supervised', { agent: key });
      if (
        slot.cell &&
        options.busHub &&
        ![...slots.values()].some((other) => other.cell?.dir === slot.cell!.dir)
      )
        await options.busHub.release(slot.cell.dir);
    }
  };

  /** Adopts the recorded process, or starts an agent seen for the first time. */
  const attach = async (slot: Slot, firstSight: boolean) => {
    const { pid, pid_start_time: startTime } = slot.state;
    if (pid !== undefined && startTime !== undefined) {
      const adopted = await executor.adopt({
        agent: slot.name,
        ...(slot.cell ? { cell: slot.cell.uuid } : {}),
        pid,
        startTime,
        level: slot.config?.isolation.level ?? 1,
        ...(slot.config?.isolation.level === 3 ? { container: containerName(slot) } : {}),
      });
      if (adopted) {
        watchProcess(slot, adopted);
        logger.info('re-adopted a running agent', { agent: slot.key, pid });
        return;
      }
    }
    // The recorded process is gone, or none was recorded: the last daemon may have started one
    // (a replacement, a first start) and been killed before its pid reached the state file.
    if (canStart(slot) && (await adoptUnrecorded(slot))) return;
    if (pid !== undefined && startTime !== undefined) {
      slot.exit = { code: null, signal: null, at: new Date(now()), how: 'vanished' };
      logger.warn('recorded agent process is gone', { agent: slot.key, pid });
      return;
    }
    if (firstSight && canStart(slot) && slot.cell?.manifest.status !== 'frozen') {
      // A substitute being set up is started by the substitution itself, with its handoff.
      if (!heldBack.has(slot.key))
        await startAgent(slot, { reason: 'first start', attempt: 0, initial: true });
    }
  };

  const adoptUnrecorded = async (slot: Slot): Promise<boolean> => {
    marked ??= findMarkedProcesses(instance);
    const found = (await marked).get(markedKey(slot.cell?.uuid, slot.name));
    if (!found || found.pid === slot.state.pid) return false;
    const level = slot.config?.isolation.level ?? 1;
    const adopted = await executor.adopt({
      agent: slot.name,
      ...(slot.cell ? { cell: slot.cell.uuid } : {}),
      pid: found.pid,
      startTime: found.startTime,
      level,
      ...(level === 3 ? { container: containerName(slot) } : {}),
    });
    if (!adopted) return false;
    logger.warn('adopted a running agent its state file did not record', {
      agent: slot.key,
      pid: found.pid,
      recorded_pid: slot.state.pid,
    });
    watchProcess(slot, adopted);
    void event(slot, {
      event: 'agent_adopted',
      pid: found.pid,
      reason:
        slot.state.pid === undefined
          ? 'found running, no pid recorded'
          : `found running; the recorded pid ${slot.state.pid} is gone`,
    });
    void persist(slot);
    return true;
  };

  const canStart = (slot: Slot) => slot.config?.argv !== undefined && slot.config.host === 'local';
  const containerName = (slot: Slot) =>
    `pit-${slot.name}-${slot.cell ? slot.cell.uuid.slice(0, 8) : 'host'}`;

  const watchProcess = (slot: Slot, agentProcess: AgentProcess) => {
    slot.process = agentProcess;
    slot.exit = undefined;
    slot.state.pid = agentProcess.pid;
    slot.state.pid_start_time = agentProcess.startTime;
    void agentProcess.exited.then((exit) => {
      if (slot.process !== agentProcess) return;
      slot.exit = exit;
      logger.warn('agent process exited', {
        agent: slot.key,
        code: exit.code,
        signal: exit.signal,
      });
      if (scheduler?.has(slot.key)) {
        try {
          scheduler.trigger(slot.key);
        } catch {
          // unscheduled meanwhile
        }
      }
      enqueue(slot);
    });
  };

  // ---- probes ------------------------------------------------------------------------
  const makeAssessor = (agentConfig: AgentConfig | undefined, mode: 'loop' | 'sweep') => {
    const threshold = mode === 'sweep' ? 1 : (agentConfig?.probes.failure_threshold ?? 3);
    return createAssessor({
      failureThreshold: threshold,
      successThreshold: agentConfig?.probes.success_threshold ?? 1,
      startupGraceMs: (agentConfig?.startup_grace_s ?? 30) * 1000,
      probes: { process: { failureThreshold: 1 }, heartbeat: { failureThreshold: 1 } },
      now,
    });
  };

  const probesOf = (slot: Slot): ScheduledProbe[] => {
    const agentConfig = slot.config;
    const probes = agentConfig?.probes;
    const intervalMs = (probes?.interval_s ?? config.cells.poll_interval_s) * 1000;
    const timeoutMs = (probes?.timeout_s ?? 5) * 1000;
    const list: ScheduledProbe[] = [];
    const track = (probe: ScheduledProbe): ScheduledProbe => ({
      ...probe,
      run: async (runOptions, context) => {
        const result = await probe.run(runOptions, context);
        probesTotal.inc({ kind: result.kind, ok: String(result.ok) });
        probeLatency.observe({ kind: result.kind }, result.latencyMs / 1000);
        return result;
      },
    });
    if (slot.cell && (probes?.heartbeat ?? true)) {
      slot.heartbeat ??= createHeartbeatProbe({
        cellDir: slot.cell.dir,
        agent: slot.name,
        maxAgeMs: config.cells.heartbeat_stale_s * 1000,
      });
      const heartbeat = slot.heartbeat;
      list.push(
        track({
          name: 'heartbeat',
          intervalMs,
          timeoutMs,
          watchPath: cellPaths(slot.cell.dir).heartbeat(slot.name),
          run: async (runOptions) => {
            const result = await heartbeat.run(runOptions);
            // A heartbeat written before the agent was (re)started belongs to the previous incarnation.
            const startedAt =
              slot.process && !slot.process.adopted ? slot.process.startedAt.getTime() : undefined;
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
        }),
      );
    }
    if (canStart(slot)) {
      list.push(
        track({
          name: 'process',
          intervalMs,
          timeoutMs,
          run: async (runOptions) => {
            const agentProcess = slot.process;
            if (!agentProcess || agentProcess.exit) {
              return {
                kind: 'process',
                ok: false,
                latencyMs: 0,
                detail: agentProcess
                  ? `exited (${describeExit(agentProcess.exit!)})`
                  : 'not running (not started by the pit)',
                observedAt: runOptions.now(),
                failure: 'not_running',
              } satisfies ProbeResult;
            }
            const result = await processProbe(
              { pid: agentProcess.pid, startTime: agentProcess.startTime },
              runOptions,
            );
            // The daemon's own child is alive until wait(2) says otherwise (its exit event, which also
            // triggers this probe): a /proc read that timed out in a busy thread pool is no death.
            if (
              !result.ok &&
              result.failure === 'timeout' &&
              !agentProcess.adopted &&
              !agentProcess.exit
            ) {
              return {
                ...result,
                ok: true,
                failure: undefined,
                detail: `pid ${agentProcess.pid}: running (the daemon's child, watched by wait(2); /proc read timed out: ${result.detail})`,
              };
            }
            if (!result.ok && !agentProcess.adopted && !agentProcess.exit) {
              // A zombie (or gone) child of the daemon: wait(2) is about to report how it ended. Wait
              // for that (bounded), so the death is recorded with its exit status, not as "zombie".
              let timer: NodeJS.Timeout | undefined;
              const exit = await Promise.race([
                agentProcess.exited,
                new Promise<undefined>(
                  (resolve) => (timer = setTimeout(() => resolve(undefined), 1000)),
                ),
              ]);
              clearTimeout(timer);
              if (exit) return { ...result, detail: `exited (${describeExit(exit)})` };
            }
            return result;
          },
        }),
      );
    }
    if (probes?.health_url)
      list.push(
        track({
          name: 'http',
          intervalMs,
          timeoutMs,
          run: (runOptions) => httpProbe({ url: probes.health_url! }, runOptions),
        }),
      );
    if (probes?.tcp) {
      const index = probes.tcp.lastIndexOf(':');
      const target = {
        host: probes.tcp.slice(0, index).replace(/^\[(.*)\]$/, '$1'),
        port: Number(probes.tcp.slice(index + 1)),
      };
      list.push(
        track({
          name: 'tcp',
          intervalMs,
          timeoutMs,
          run: (runOptions) => tcpProbe(target, runOptions),
        }),
      );
    }
    if (probes?.ws)
      list.push(
        track({
          name: 'ws',
          intervalMs,
          timeoutMs,
          run: (runOptions) => wsProbe({ url: probes.ws! }, runOptions),
        }),
      );
    if (probes?.exec) {
      const [command, ...args] = probes.exec;
      const cwd = slot.cell ? cellPaths(slot.cell.dir).workspace : agentConfig?.cwd;
      list.push(
        track({
          name: 'exec',
          intervalMs,
          timeoutMs,
          run: (runOptions) =>
            execProbe({ command: command!, args, ...(cwd ? { cwd } : {}) }, runOptions),
        }),
      );
    }
    if (probes?.pid_file) {
      const pidFile = resolvePath(slot, probes.pid_file);
      list.push(
        track({
          name: 'pid_file',
          intervalMs,
          timeoutMs,
          run: (runOptions) => processProbe({ pidFile }, runOptions),
        }),
      );
    }
    if (probes?.process) {
      const pattern = probes.process;
      list.push(
        track({
          name: 'pattern',
          intervalMs,
          timeoutMs,
          run: (runOptions) => processProbe({ pattern }, { ...runOptions, processTable }),
        }),
      );
    }
    return list;
  };

  const schedule = (slot: Slot) => {
    if (!scheduler) return;
    const probes = probesOf(slot);
    slot.assessor.track(slot.key, {
      startedAt: slot.process && !slot.process.adopted ? slot.process.startedAt.getTime() : now(),
      probes: probes.map((probe) => probe.name),
    });
    if (probes.length === 0) {
      logger.warn('agent has no probe: not supervised until it has one', { agent: slot.key });
      return;
    }
    scheduler.add({ agent: slot.key, probes });
    slot.scheduled = true;
  };
  const unschedule = (slot: Slot) => {
    if (slot.scheduled) scheduler?.remove(slot.key);
    slot.scheduled = false;
  };

  const onResult = (probeEvent: ProbeEvent) => {
    const slot = slots.get(probeEvent.agent);
    if (!slot) return;
    const assessment = slot.assessor.record(slot.key, probeEvent.probe, probeEvent.result);
    // A healthy verdict that changes nothing needs no evaluation (and no decision): only a change,
    // a death, or a healthy verdict with something left to do (a recovery the loop has not seen
    // yet, an approval to cancel, a backoff to clear, a snapshot or a state write due).
    if (
      assessment.changed ||
      assessment.health === 'dead' ||
      (assessment.health === 'healthy' && !settledHealthy(slot, probeEvent.result.observedAt))
    )
      enqueue(slot);
  };

  /** Healthy in the loop's eyes with nothing pending: evaluating it again would decide `none` and change nothing. */
  const quietlyHealthy = (slot: Slot) =>
    slot.state.health === 'healthy' &&
    slot.state.pending_approval === undefined &&
    slot.state.backoff_until === undefined &&
    slot.timer === undefined &&
    slot.exit === undefined &&
    (slot.lastRule === 'none:health.healthy' || slot.cell?.manifest.status === 'frozen') &&
    approvals.latest(slot.key)?.status !== 'pending';
  const snapshotDue = (slot: Slot, at: number) =>
    (slot.config?.config_files.length ?? 0) > 0 &&
    !dryRun &&
    at - slot.lastSnapshotAt >= config.cells.poll_interval_s * 1000;
  const settledHealthy = (slot: Slot, at: number) =>
    quietlyHealthy(slot) && !snapshotDue(slot, at) && at - slot.persistedAt < HEALTHY_PERSIST_MS;

  // ---- evaluation --------------------------------------------------------------------
  const enqueue = (slot: Slot) => {
    slot.queue = slot.queue
      .then(() => evaluate(slot))
      .catch((error: unknown) =>
        logger.error('evaluation failed', {
          agent: slot.key,
          error: error instanceof Error ? error.stack : String(error),
        }),
      );
    return slot.queue;
  };

  /** The health the policy sees: an exited process is dead at once, whatever the grace. */
  const healthOf = (slot: Slot) => {
    const assessment = slot.assessor.get(slot.key);
    const exited = canStart(slot) && (!slot.process || slot.exit !== undefined);
    if (exited && (slot.exit || slot.state.pid !== undefined || slot.state.health === 'dead')) {
      const at = slot.exit?.at.getTime() ?? assessment?.firstFailedAt ?? now();
      return {
        state: 'dead' as const,
        since: at,
        reason: slot.exit ? `process exited (${describeExit(slot.exit)})` : 'process not running',
        failure: {
          failing_probes: [
            'process',
            ...(assessment?.failing.filter((name) => name !== 'process') ?? []),
          ],
          ...(slot.exit?.code !== null && slot.exit?.code !== undefined
            ? { exit_code: slot.exit.code }
            : {}),
          ...(slot.exit?.signal ? { signal: slot.exit.signal } : {}),
          detail: slot.exit ? `process exited (${describeExit(slot.exit)})` : 'process not running',
        },
      };
    }
    if (!assessment) return { state: 'unknown' as const, since: now(), reason: 'no verdict yet' };
    // The startup grace is the assessor's (tracked from the process's start): healthy only once
    // every critical probe passed, never dead by probes while it lasts.
    const failingProbes = assessment.failing;
    return {
      state: assessment.health,
      since:
        assessment.health === 'dead'
          ? (assessment.firstFailedAt ?? assessment.since)
          : assessment.since,
      reason: assessment.reason,
      failure: {
        failing_probes: failingProbes,
        ...(Object.values(assessment.failures).includes('stuck') ? { stuck: true } : {}),
        detail: failingProbes
          .map((name) => assessment.probes[name]?.lastResult?.detail ?? name)
          .join('; '),
      },
    };
  };

  const evaluate = async (slot: Slot) => {
    if (stopped || !slots.has(slot.key)) return;
    const at = now();
    const health = healthOf(slot);
    const before = slot.state.health;
    if (health.state === 'healthy' && quietlyHealthy(slot)) {
      // Healthy and unchanged: nothing to decide. Snapshot the config when due; write the state now and then.
      slot.state.last_healthy_at = iso(at);
      await snapshotConfig(slot, at);
      if (at - slot.persistedAt >= HEALTHY_PERSIST_MS) void persist(slot);
      return;
    }
    if (health.state !== before) {
      slot.state.health = health.state;
      slot.state.since = iso(health.since);
      fleetChanged();
      historyDirty = true;
      if (health.state === 'dead') {
        slot.state.first_dead_at ??= iso(health.since);
        void event(slot, {
          event: 'agent_dead',
          reason: health.reason,
          failing: health.failure?.failing_probes ?? [],
        });
        if (notifier.died)
          notify(
            notifier.died({
              agent: slot.name,
              mission: slot.cell?.manifest.mission ?? 'outside cells',
              ...(slot.cell ? { cell: slot.cell.uuid } : {}),
              reason: health.reason,
              at: new Date(health.since),
              fleetSize: slots.size,
            }),
          );
      } else if (health.state === 'healthy') {
        slot.state.first_dead_at = undefined;
        slot.state.last_healthy_at = iso(at);
        slot.healthy.push({ from: at });
        // Only the recent periods matter (history.json keeps 5): a flapping agent must not grow it forever.
        if (slot.healthy.length > 20) slot.healthy.splice(0, slot.healthy.length - 20);
        await event(slot, { event: 'agent_healthy' });
        if (before === 'dead' || before === 'degraded' || slot.reported) {
          slot.reported = false;
          notify(notifier.recovery(slot.name, `${slot.name} is healthy again (${iso(at)})`));
        }
      } else if (health.state === 'degraded') {
        await event(slot, { event: 'agent_degraded', reason: health.reason });
      }
      if (before === 'healthy') {
        const open = slot.healthy.at(-1);
        if (open && open.to === undefined) open.to = at;
      }
      logger.info('agent health changed', {
        agent: slot.key,
        from: before,
        to: health.state,
        reason: health.reason,
      });
    } else if (health.state === 'dead') {
      slot.state.first_dead_at ??= iso(health.since);
    }
    if (health.state === 'healthy') {
      slot.state.last_healthy_at = iso(at);
      await snapshotConfig(slot, at);
    }
    if (slot.cell?.manifest.status === 'frozen') {
      void persist(slot);
      return;
    }
    if (health.state === 'dead' && before !== 'dead' && policy.fleet_brake.enabled) {
      // A new death is decided one turn of the event loop later, so that deaths arriving together
      // (a storm: many exits in one poll) are all in the fleet the policy sees (the fleet brake).
      // Without the brake nothing depends on the rest of the fleet's deaths: decided at once.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (stopped || !slots.has(slot.key)) return;
    }
    const decision = decideFor(slot, health, at);
    await carryOut(slot, decision, at);
    // Not awaited: the next evaluation (say, the exit of the agent just started) must not queue
    // behind a state write. Writes are coalesced per cell and awaited by sweep() and stop().
    void persist(slot);
  };

  const decideFor = (slot: Slot, health: ReturnType<typeof healthOf>, at: number): Decision => {
    const firstDead = slot.state.first_dead_at ? Date.parse(slot.state.first_dead_at) : undefined;
    const approval = approvalRecord(approvals.latest(slot.key));
    return decide({
      agent: {
        name: slot.name,
        ...(slot.cell ? { mission: slot.cell.manifest.mission } : {}),
        local: (slot.config?.host ?? 'local') === 'local',
        restartable: canStart(slot),
      },
      health: {
        state: health.state,
        since: health.state === 'dead' && firstDead !== undefined ? firstDead : health.since,
        ...(health.state === 'dead' && health.failure ? { failure: health.failure } : {}),
      },
      history: {
        restarts: slot.state.restarts.map((value) => Date.parse(value)),
        healthy: slot.healthy,
        ...(approval ? { approval } : {}),
        ...(slot.state.substituted_by ? { substituted_by: slot.state.substituted_by } : {}),
      },
      // Only a death consults the fleet (brake, substitutes).
      ...(health.state === 'dead' ? { fleet: fleetFor(slot) } : {}),
      now: at,
      config: policy,
      seed: slot.key,
    });
  };

  const currentFleet = (): FleetIndex => (fleetIndex ??= createFleetIndex(fleetView()));

  /** A configured local agent, not pinned to a cell: it can be started in any cell (a standby substitute). */
  const isStandby = (name: string) => {
    const agentConfig = config.agents[name];
    return (
      agentConfig !== undefined &&
      agentConfig.argv !== undefined &&
      agentConfig.host === 'local' &&
      agentConfig.cell === undefined
    );
  };

  /**
   * The fleet keyed by slot key (`<cell uuid>/<name>`, `host/<name>`): two cells with agents of
   * the same name are two agents (the fleet brake counts both, once each). Standbys that run
   * nowhere yet count as `standby/<name>`.
   */
  const fleetView = (): FleetView => {
    const byKey = new Map<string, FleetView['agents'][number]>();
    const names = new Set<string>();
    const agents: FleetView['agents'][number][] = [];
    for (const slot of slots.values()) {
      // Revived but not healthy yet: still a death of this storm for the fleet brake (it counts
      // deaths within its window; exits decided one by one would otherwise never add up).
      const recovering = slot.state.health === 'unknown' && slot.state.first_dead_at !== undefined;
      const state = recovering ? 'dead' : slot.state.health;
      const since =
        state === 'dead' ? (slot.state.first_dead_at ?? slot.state.since) : slot.state.since;
      const agent = { name: slot.key, state, ...(since ? { since: Date.parse(since) } : {}) };
      agents.push(agent);
      byKey.set(slot.key, agent);
      names.add(slot.name);
    }
    for (const slot of slots.values()) {
      const standIn = slot.state.substituted_by
        ? byKey.get(scopedKey(slot, slot.state.substituted_by))
        : undefined;
      if (standIn) Object.assign(standIn, { substituting_for: slot.key });
    }
    for (const name of Object.keys(config.agents))
      if (!names.has(name) && isStandby(name))
        agents.push({ name: `standby/${name}`, state: 'healthy' });
    return { agents, restarts: [...history.fleet_restarts] };
  };

  /**
   * The shared fleet index seen from one agent's cell: policy looks agents up by name (itself,
   * its substitutes), and a name means the agent of that name in the same cell (where a
   * substitute is started), or a standby that can be started there.
   */
  const fleetFor = (slot: Slot): FleetIndex => {
    const base = currentFleet();
    const nameOf = (key: string) => key.slice(key.indexOf('/') + 1);
    return {
      ...base,
      get(name) {
        const entry = base.get(scopedKey(slot, name));
        if (entry)
          return {
            ...entry,
            name,
            ...(entry.substituting_for !== undefined
              ? { substituting_for: nameOf(entry.substituting_for) }
              : {}),
          };
        return isStandby(name) ? { name, state: 'healthy' } : undefined;
      },
      substituteOf(name) {
        const key = base.substituteOf(scopedKey(slot, name));
        return key === undefined ? undefined : nameOf(key);
      },
      deadPosition: (name) => base.deadPosition(scopedKey(slot, name)),
    };
  };

  const carryOut = async (slot: Slot, decision: Decision, at: number) => {
    const signature = `${decision.action}:${decision.rule}`;
    const acts = ['restart', 'rollback_and_restart', 'substitute', 'ask', 'escalate'].includes(
      decision.action,
    );
    if (decision.action !== 'none' && (signature !== slot.lastRule || acts)) {
      void event(slot, {
        event: 'decision',
        action: decision.action,
        rule: decision.rule,
        reason: decision.reason,
        ...(decision.approval_id ? { approval_id: decision.approval_id } : {}),
      });
      slot.state.last_decision = { action: decision.action, reason: decision.reason, at: iso(at) };
      logger.info('decision', {
        agent: slot.key,
        action: decision.action,
        rule: decision.rule,
        reason: decision.reason,
      });
    }
    slot.lastRule = signature;
    if (
      ['record_only', 'escalate', 'ask'].includes(decision.action) &&
      !slot.reported &&
      slot.state.health === 'dead'
    ) {
      slot.reported = true;
      const assessment = slot.assessor.get(slot.key);
      notify(
        notifier.death({
          agent: slot.name,
          mission: slot.cell?.manifest.mission ?? 'outside cells',
          ...(slot.cell
            ? { cell: slot.cell.uuid, logPath: cellPaths(slot.cell.dir).agentLog(slot.name) }
            : { logPath: join(stateDir, 'logs', `${slot.name}.log`) }),
          reason: decision.failure
            ? `${decision.failure.class}: ${decision.reason}`
            : decision.reason,
          deadSince: new Date(slot.state.first_dead_at ? Date.parse(slot.state.first_dead_at) : at),
          decision: { action: decision.action, reason: decision.reason },
          probes: Object.values(assessment?.probes ?? {}).flatMap((probe) =>
            probe.lastResult
              ? [
                  {
                    name: probe.name,
                    ok: probe.lastResult.ok,
                    latencyMs: probe.lastResult.latencyMs,
                    detail: probe.lastResult.detail,
                    observedAt: probe.lastResult.observedAt,
                  },
                ]
              : [],
          ),
          restarts: slot.state.restarts,
        }),
      );
    }
    if (slot.timer) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    switch (decision.action) {
      case 'none':
        slot.state.backoff_until = undefined;
        if (decision.cancel_approval) {
          await approvals.cancel(decision.cancel_approval, at);
          slot.state.pending_approval = undefined;
          approvalsTotal.inc({ outcome: 'cancelled' });
        }
        return;
      case 'wait':
        slot.state.backoff_until = iso(decision.until);
        wakeAt(slot, decision.until);
        return;
      case 'restart':
      case 'rollback_and_restart':
        slot.state.pending_approval = undefined;
        await revive(
          slot,
          decision.action === 'rollback_and_restart',
          decision.reason,
          decision.attempt,
        );
        return;
      case 'substitute':
        slot.state.pending_approval = undefined;
        await substitute(slot, decision.substitute, decision.reason);
        return;
      case 'ask':
        await ask(slot, decision.request);
        return;
      case 'escalate':
        if (decision.then === 'ask' && decision.request) await ask(slot, decision.request);
        return;
      case 'record_only':
        return;
    }
  };

  const wakeAt = (slot: Slot, until: number) => {
    if (stopped || scheduler === undefined) return;
    const delay = Math.max(0, Math.min(until - now(), 2_147_483_647));
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      void enqueue(slot);
    }, delay);
    slot.timer.unref();
  };

  const ask = async (
    slot: Slot,
    request: NonNullable<Extract<Decision, { action: 'ask' }>['request']>,
  ) => {
    const pending = slot.state.pending_approval
      ? approvals.get(slot.state.pending_approval)
      : undefined;
    if (pending?.status === 'pending') return;
    const approval = await approvals.ask({
      key: slot.key,
      agent: slot.name,
      ...(slot.cell ? { cell: slot.cell.uuid } : {}),
      ...(request.mission ? { mission: request.mission } : {}),
      kind: request.kind,
      proposed: request.proposed,
      ...(request.suggested_substitute ? { substitute: request.suggested_substitute } : {}),
      reasons: request.reasons,
      channels: request.channels,
      requested_at: request.requested_at,
      expires_at: request.expires_at,
      on_timeout: request.on_timeout,
    });
    slot.state.pending_approval = approval.id;
    approvalsTotal.inc({ outcome: 'requested' });
    await event(slot, {
      event: 'revive_requested',
      approval_id: approval.id,
      reason: request.reasons.join(' '),
      proposed: request.proposed,
      expires_at: iso(request.expires_at),
    });
    wakeAt(slot, request.expires_at + 1);
  };

  const revive = async (slot: Slot, rollback: boolean, reason: string, attempt: number) => {
    if (!canStart(slot)) {
      await event(slot, {
        event: 'revive_failed',
        reason: slot.config?.argv
          ? `${slot.name} runs on ${slot.config.host}: cannot restart it from here`
          : `no argv configured for ${slot.name}: cannot restart it`,
      });
      return;
    }
    if (dryRun) {
      logger.info('dry run: would restart', { agent: slot.key, rollback });
      return;
    }
    if (rollback) await rollbackConfig(slot, reason);
    if (slot.config!.restore_checkpoint && slot.cell) {
      const { checkpoints } = await listCheckpoints(slot.cell.dir);
      if (checkpoints.length > 0) {
        await restoreCheckpoint(slot.cell.dir, {
          restoredBy: 'pit-daemon',
          reason: `before reviving ${slot.name}`,
          logger,
        }).catch((error: unknown) =>
          logger.error('checkpoint restore failed', { agent: slot.key, error: String(error) }),
        );
      }
    }
    await startAgent(slot, { reason, attempt, initial: false });
  };

  const rollbackConfig = async (slot: Slot, reason: string) => {
    const files = slot.config?.config_files ?? [];
    if (files.length === 0) return;
    try {
      const result = await snapshots.rollback(slot.name, {
        reason,
        ...(canonicalOf(slot) ? { canonical: canonicalOf(slot)! } : {}),
      });
      if (result.status === 'rolled_back') {
        rollbacksTotal.inc({ agent: slot.name });
        await event(slot, {
          event: 'config_rolled_back',
          files: result.files,
          reason,
          source: result.source,
          ...(result.set ? { set: result.set } : {}),
        });
        logger.info('config rolled back', { agent: slot.key, files: result.files });
      }
    } catch (error) {
      logger.warn('config rollback failed; restarting anyway', {
        agent: slot.key,
        error: error instanceof Error ? error.message : String(error),
      });
      await event(slot, {
        event: 'rollback_failed',
        reason: error instanceof Error ? error.message : String(error),
      });
    }
  };

  const canonicalOf = (slot: Slot): CanonicalSource | undefined => {
    const files = (slot.config?.config_files ?? []).filter((file) => file.canonical);
    const first = files[0]?.canonical;
    if (!first) return undefined;
    return {
      repository: first.repo,
      ref: first.ref,
      files: files
        .filter((file) => file.canonical!.repo === first.repo && file.canonical!.ref === first.ref)
        .map((file) => ({ path: file.canonical!.path, target: resolvePath(slot, file.path) })),
    };
  };

  const snapshotConfig = async (slot: Slot, at: number) => {
    const files = slot.config?.config_files ?? [];
    if (files.length === 0 || dryRun) return;
    if (at - slot.lastSnapshotAt < config.cells.poll_interval_s * 1000) return;
    slot.lastSnapshotAt = at;
    const paths = files.map((file) => resolvePath(slot, file.path));
    // Healthy proves only the config the running process started with: a file changed since
    // (an agent editing its own config at runtime) is not last known good until a process has
    // started with it and been healthy.
    const startedAt =
      slot.process && !slot.process.adopted ? slot.process.startedAt.getTime() : undefined;
    if (startedAt !== undefined) {
      const changed = await changedSince(paths, startedAt);
      if (changed.length > 0) {
        logger.debug(
          'config changed since the agent started: not snapshotted until a restart proves it',
          { agent: slot.key, files: changed },
        );
        return;
      }
    }
    try {
      const result = await snapshots.snapshot(slot.name, paths);
      if (result.status === 'saved')
        logger.info('config snapshotted as last known good', { agent: slot.key, set: result.set });
    } catch (error) {
      logger.warn('config snapshot failed', {
        agent: slot.key,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };

  const resolvePath = (slot: Slot, path: string) =>
    isAbsolute(path) ? path : resolve(slot.cell?.dir ?? slot.config?.cwd ?? stateDir, path);

  const startAgent = async (
    slot: Slot,
    why: { reason: string; attempt: number; initial: boolean; env?: Record<string, string> },
  ) => {
    const agentConfig = slot.config!;
    if (slot.process && !slot.process.exit)
      await executor.stop(slot.process, { graceMs: agentConfig.stop_grace_s * 1000 });
    const composed = composeAgentEnv(agentConfig, options.env);
    let busEnv: Record<string, string> = {};
    if (slot.cell && options.busHub) {
      busEnv = await options.busHub
        .credentials(slot.cell.dir, slot.name, slot.cell.role)
        .catch((error: unknown) => {
          logger.error('cannot register the agent on its mission bus', {
            agent: slot.key,
            error: error instanceof Error ? error.message : String(error),
          });
          return {};
        });
    }
    const env = { ...composed.env, ...busEnv, ...why.env };
    const missing = composed.missing;
    if (missing.length > 0)
      logger.warn('env_from variables not set in the daemon environment', {
        agent: slot.key,
        missing,
      });
    const hidden = slot.cell ? otherHomes(slot) : [];
    const at = now();
    if (!why.initial) {
      slot.state.restarts = [...slot.state.restarts, iso(at)].slice(-50);
      history.fleet_restarts.push(at);
      historyDirty = true;
      fleetChanged();
    }
    try {
      const started = await executor.start({
        agent: slot.name,
        argv: agentConfig.argv!,
        env,
        ...(slot.cell
          ? { cell: { uuid: slot.cell.uuid, dir: slot.cell.dir } }
          : { cwd: agentConfig.cwd!, logPath: join(stateDir, 'logs', `${slot.name}.log`) }),
        isolation: agentConfig.isolation,
        hiddenPaths: hidden,
        ...(ownHome(slot) ? { home: ownHome(slot)! } : {}),
      });
      watchProcess(slot, started);
      slot.state.revive_attempts = why.attempt;
      slot.state.backoff_until = undefined;
      slot.state.health = 'unknown';
      slot.state.since = iso(at);
      fleetChanged();
      slot.heartbeat?.reset();
      slot.assessor.track(slot.key, {
        startedAt: at,
        probes: probesOf(slot).map((probe) => probe.name),
      });
      restartsTotal.inc({ agent: slot.name });
      void event(
        slot,
        why.initial
          ? { event: 'agent_started', pid: started.pid, level: agentConfig.isolation.level }
          : { event: 'agent_revived', pid: started.pid, attempt: why.attempt, reason: why.reason },
      );
      if (scheduler?.has(slot.key)) scheduler.trigger(slot.key);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      logger.error('agent failed to start', { agent: slot.key, error: message });
      slot.exit = { code: null, signal: null, at: new Date(at), how: 'vanished' };
      await event(slot, { event: 'revive_failed', reason: message });
    }
  };

  const ownHome = (slot: Slot) =>
    slot.cell?.manifest.agents.find((agent) => agent.name === slot.name)?.home;
  const otherHomes = (slot: Slot) => {
    const homes = new Set<string>();
    for (const other of slots.values())
      for (const agent of other.cell?.manifest.agents ?? [])
        if (agent.home && agent.name !== slot.name) homes.add(agent.home);
    return [...homes];
  };

  const substitute = async (slot: Slot, substituteName: string, reason: string) => {
    if (!slot.cell) {
      await event(slot, {
        event: 'revive_failed',
        reason: `cannot substitute ${slot.name}: it has no cell`,
      });
      return;
    }
    const key = `${slot.cell.uuid}/${substituteName}`;
    if (dryRun) {
      logger.info('dry run: would substitute', { agent: slot.key, substitute: substituteName });
      return;
    }
    const role = slot.cell.role;
    heldBack.add(key);
    await updateManifest(slot.cell.dir, (manifest) => {
      if (!manifest.agents.some((agent) => agent.name === substituteName))
        manifest.agents.push({ name: substituteName, role, joined_at: iso(now()) });
    });
    slot.state.substituted_by = substituteName;
    fleetChanged();
    let handoff: { handoffId: string; packetPath: string } | undefined;
    try {
      const bus = options.busHub ? await options.busHub.bus(slot.cell.dir) : undefined;
      handoff = await publishHandoff({
        cellDir: slot.cell.dir,
        from: slot.name,
        to: substituteName,
        role,
        note: reason,
        ...(config.bus.roles ? { roles: config.bus.roles } : {}),
        logger,
        ...(bus ? { bus } : {}),
      });
    } catch (error) {
      logger.error('cannot publish the handoff on the mission bus', {
        agent: slot.key,
        substitute: substituteName,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    await event(slot, {
      event: 'agent_substituted',
      substitute: substituteName,
      reason,
      role,
      ...(handoff ? { handoff: handoff.handoffId, resume_packet: handoff.packetPath } : {}),
    });
    await appendQueued(
      cellPaths(slot.cell.dir).events,
      { event: 'agent_joined', agent: substituteName, role, substituting_for: slot.name },
      { agent: key },
    );
    const env: Record<string, string> = handoff
      ? { LAZARUS_HANDOFF_ID: handoff.handoffId, LAZARUS_RESUME_PACKET: handoff.packetPath }
      : {};
    try {
      await sync(scheduler ? 'loop' : 'sweep');
    } finally {
      heldBack.delete(key);
    }
    const created = slots.get(key);
    if (created && canStart(created) && (!created.process || created.process.exit)) {
      await startAgent(created, {
        reason: `substituting for ${slot.name}`,
        attempt: 0,
        initial: true,
        env,
      });
    }
  };

  // ---- approvals ---------------------------------------------------------------------
  const decideApproval: Supervisor['decideApproval'] = async (id, decision, body) => {
    // The answer's time: the loop may carry it out before this call goes on to log it.
    const answeredAt = now();
    const result = await approvals.decide(id, decision, {
      channel: body.channel ?? 'http',
      now: answeredAt,
      ...(body.by ? { by: body.by } : {}),
      ...(body.reason ? { reason: body.reason } : {}),
    });
    if (!result.ok) return result;
    const approval = approvals.get(id)!;
    approvalsTotal.inc({ outcome: decision === 'approve' ? 'approved' : 'denied' });
    const slot = slots.get(approval.key);
    if (slot) {
      await event(slot, {
        event: decision === 'approve' ? 'revive_approved' : 'revive_denied',
        ts: iso(answeredAt),
        approval_id: id,
        channel: body.channel ?? 'http',
        ...(body.by ? { by: body.by } : {}),
        ...(body.reason ? { reason: body.reason } : {}),
      });
      await enqueue(slot);
    }
    return result;
  };

  /** An answer from Telegram or Nostr: recorded like an HTTP one, then carried out. */
  const onChannelDecision = async (approval: StoredApproval) => {
    approvalsTotal.inc({ outcome: approval.status });
    const slot = slots.get(approval.key);
    if (!slot) return;
    await event(slot, {
      event: approval.status === 'approved' ? 'revive_approved' : 'revive_denied',
      ...(approval.decided_at !== undefined ? { ts: iso(approval.decided_at) } : {}),
      approval_id: approval.id,
      ...(approval.channel ? { channel: approval.channel } : {}),
      ...(approval.by ? { by: approval.by } : {}),
    });
    await enqueue(slot);
  };

  const housekeeping = async () => {
    const expired = await approvals.expire(now());
    for (const approval of expired) {
      approvalsTotal.inc({ outcome: 'expired' });
      const slot = slots.get(approval.key);
      if (slot) void enqueue(slot);
    }
    // Answers given by another process (`pit approve`) reach the loop here.
    for (const slot of slots.values()) {
      const latest = slot.state.pending_approval
        ? approvals.get(slot.state.pending_approval)
        : undefined;
      if (latest && latest.status !== 'pending') void enqueue(slot);
    }
  };

  // ---- checkpoints -------------------------------------------------------------------
  let lastCheckpointAt = now();
  const checkpoints = async () => {
    if (config.checkpoints.interval_s <= 0 || dryRun) return;
    if (now() - lastCheckpointAt < config.checkpoints.interval_s * 1000) return;
    lastCheckpointAt = now();
    const cells = new Map<string, string>();
    for (const slot of slots.values())
      if (slot.cell && slot.cell.manifest.status === 'active')
        cells.set(slot.cell.uuid, slot.cell.dir);
    for (const dir of cells.values()) {
      try {
        await createCheckpoint(dir, { createdBy: 'pit-daemon', reason: 'periodic', logger });
        await pruneCheckpoints(dir, { keep: config.checkpoints.retention, logger });
      } catch (error) {
        logger.warn('periodic checkpoint failed', {
          cell: dir,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    }
  };

  // ---- lifecycle ---------------------------------------------------------------------
  const start = async () => {
    scheduler = createProbeScheduler({ onResult, logger, now });
    await sync('loop');
    const poll = config.cells.poll_interval_s * 1000;
    discoveryTimer = setInterval(() => {
      void sync('loop').catch((error: unknown) =>
        logger.error('discovery failed', { error: String(error) }),
      );
    }, poll);
    housekeepingTimer = setInterval(
      () => {
        void housekeeping().catch((error: unknown) =>
          logger.error('housekeeping failed', { error: String(error) }),
        );
        void checkpoints();
      },
      Math.min(poll, 2000),
    );
    if (config.cells.watch) {
      await fs.mkdir(config.cells.root, { recursive: true });
      try {
        let pending: NodeJS.Timeout | undefined;
        rootWatcher = watch(config.cells.root, () => {
          if (pending) return;
          pending = setTimeout(() => {
            pending = undefined;
            void sync('loop').catch((error: unknown) =>
              logger.error('discovery failed', { error: String(error) }),
            );
          }, 100);
        });
        rootWatcher.on('error', () => undefined);
      } catch (error) {
        logger.warn('cannot watch the cells root; new cells are found on the next poll', {
          root: config.cells.root,
          error: String(error),
        });
      }
    }
    logger.info('supervising', { cells_root: config.cells.root, agents: slots.size });
  };

  const sweep = async (): Promise<SweepReport> => {
    const started = process.hrtime.bigint();
    await approvals.expire(now());
    await sync('sweep');
    const report: SweepReport['agents'] = [];
    await Promise.all(
      [...slots.values()].map(async (slot) => {
        const probes = probesOf(slot);
        // The startup grace runs from the process's real start: a just-started agent is not judged yet.
        const startedAt = slot.process
          ? slot.process.adopted
            ? await processStartedAtMs(slot.process.startTime)
            : slot.process.startedAt.getTime()
          : 0;
        slot.assessor.track(slot.key, {
          startedAt: startedAt ?? 0,
          probes: probes.map((probe) => probe.name),
        });
        for (const probe of probes) {
          const controller = new AbortController();
          const timeoutMs = probe.timeoutMs ?? 5000;
          const result = await probe.run(
            { signal: controller.signal, timeoutMs, now },
            { agent: slot.key, probe: probe.name, reason: 'manual' },
          );
          slot.assessor.record(slot.key, probe.name, result);
        }
        await enqueue(slot);
        report.push({
          key: slot.key,
          health: slot.state.health,
          ...(slot.state.last_decision
            ? { action: slot.state.last_decision.action, reason: slot.state.last_decision.reason }
            : {}),
        });
      }),
    );
    await Promise.all([...cellWrites.values()]);
    await flushHistory();
    await flushEvents();
    await Promise.all([...notifications]);
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    sweepDuration.observe({}, durationMs / 1000);
    report.sort((a, b) => a.key.localeCompare(b.key));
    return {
      healthy: report.every((agent) => agent.health === 'healthy'),
      agents: report,
      durationMs,
    };
  };

  const status = async (): Promise<FleetStatus> => {
    const cells = new Map<string, FleetStatus['cells'][number]>();
    const agents: AgentStatus[] = [];
    for (const slot of slots.values()) {
      if (slot.cell && !cells.has(slot.cell.uuid)) {
        const manifest = slot.cell.manifest;
        cells.set(slot.cell.uuid, {
          uuid: manifest.uuid,
          ...(manifest.name ? { name: manifest.name } : {}),
          mission: manifest.mission,
          status: manifest.status,
          agents: manifest.agents.map((agent) => agent.name),
        });
      }
      let heartbeatAge: number | undefined;
      if (slot.cell) {
        const beat = await readHeartbeat(slot.cell.dir, slot.name).catch(() => undefined);
        if (beat) heartbeatAge = Math.round((now() / 1000 - beat.timestamp) * 10) / 10;
      }
      const assessment = slot.assessor.get(slot.key);
      agents.push({
        key: slot.key,
        agent: slot.name,
        ...(slot.cell ? { cell: slot.cell.uuid, mission: slot.cell.manifest.mission } : {}),
        host: slot.config?.host ?? 'local',
        health: slot.state.health,
        ...(slot.state.since ? { since: slot.state.since } : {}),
        ...(slot.state.first_dead_at ? { first_dead_at: slot.state.first_dead_at } : {}),
        ...(heartbeatAge !== undefined ? { heartbeat_age_s: heartbeatAge } : {}),
        ...(slot.process && !slot.process.exit ? { pid: slot.process.pid } : {}),
        revive_attempts: slot.state.revive_attempts,
        restarts: slot.state.restarts.length,
        ...(slot.state.backoff_until ? { backoff_until: slot.state.backoff_until } : {}),
        ...(slot.state.pending_approval ? { pending_approval: slot.state.pending_approval } : {}),
        ...(slot.state.substituted_by ? { substituted_by: slot.state.substituted_by } : {}),
        ...(slot.state.last_decision ? { last_decision: slot.state.last_decision } : {}),
        failing: assessment?.failing ?? [],
      });
    }
    agents.sort((a, b) => a.key.localeCompare(b.key));
    return {
      generated_at: iso(now()),
      cells: [...cells.values()],
      agents,
      approvals: approvals.list('pending'),
      problems: [...problems],
    };
  };

  const reload = async (next: PitConfig, nextPolicyInput?: unknown) => {
    config = next;
    policyInput = nextPolicyInput;
    policy = effectivePolicy(next);
    fleetChanged();
    await sync(scheduler ? 'loop' : 'sweep');
    logger.info('config reloaded', { agents: slots.size });
  };

  const stop = async (stopOptions: { stopAgents?: boolean } = {}) => {
    stopped = true;
    if (discoveryTimer) clearInterval(discoveryTimer);
    if (housekeepingTimer) clearInterval(housekeepingTimer);
    rootWatcher?.close();
    await scheduler?.stop();
    for (const slot of slots.values()) if (slot.timer) clearTimeout(slot.timer);
    for (const retry of persistRetries.values()) clearTimeout(retry.timer);
    await Promise.all([...slots.values()].map((slot) => slot.queue));
    await Promise.all([...notifications]);
    if (stopOptions.stopAgents) {
      await Promise.all(
        [...slots.values()].map(async (slot) => {
          if (slot.process && !slot.process.exit) {
            await executor.stop(slot.process, {
              graceMs: (slot.config?.stop_grace_s ?? 10) * 1000,
            });
            slot.state.pid = undefined;
            slot.state.pid_start_time = undefined;
          }
        }),
      );
    }
    stopped = false;
    await Promise.all([...slots.values()].map((slot) => persist(slot)));
    await flushHistory();
    await flushEvents();
    stopped = true;
    executor.close();
    await approvals.close();
  };

  const health = () => {
    const staleAfter = Math.max(30_000, config.cells.poll_interval_s * 5000);
    if (!lastDiscovery) return { ok: false, reason: 'no discovery yet' };
    const last = { last_discovery: iso(lastDiscovery.at) };
    if (!lastDiscovery.ok)
      return {
        ok: false,
        ...last,
        reason: `the last discovery failed: ${lastDiscovery.error ?? 'unknown error'}`,
      };
    if (now() - lastDiscovery.at > staleAfter)
      return {
        ok: false,
        ...last,
        reason: `no discovery for ${Math.round((now() - lastDiscovery.at) / 1000)} s (the loop is stuck)`,
      };
    return { ok: true, ...last };
  };

  return { start, sweep, status, decideApproval, reload, stop, health, metrics };
}

let bootTimeMs: number | undefined;
/** When a process started (ms since epoch), from its start time in clock ticks and the boot time in `/proc/stat`. */
async function processStartedAtMs(startTicks: number): Promise<number | undefined> {
  if (bootTimeMs === undefined) {
    const stat = await fs.readFile('/proc/stat', 'utf8').catch(() => '');
    const btime = /^btime (\d+)$/m.exec(stat)?.[1];
    if (!btime) return undefined;
    bootTimeMs = Number(btime) * 1000;
  }
  // Linux reports stat times in USER_HZ, 100 on every mainstream architecture.
  return bootTimeMs + (startTicks / 100) * 1000;
}

function emptyState(): CellState {
  return { version: 1, updated_at: new Date(0).toISOString(), agents: {} };
}

function describeExit(exit: AgentExit): string {
  if (exit.signal) return `signal ${exit.signal}`;
  if (exit.code !== null) return `exit code ${exit.code}`;
  return 'status unknown';
}

function approvalRecord(stored: StoredApproval | undefined): ApprovalRecord | undefined {
  if (!stored || stored.status === 'cancelled') return undefined;
  return {
    id: stored.id,
    kind: stored.kind,
    status: stored.status,
    proposed: stored.proposed,
    ...(stored.substitute ? { substitute: stored.substitute } : {}),
    requested_at: stored.requested_at,
    expires_at: stored.expires_at,
    ...(stored.decided_at !== undefined ? { decided_at: stored.decided_at } : {}),
    on_timeout: stored.on_timeout,
  };
}

/** The files among `paths` modified after `sinceMs` (a missing one is left for the snapshot to report). */
async function changedSince(paths: readonly string[], sinceMs: number): Promise<string[]> {
  const stats = await Promise.all(
    paths.map((path) =>
      fs.stat(path).then(
        (stat) => stat.mtimeMs,
        () => 0,
      ),
    ),
  );
  return paths.filter((_, index) => stats[index]! > sinceMs);
}
