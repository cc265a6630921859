/**
 * This daemon as a member of a cluster (`[cluster]`, issue #16): which agents it supervises,
 * the claim that fences every start, placement and takeover, and what a lost lease does. It
 * owns the coordination handle (coordination.ts), the fence (fence.ts) and the set of agents it
 * holds with their epochs; the supervision modules ask it before acting and tell it what they
 * started and stopped.
 *
 * - **Placement**: agents outside cells (`host/<name>`, the same `[agents]` on every host) are
 *   placed on one live host each by rendezvous ranking (coordination.ts `rankHosts`): on every
 *   tick (T/3, the first one T/3 after joining), an agent with no owner, or whose owner's lease has expired, is claimed by the
 *   first-ranked live host, and only the compare-and-set winner takes it up. Agents in cells live
 *   where their cell is: they are this host's, and every start of them is claimed all the same.
 * - **Cells of a host that is gone**: each workspace checkpoint of a cell whose agents this host
 *   holds goes to the object store `pit_cells` with the cell's definition as the daemon accepted it
 *   (cell-store.ts; a cell with no checkpoint yet gets its definition alone, once). The store is
 *   listed only when a takeover may be due (the first pass, the live hosts changed, a rebuild or an
 *   undecided claim pending, else once every {@link CELL_LIST_REFRESH_MS}: {@link cellRecords});
 *   for each record whose cell is not on this host and whose writer's lease expired (the writer
 *   holds the cell: a takeover writes the record again as the new host's at once), the cell's agents whose owner's lease expired
 *   are claimed by the live host ranked first *for the cell* (its uuid: all of a cell's agents go to
 *   one host), compare-and-set as above; the winner rebuilds the cell under its cells root from the
 *   record's checkpoint (cell-takeover.ts, through the `materialise` hook) and takes the agents up,
 *   each started under a new epoch with `taken_over_from`. A rebuild that fails is tried again at
 *   the next passes (the claims kept), then given up (claims released, logged). With no checkpoint
 *   in the record, only agents whose policy substitutes them are taken up; the others are let go,
 *   left dead and reported. Agents nobody owns (stopped, or released by a clean leave) are left.
 *   A cell that leaves this host (destroyed, archived, frozen, no longer granted) has this host's
 *   record removed from the store, so that no takeover rebuilds it.
 *   The dead host, back, finds its stale copy of the cell on disk: its starts are claimed like any,
 *   lose to the live owner (`start_refused`), and it neither starts the agents nor puts checkpoints
 *   of a cell whose agents it does not hold.
 * - **Fencing**: every start claims the agent's owner record first ({@link ClusterMember.claimForStart});
 *   its revision is the incarnation's epoch (`PIT_EPOCH`, and in every event of it). A host whose
 *   claim loses does not start the agent. The fence process kills this host's agents 2T/3 after
 *   the last renewal that landed, before any peer can see the lease expire (T).
 * - **Audit**: every pass also re-reads the owner records of a window of the agents this host
 *   holds (64 a pass, rotating); one that another host now owns is stopped here and let go, with
 *   an error in the log. Claims never take a live host's agent, so this is a safety net only.
 * - **Agents that left the config**: a held agent that is neither placed here nor in a local cell
 *   any more (removed from the config, its cell gone) and has no process here is let go (its
 *   owner record released); one taken over and not started yet, or in a cell being rebuilt, stays.
 * - **Shared records' retention**: the live host ranked first for `_sweep/records` sweeps the
 *   bucket `pit_records` now and then, removing, fenced, the records nothing anchors any more
 *   (records-retention.ts: no owner, not configured here, no cell in `pit_cells`, not written
 *   for 7 days).
 * - **A lost lease** (`on_partition`): `stop` stops every agent this host holds and holds none
 *   until it rejoins; `keep` leaves them running and revives nothing. On rejoin, an agent whose
 *   owner record names another host (taken over meanwhile) is stopped here and let go.
 */
import type { AgentState } from '@pit/cell-spec';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import {
  openCoordination,
  rankHosts,
  type ClaimResult,
  type Coordination,
  type HostLease,
  type OwnerRecord,
} from './coordination.js';
import { startFence, type Fence, type FencedProcess } from './fence.js';
import { holdRole, type HeldRole, type HoldRoleOptions } from './host-role.js';
import type { SharedRecord } from './agent-records.js';
import {
  deleteCellRecord,
  getCellArchive,
  cellHasCheckpoint,
  listCellRecords,
  putCellCheckpoint,
  putCellDefinition,
  putTakenOver,
  type CellDefinition,
  type CellRecord,
} from './cell-store.js';
import type { CheckpointManifest } from '@pit/snapshot';
import {
  RECORDS_RETENTION_MS,
  SWEEP_KEY,
  sweepEveryMs,
  sweepRecords,
} from './records-retention.js';

/** `[cluster]` as the member needs it. */
export interface ClusterMemberOptions {
  servers: string[];
  hostId: string;
  leaseMs: number;
  replicas: 1 | 3 | 5;
  onPartition: 'stop' | 'keep';
  token?: string;
  logger?: Logger;
  /** How long the shared record of an agent nobody holds or configures is kept (records-retention.ts). @default {@link RECORDS_RETENTION_MS} */
  recordsRetentionMs?: number;
  /** The most time between two listings of the cell object store while nothing calls for one (ms). @default {@link CELL_LIST_REFRESH_MS} */
  cellListRefreshMs?: number;
}

/** What the supervisor lets the member do (set once the supervisor is wired). */
export interface ClusterHooks {
  /** Keys of the agents placed across hosts (agents outside cells the Pit can start). */
  placeable(): string[];
  /** Runs discovery again: an agent claimed or let go is taken up or dropped. */
  resync(): Promise<void>;
  /** Stops the agent's process here, when it runs (a lost lease, or taken over meanwhile). */
  stopLocal(key: string): Promise<void>;
  /** This host's active cells with the agents it supervises in them (absent: no cell takeover). */
  cells?(): CellDefinition[];
  /**
   * Rebuilds here the cell of a host that is gone, from its record and checkpoint archive
   * (`undefined`: the record has no checkpoint) (cluster/cell-takeover.ts); its agents are already
   * claimed by this host. Returns the names of the agents it takes up: the others are let go.
   */
  materialise?(
    record: CellRecord,
    archive: Uint8Array | undefined,
    from: string,
  ): Promise<string[]>;
}

/** The cluster as the operator sees it (status, dashboard, metrics). */
export interface ClusterView {
  host: string;
  fenced: boolean;
  on_partition: 'stop' | 'keep';
  lease_s: number;
  hosts: Array<{ host: string; pid: number; lease_age_s: number | null }>;
  /** Agents this host holds, with their epochs. */
  held: Record<string, number>;
  /** Agents placed on other hosts, as last read. */
  remote: Record<string, { host: string; epoch: number }>;
}

/** See the module header. */
export interface ClusterMember {
  readonly hostId: string;
  /** Whether this host supervises the agent now: cell agents always, placed agents while held. */
  supervises(key: string, inCell: boolean): boolean;
  /** Claims the agent before a start; on success the epoch is the incarnation's. */
  claimForStart(key: string): Promise<ClaimResult>;
  /** Whether this host took the agent over from a host that is gone, and has not started it yet. */
  isTakeover(key: string): boolean;
  /** The host this one took the agent over from, once (the start that follows the takeover asks). */
  takenOverFrom(key: string): string | undefined;
  /** The epoch of the agent's current incarnation here, if any. */
  epochOf(key: string): number | undefined;
  /** The other host that owns the agent, as this host last read its owner record, if any. */
  ownerElsewhere(key: string): OwnerRecord | undefined;
  /** The agent's record as shared across hosts (agent-records.ts). Rejects when NATS does not answer. */
  sharedRecord(key: string): Promise<SharedRecord | undefined>;
  /**
   * Shares what of the agent's state outlives this host, under the epoch this host holds (nothing
   * when it holds none); refused and logged when a newer epoch wrote it. Never rejects.
   */
  share(key: string, state: AgentState): Promise<void>;
  /**
   * Puts the cell's newest checkpoint in the cluster's object store, when this host holds one of
   * its agents (else nothing: the cell's agents were taken over, and the new owner's checkpoints
   * are newer). @returns whether it was put.
   */
  publishCheckpoint(
    cell: CellDefinition,
    checkpoint: { archive: string; manifest: CheckpointManifest },
  ): Promise<boolean>;
  /**
   * Cells whose agents this host holds and whose record in the object store has no checkpoint
   * yet (a new cell: a takeover could only substitute its agents). periodic-checkpoints.ts takes
   * their first checkpoint at once instead of an interval later.
   */
  awaitingCheckpoint(): ReadonlySet<string>;
  /** A process was started (or adopted) for the agent: the fence watches it. */
  started(process: FencedProcess): void;
  /** The agent's process is gone or was let go. */
  ended(key: string): void;
  /**
   * Called with each agent this host lets go of (released its owner record: it left the config,
   * or a takeover was given up): a later claim starts from no shared record written here.
   */
  onLetGo(listener: (key: string) => void): void;
  /** Starts placement (a tick every T/3). */
  start(hooks: ClusterHooks): void;
  view(): Promise<ClusterView>;
  fenced(): boolean;
  /** How many agents this host holds. */
  heldCount(): number;
  /**
   * Tries to hold a role one host does at a time (host-role.ts), now and at every tick (`T/3`);
   * released when the member closes.
   */
  holdRole(role: string, handlers: Pick<HoldRoleOptions, 'onGain' | 'onLose'>): HeldRole;
  /** Sends `data` to every host's listeners of `topic` (coordination.ts, at most once). */
  broadcast(topic: string, data: unknown): void;
  /** Listens to broadcasts on `topic`; returns the unsubscribe. */
  onBroadcast(topic: string, listener: (data: unknown) => void): () => void;
  /**
   * Leaves the cluster once this host's agents are stopped: releases their owner records, ends
   * the fence and deletes the lease, so that peers take the agents over at their next tick.
   */
  close(): Promise<void>;
}

/**
 * Joins the cluster: connects, holds the lease, starts the fence.
 * @throws Error when NATS cannot be reached or the fence cannot start.
 */
export async function joinCluster(options: ClusterMemberOptions): Promise<ClusterMember> {
  const logger = options.logger ?? silentLogger;
  const coordination = await openCoordination({
    servers: options.servers,
    hostId: options.hostId,
    leaseTtlMs: options.leaseMs,
    replicas: options.replicas,
    logger,
    ...(options.token ? { token: options.token } : {}),
  });
  let fence: Fence | undefined;
  try {
    // With `keep`, agents outlive a lost lease by the operator's choice: nothing kills them.
    if (options.onPartition === 'stop') {
      fence = await startFence({ logger });
      fence.lease(coordination.safeForMs());
      coordination.onRenew((validMs) => fence?.lease(validMs));
    }
  } catch (error) {
    await coordination.close();
    throw error;
  }
  return createMember({ ...options, logger }, coordination, fence);
}

interface MemberState {
  hooks: ClusterHooks | undefined;
  held: Map<string, number>;
  remote: Map<string, OwnerRecord>;
  takenFrom: Map<string, string>;
  lastHosts: HostLease[];
  timer: NodeJS.Timeout | undefined;
  ticking: Promise<void> | undefined;
  closed: boolean;
  /** Where the next audit window of held agents starts. */
  auditFrom: number;
  /** Cells this host put a record of (definition or checkpoint) while they were here. */
  published: Set<string>;
  /** Of those, the ones whose record has no checkpoint yet ({@link ClusterMember.awaitingCheckpoint}). */
  awaitingCheckpoint: Set<string>;
  /** Cells taken over whose rebuild failed: tried again at the next passes (their agents stay claimed). */
  rebuilding: Map<string, { from: string; tries: number }>;
  /** Objects of the store whose record did not parse, already logged. */
  badRecords: Set<string>;
  /** Agents with a process on this host now (told by `started` and `ended`): never let go. */
  running: Set<string>;
  /** The cell object store as last listed (see {@link cellRecords}). */
  cellList: CellList | undefined;
  /** When the records bucket was last swept here (or when placement started), ms. */
  lastSweep: number;
  /** The records sweep in progress (it runs beside the placement passes). */
  sweeping: Promise<void> | undefined;
  /** {@link ClusterMember.onLetGo} listeners. */
  letGoListeners: Array<(key: string) => void>;
}

/** The cell object store as last listed, and why it would be listed again. */
interface CellList {
  records: CellRecord[];
  at: number;
  /** The live hosts then (sorted, joined): a host gone or come since calls for a new listing. */
  live: string;
  /** A takeover left undecided (a read or claim that NATS did not answer): listed again at the next pass. */
  undecided: boolean;
}

function initialState(): MemberState {
  return {
    hooks: undefined,
    held: new Map(),
    remote: new Map(),
    takenFrom: new Map(),
    lastHosts: [],
    timer: undefined,
    ticking: undefined,
    closed: false,
    auditFrom: 0,
    published: new Set(),
    awaitingCheckpoint: new Set(),
    rebuilding: new Map(),
    badRecords: new Set(),
    running: new Set(),
    cellList: undefined,
    lastSweep: 0,
    sweeping: undefined,
    letGoListeners: [],
  };
}

function createMember(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  fence: Fence | undefined,
): ClusterMember {
  const { logger, hostId } = options;
  const state = initialState();
  const roles: HeldRole[] = [];
  coordination.onFence(() => void onFenced(options, state));
  coordination.onRejoin(() => void onRejoined(options, coordination, state));
  const tick = () => {
    if (state.ticking || state.closed || !state.hooks) return;
    state.ticking = placeAgents(options, coordination, state)
      .catch((error: unknown) =>
        logger.warn('cluster placement failed; retrying at the next tick', {
          error: error instanceof Error ? error.message : String(error),
        }),
      )
      .finally(() => (state.ticking = undefined));
  };
  return {
    hostId,
    supervises: (key, inCell) => inCell || state.held.has(key),
    async claimForStart(key) {
      const result = await coordination.claim(key);
      if (result.ok) {
        state.held.set(key, result.epoch);
        state.remote.delete(key);
      } else if (result.reason === 'owned' || result.reason === 'lost') {
        state.held.delete(key);
        if (result.owner) state.remote.set(key, result.owner);
      }
      return result;
    },
    epochOf: (key) => state.held.get(key),
    ownerElsewhere: (key) => (state.held.has(key) ? undefined : state.remote.get(key)),
    sharedRecord: (key) => coordination.records.read(key),
    share: (key, agentState) => shareRecord(options, coordination, state, key, agentState),
    isTakeover: (key) => state.takenFrom.has(key),
    takenOverFrom(key) {
      const from = state.takenFrom.get(key);
      state.takenFrom.delete(key);
      return from;
    },
    awaitingCheckpoint: () => state.awaitingCheckpoint,
    publishCheckpoint: (cell, checkpoint) =>
      publishCheckpoint(options, coordination, state, cell, checkpoint),
    ...processesHere(state, fence),
    onLetGo: (listener) => void state.letGoListeners.push(listener),
    start(hooks) {
      state.hooks = hooks;
      state.lastSweep = Date.now();
      state.timer = setInterval(tick, Math.max(100, Math.floor(options.leaseMs / 3)));
      state.timer.unref();
      // The first pass comes one renewal period (T/3) after joining, not at once: hosts started
      // together (a cluster's cold start) then see each other, and each agent goes to the host
      // that ranks first among all of them instead of all to the one that joined first.
    },
    view: () => viewOf(options, coordination, state),
    fenced: () => coordination.fenced(),
    heldCount: () => state.held.size,
    holdRole: (role, handlers) => memberRole(options, coordination, roles, role, handlers),
    broadcast: (topic, data) => coordination.broadcast(topic, data),
    onBroadcast: (topic, listener) => coordination.onBroadcast(topic, listener),
    async close() {
      state.closed = true;
      clearInterval(state.timer);
      await Promise.all(roles.map((role) => role.stop()));
      await state.ticking;
      await state.sweeping;
      await Promise.all(
        [...state.held].map(([key, epoch]) => coordination.release(key, epoch).catch(() => false)),
      );
      state.held.clear();
      await fence?.disarm();
      await coordination.close({ leave: true });
    },
  };
}

/** {@link ClusterMember.started} and {@link ClusterMember.ended}: the fence watches, the member remembers. */
function processesHere(
  state: MemberState,
  fence: Fence | undefined,
): Pick<ClusterMember, 'started' | 'ended'> {
  return {
    started(process) {
      state.running.add(process.key);
      fence?.watch(process);
    },
    ended(key) {
      state.running.delete(key);
      fence?.unwatch(key);
    },
  };
}

/** {@link ClusterMember.holdRole}: tried at the member's tick (`T/3`), stopped when it closes. */
function memberRole(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  roles: HeldRole[],
  role: string,
  handlers: Pick<HoldRoleOptions, 'onGain' | 'onLose'>,
): HeldRole {
  const held = holdRole({
    coordination,
    role,
    everyMs: Math.max(100, Math.floor(options.leaseMs / 3)),
    logger: options.logger,
    ...handlers,
  });
  roles.push(held);
  return held;
}

/** {@link ClusterMember.share}: under the epoch this host holds; a refusal is logged. Never rejects. */
async function shareRecord(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
  key: string,
  agentState: AgentState,
): Promise<void> {
  const epoch = state.held.get(key);
  if (epoch === undefined) return;
  try {
    const written = await coordination.records.write(key, epoch, agentState);
    if (!written.ok)
      options.logger.error('cluster: refused a state write that carries an older epoch', {
        agent: key,
        epoch,
        current_host: written.current.host,
        current_epoch: written.current.epoch,
      });
  } catch (error) {
    options.logger.warn('cluster: could not share the agent record; shared at its next change', {
      agent: key,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

/** Claims in flight at once during a placement pass (a takeover of thousands of agents). */
const PLACEMENT_CONCURRENCY = 32;
/** During a long pass, what was claimed is taken up at least this often (ms), not only at its end. */
const RESYNC_EVERY_MS = 250;

/** One placement pass (see the module header). */
async function placeAgents(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
): Promise<void> {
  const hooks = state.hooks;
  if (!hooks || coordination.fenced()) return;
  const hosts = await coordination.liveHosts();
  state.lastHosts = hosts;
  const live = new Set(hosts.map((lease) => lease.host));
  const queue = hooks
    .placeable()
    .filter((key) => !state.held.has(key) && !live.has(state.remote.get(key)?.host ?? ''));
  let changed = false;
  let lastResync = Date.now();
  const worker = async () => {
    for (let key = queue.shift(); key !== undefined; key = queue.shift()) {
      if (state.closed || coordination.fenced()) return;
      // One agent's failed request (a timeout while a stream leader moves) is retried at the
      // next tick; it never ends the pass for the others.
      if (await placeOne(options, coordination, state, key, live).catch(() => false))
        changed = true;
      if (changed && Date.now() - lastResync >= RESYNC_EVERY_MS) {
        changed = false;
        lastResync = Date.now();
        await hooks.resync();
      }
    }
  };
  await Promise.all(Array.from({ length: PLACEMENT_CONCURRENCY }, worker));
  if (await auditHeld(options, coordination, state)) changed = true;
  if (changed) await hooks.resync();
  await letGoUnconfigured(options, coordination, state);
  if (hooks.cells && hooks.materialise) {
    await publishDefinitions(options, coordination, state, hooks.cells());
    await takeOverCells(options, coordination, state, live);
  }
  maybeSweepRecords(options, coordination, state, live);
}

/** The agents this host configures: its placed agents and its cells' agents. */
function configuredHere(hooks: ClusterHooks): Set<string> {
  const keys = new Set(hooks.placeable());
  for (const cell of hooks.cells?.() ?? [])
    for (const agent of cell.agents) keys.add(`${cell.uuid}/${agent.name}`);
  return keys;
}

/**
 * Lets go of the agents this host holds that left its config (removed, or their cell left) and
 * have no process here, so that their owner records, and after the retention their shared
 * records (records-retention.ts), do not outlive them. An agent taken over and not started yet,
 * or in a cell being rebuilt here, is kept. A start asked for later claims it again.
 */
async function letGoUnconfigured(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
): Promise<void> {
  const hooks = state.hooks;
  if (!hooks || state.closed || coordination.fenced()) return;
  const configured = configuredHere(hooks);
  const rebuilding = [...state.rebuilding.keys()];
  const gone = [...state.held.keys()].filter(
    (key) =>
      !configured.has(key) &&
      // Without the cells hook this host's cells are unknown: only placed agents are let go.
      (hooks.cells !== undefined || key.startsWith('host/')) &&
      !state.running.has(key) &&
      !state.takenFrom.has(key) &&
      !rebuilding.some((uuid) => key.startsWith(`${uuid}/`)),
  );
  if (gone.length === 0) return;
  await letGo(coordination, state, gone);
  options.logger.info('cluster: let go of agents no longer in this host’s config', {
    agents: gone,
  });
}

/**
 * Starts a sweep of the shared records (records-retention.ts) when one is due and this host is
 * the live host ranked first for it; it runs beside the placement passes.
 */
function maybeSweepRecords(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
  live: ReadonlySet<string>,
): void {
  const hooks = state.hooks;
  const retentionMs = options.recordsRetentionMs ?? RECORDS_RETENTION_MS;
  if (!hooks || state.sweeping || state.closed || coordination.fenced()) return;
  if (Date.now() - state.lastSweep < sweepEveryMs(retentionMs, options.leaseMs)) return;
  if (rankHosts(SWEEP_KEY, [...live])[0] !== options.hostId) return;
  state.lastSweep = Date.now();
  const { logger } = options;
  state.sweeping = sweepRecords({
    coordination,
    configured: configuredHere(hooks),
    cellKnown: async (uuid) => {
      const info = await coordination.cellStore.info(uuid);
      return info !== null && !info.deleted;
    },
    live,
    retentionMs,
    now: Date.now,
    logger,
    stopped: () => state.closed,
  })
    .then((result) => {
      if (result.removed.length > 0 || result.markersPurged > 0)
        logger.info('cluster: shared records swept', {
          removed: result.removed.length,
          kept: result.kept,
          released_owner_keys_purged: result.markersPurged,
        });
    })
    .catch((error: unknown) =>
      logger.warn('cluster: cannot sweep the shared records; trying again at the next sweep', {
        error: error instanceof Error ? error.message : String(error),
      }),
    )
    .finally(() => (state.sweeping = undefined));
}

/** See {@link ClusterMember.publishCheckpoint}. */
async function publishCheckpoint(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
  cell: CellDefinition,
  checkpoint: { archive: string; manifest: CheckpointManifest },
): Promise<boolean> {
  if (coordination.fenced()) return false;
  if (!cell.agents.some((agent) => state.held.has(`${cell.uuid}/${agent.name}`))) return false;
  const { logger, hostId } = options;
  const put = await putCellCheckpoint(coordination.cellStore, cell, hostId, checkpoint, logger);
  if (put) {
    state.published.add(cell.uuid);
    state.awaitingCheckpoint.delete(cell.uuid);
    logger.debug('cluster: checkpoint put in the object store', {
      cell: cell.uuid,
      checkpoint: checkpoint.manifest.name,
      bytes: checkpoint.manifest.bytes,
    });
  }
  return put;
}

/**
 * Puts the definition of each local cell whose agents this host holds, once, when the store has
 * none; removes this host's record of a cell that is no longer here (see the module header).
 */
async function publishDefinitions(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
  cells: CellDefinition[],
): Promise<void> {
  const here = new Set(cells.map((cell) => cell.uuid));
  for (const uuid of [...state.published]) {
    if (here.has(uuid) || state.closed || coordination.fenced()) continue;
    try {
      if (await deleteCellRecord(coordination.cellStore, uuid, options.hostId))
        options.logger.info('cluster: a cell left this host: its record left the object store', {
          cell: uuid,
        });
      state.published.delete(uuid);
      state.awaitingCheckpoint.delete(uuid);
    } catch (error) {
      options.logger.warn(
        'cluster: cannot remove a cell’s record from the object store; retrying',
        {
          cell: uuid,
          error: String(error),
        },
      );
    }
  }
  for (const cell of cells) {
    if (state.published.has(cell.uuid) || state.closed || coordination.fenced()) continue;
    if (!cell.agents.some((agent) => state.held.has(`${cell.uuid}/${agent.name}`))) continue;
    try {
      const store = coordination.cellStore;
      if (await putCellDefinition(store, cell, options.hostId)) {
        options.logger.debug(
          'cluster: cell definition put in the object store (no checkpoint yet)',
          {
            cell: cell.uuid,
          },
        );
        state.awaitingCheckpoint.add(cell.uuid);
      } else if (!(await cellHasCheckpoint(store, cell.uuid))) {
        state.awaitingCheckpoint.add(cell.uuid);
      }
      state.published.add(cell.uuid);
    } catch (error) {
      options.logger.warn('cluster: cannot put a cell’s definition in the object store; retrying', {
        cell: cell.uuid,
        error: String(error),
      });
    }
  }
}

/** The most time between two listings of the cell object store while nothing calls for one (ms). */
export const CELL_LIST_REFRESH_MS = 60_000;

/**
 * The records of the cell object store, listed again only when a takeover may be due: at the
 * first pass; when the live hosts changed since the last listing (a host's lease expired: its
 * cells are to be taken over now; or a host came); while a cell taken over is being rebuilt
 * here; when the last pass left a takeover undecided (NATS did not answer a read or a claim);
 * and at least every {@link CELL_LIST_REFRESH_MS}. Otherwise the last listing is used: a record
 * written since by a host that stays live calls for nothing (its writer holds the cell), and
 * once that host is gone the live hosts have changed. One listing of 1,000 records took 43 ms
 * (p50, load 3.1) with 23 ms of the daemon's CPU and 36 ms of nats-server's
 * (bench/diagnose/cell-store-list.ts).
 */
async function cellRecords(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
  live: ReadonlySet<string>,
): Promise<CellRecord[]> {
  const liveKey = [...live].sort().join(',');
  const last = state.cellList;
  const refreshMs = options.cellListRefreshMs ?? CELL_LIST_REFRESH_MS;
  if (
    last &&
    last.live === liveKey &&
    !last.undecided &&
    state.rebuilding.size === 0 &&
    Date.now() - last.at < refreshMs
  )
    return last.records;
  const at = Date.now();
  const records = await listCellRecords(coordination.cellStore, options.logger, state.badRecords);
  state.cellList = { records, at, live: liveKey, undecided: false };
  return records;
}

/** Tries to rebuild a cell taken over at most this many passes before giving its agents up. */
const REBUILD_TRIES = 5;

/**
 * Cells of hosts that are gone (see the module header): for each record in the object store whose
 * cell is not on this host, the agents whose owner's lease expired are claimed by the live host
 * ranked first for the cell (so all of a cell's agents go to one host), and the winner rebuilds
 * the cell from the record's checkpoint and takes its agents up. With no checkpoint in the record,
 * only agents whose policy substitutes them are taken up (in a cell rebuilt with an empty
 * workspace); the others are reported and let go (left dead: the host that comes back starts them).
 */
async function takeOverCells(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
  live: ReadonlySet<string>,
): Promise<void> {
  const hooks = state.hooks;
  if (!hooks?.cells || !hooks.materialise || coordination.fenced() || state.closed) return;
  const { logger, hostId } = options;
  const local = new Set(hooks.cells().map((cell) => cell.uuid));
  const records = await cellRecords(options, coordination, state, live);
  let changed = false;
  for (const record of records) {
    if (local.has(record.uuid) || state.closed || coordination.fenced()) continue;
    // The host that wrote the record last holds the cell (a takeover writes it at once): while it
    // is live, its agents' owner records are not read at all.
    if (live.has(record.host) && !state.rebuilding.has(record.uuid)) continue;
    const keys = record.agents.map((agent) => `${record.uuid}/${agent.name}`);
    let from = state.rebuilding.get(record.uuid)?.from;
    if (from === undefined) {
      if (rankHosts(record.uuid, [...live])[0] !== hostId) continue;
      const claimed = await claimCell(options, coordination, state, keys, live);
      if (!claimed) continue;
      from = claimed;
    }
    try {
      const archive = record.checkpoint
        ? await getCellArchive(coordination.cellStore, record)
        : undefined;
      const taken = new Set(await hooks.materialise(record, archive, from));
      if (taken.size > 0) {
        await putTakenOver(coordination.cellStore, record, archive, hostId, [...taken]).catch(
          (error: unknown) =>
            logger.warn(
              'cluster: cannot put the cell taken over in the object store as this host’s',
              {
                cell: record.uuid,
                error: String(error),
              },
            ),
        );
        state.published.add(record.uuid);
      }
      await letGo(
        coordination,
        state,
        keys.filter((key) => !taken.has(key.slice(record.uuid.length + 1))),
      );
      state.rebuilding.delete(record.uuid);
      changed = true;
    } catch (error) {
      const tries = (state.rebuilding.get(record.uuid)?.tries ?? 0) + 1;
      const giveUp = tries >= REBUILD_TRIES;
      logger.error(
        giveUp
          ? 'cluster: cannot rebuild a cell taken over; its agents are let go and left dead'
          : 'cluster: cannot rebuild a cell taken over yet; trying again at the next pass',
        { cell: record.uuid, previous_host: from, tries, error: String(error) },
      );
      if (giveUp) {
        state.rebuilding.delete(record.uuid);
        await letGo(coordination, state, keys);
      } else state.rebuilding.set(record.uuid, { from, tries });
    }
  }
  if (changed) await hooks.resync();
}

/**
 * Claims the cell's agents whose owner is a host that is gone; returns that host when one was
 * claimed. Agents nobody owns (stopped, or let go by a clean leave) and those of live hosts are left.
 */
async function claimCell(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
  keys: string[],
  live: ReadonlySet<string>,
): Promise<string | undefined> {
  let from: string | undefined;
  for (const key of keys) {
    if (state.held.has(key)) continue;
    let owner: OwnerRecord | undefined;
    try {
      owner = await coordination.owner(key);
    } catch {
      // Not known whether it is to be taken over: the cell store is listed again next pass.
      if (state.cellList) state.cellList.undecided = true;
      continue;
    }
    if (!owner || owner.host === options.hostId) continue;
    if (live.has(owner.host)) {
      state.remote.set(key, owner);
      continue;
    }
    const claimed = await coordination.claim(key, { live });
    if (!claimed.ok) {
      if (claimed.owner) state.remote.set(key, claimed.owner);
      if ((claimed.reason === 'unavailable' || claimed.reason === 'fenced') && state.cellList)
        state.cellList.undecided = true;
      continue;
    }
    state.held.set(key, claimed.epoch);
    state.remote.delete(key);
    state.takenFrom.set(key, owner.host);
    from = owner.host;
    options.logger.info('cluster: took a cell agent over', {
      agent: key,
      epoch: claimed.epoch,
      previous_host: owner.host,
      previous_epoch: owner.epoch,
    });
  }
  return from;
}

/** Gives up the claims on a cell's agents this host holds but will not start. */
async function letGo(coordination: Coordination, state: MemberState, keys: string[]) {
  for (const key of keys) {
    const epoch = state.held.get(key);
    if (epoch === undefined) continue;
    state.held.delete(key);
    state.takenFrom.delete(key);
    await coordination.release(key, epoch).catch(() => false);
    for (const listener of state.letGoListeners) listener(key);
  }
}

/** Held agents whose owner record is read again per placement pass (a rotating window). */
const AUDIT_PER_PASS = 64;

/**
 * A safety net under the claims: reads the owner records of a window of the agents this host
 * holds, and lets go of (and stops here) any that another host now owns. A correct claim never
 * takes a live host's agent, so this finds nothing; if it ever does, the agent would otherwise
 * run twice until its next restart, and the error says so.
 * @returns whether an agent was let go.
 */
async function auditHeld(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
): Promise<boolean> {
  const keys = [...state.held.keys()];
  if (keys.length === 0 || state.closed || coordination.fenced()) return false;
  const start = state.auditFrom % keys.length;
  const window = [...keys.slice(start, start + AUDIT_PER_PASS)];
  if (window.length < AUDIT_PER_PASS && keys.length > window.length)
    window.push(...keys.slice(0, Math.min(start, AUDIT_PER_PASS - window.length)));
  state.auditFrom = start + window.length;
  let lost = false;
  for (const key of window) {
    const epoch = state.held.get(key);
    const owner = await coordination.owner(key).catch(() => undefined);
    // Only another host's record means it is gone: this host's own newer epoch is a start in flight.
    if (epoch === undefined || !owner || owner.host === options.hostId) continue;
    state.held.delete(key);
    state.remote.set(key, owner);
    lost = true;
    options.logger.error('cluster: an agent held here is owned by another host; stopping it here', {
      agent: key,
      epoch,
      owner: owner.host,
      owner_epoch: owner.epoch,
    });
    await state.hooks?.stopLocal(key).catch(() => undefined);
  }
  return lost;
}

/** Claims one agent when it has no live owner and this host ranks first; true when it did. */
async function placeOne(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
  key: string,
  live: ReadonlySet<string>,
): Promise<boolean> {
  const owner = await coordination.owner(key);
  if (owner && owner.host !== options.hostId && live.has(owner.host)) {
    state.remote.set(key, owner);
    return false;
  }
  // Unowned, owned by a host whose lease expired, or owned by this host (a restarted daemon).
  if (owner?.host !== options.hostId && rankHosts(key, [...live])[0] !== options.hostId)
    return false;
  const claimed = await coordination.claim(key, { live });
  if (!claimed.ok) {
    if (claimed.owner) state.remote.set(key, claimed.owner);
    return false;
  }
  state.held.set(key, claimed.epoch);
  state.remote.delete(key);
  if (claimed.takeover && owner) state.takenFrom.set(key, owner.host);
  options.logger.info(claimed.takeover ? 'cluster: took an agent over' : 'cluster: placed here', {
    agent: key,
    epoch: claimed.epoch,
    ...(owner ? { previous_host: owner.host, previous_epoch: owner.epoch } : {}),
  });
  return true;
}

async function onFenced(
  options: ClusterMemberOptions & { logger: Logger },
  state: MemberState,
): Promise<void> {
  const held = [...state.held.keys()];
  if (options.onPartition === 'keep') {
    options.logger.error('cluster lease lost: keeping agents running, reviving nothing', {
      agents: held.length,
    });
    return;
  }
  options.logger.error('cluster lease lost: stopping this host’s agents', { agents: held.length });
  state.held.clear();
  await Promise.all(held.map((key) => state.hooks?.stopLocal(key).catch(() => undefined)));
  await state.hooks?.resync().catch(() => undefined);
}

/** Back in the cluster: agents taken over meanwhile are stopped here and let go. */
async function onRejoined(
  options: ClusterMemberOptions & { logger: Logger },
  coordination: Coordination,
  state: MemberState,
): Promise<void> {
  let lost = 0;
  for (const [key, epoch] of [...state.held]) {
    const current = await coordination.isCurrent(key, epoch).catch(() => true);
    if (current) continue;
    lost += 1;
    state.held.delete(key);
    await state.hooks?.stopLocal(key).catch(() => undefined);
  }
  state.remote.clear();
  options.logger.info('cluster lease held again: following the current owners', {
    agents_taken_over_meanwhile: lost,
  });
  if (lost > 0) await state.hooks?.resync().catch(() => undefined);
}

async function viewOf(
  options: ClusterMemberOptions,
  coordination: Coordination,
  state: MemberState,
): Promise<ClusterView> {
  const hosts = await coordination.liveHosts().catch(() => state.lastHosts);
  const now = Date.now();
  return {
    host: options.hostId,
    fenced: coordination.fenced(),
    on_partition: options.onPartition,
    lease_s: options.leaseMs / 1000,
    hosts: hosts
      .map((lease) => ({
        host: lease.host,
        pid: lease.pid,
        lease_age_s: lease.renewedAt > 0 ? Math.max(0, (now - lease.renewedAt) / 1000) : null,
      }))
      .sort((a, b) => a.host.localeCompare(b.host)),
    held: Object.fromEntries(state.held),
    remote: Object.fromEntries(
      [...state.remote].map(([key, owner]) => [key, { host: owner.host, epoch: owner.epoch }]),
    ),
  };
}
