/**
 * Applies discovery to the fleet, one pass at a time (the poll timer, the root watcher, reloads
 * and substitutions all ask for one): agents seen for the first time get a slot with their saved
 * record and are taken up (adopted or started); agents whose config changed are re-scheduled
 * (and assessed afresh); agents no longer wanted stop being probed (their processes keep running).
 * What could not be read (the root or a cell under EMFILE or EIO, a state file) is unknown, not
 * gone: its agents keep their slots, and one whose saved record could not be read is not taken up
 * (nor started) until it can be. It also remembers the last pass (the loop's own health) and the
 * problems it found.
 */
import type { AgentState } from '@pit/cell-spec';
import { scheduleProbes, unscheduleProbes } from './agent-probes.js';
import { markedScan, takeUp, type MarkedScan } from './adoption.js';
import { approvalKey } from './approvals.js';
import type { SharedRecord } from './cluster/agent-records.js';
import { createDiscovery, diffFleet, type FleetDiff, type WantedAgent } from './discovery.js';
import { createProblemLog } from './problem-log.js';
import { createRefusalReporter } from './membership.js';
import { compactRecord, HOST, NO_RESTARTS, supervisionOf, type Slot } from './slot.js';
import type { SupervisorContext, SyncMode } from './supervisor-context.js';

/** See the module header. */
export interface FleetSync {
  sync(mode: SyncMode): Promise<void>;
  /** Problems found by the last pass. */
  problems(): string[];
  /** When the last pass ran, and whether it failed. */
  last(): { at: number; ok: boolean; error?: string } | undefined;
}

/** Creates the fleet's synchronisation with discovery. */
export function createFleetSync(context: SupervisorContext): FleetSync {
  const discovery = createDiscovery({ logger: context.logger, now: context.now });
  const reportRefused = createRefusalReporter({
    logger: context.logger,
    append: (path, input, key) => context.events.append(path, input, key),
  });
  const problemLog = createProblemLog(context.logger);
  let problems: string[] = [];
  let last: { at: number; ok: boolean; error?: string } | undefined;
  let syncing: Promise<void> = Promise.resolve();

  const syncNow = async (mode: SyncMode) => {
    if (context.stopped) return;
    let found: Awaited<ReturnType<typeof discovery.discover>>;
    try {
      found = await discovery.discover(context.config, context.policyInput);
      last = { at: context.now(), ok: true };
    } catch (error) {
      last = {
        at: context.now(),
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      };
      throw error;
    }
    if (context.cluster) {
      keepClusterShare(context, found.wanted);
      await withdrawOthersApprovals(context, found.wanted);
    }
    const unknown = new Set(found.unreadable);
    const diff = diffFleet(context.fleet.slots, found.wanted);
    const kept = diff.removed.filter((slot) => isUnread(context, slot, unknown));
    if (kept.length > 0) {
      diff.removed = diff.removed.filter((slot) => !kept.includes(slot));
      context.logger.warn('cannot read cells: their agents stay supervised as last seen', {
        unreadable: [...unknown].slice(0, 5),
        agents: kept.length,
      });
    }
    reportRefused(found.refused);
    problems = [
      ...found.problems,
      ...context.store.problems(),
      ...context.approvals.problems(),
      ...(await applyDiff(context, diff, mode)),
    ];
    problemLog.update(problems);
  };

  return {
    sync(mode) {
      const next = syncing.then(() => syncNow(mode));
      syncing = next.catch(() => undefined);
      return next;
    },
    problems: () => [...problems],
    last: () => last,
  };
}

/**
 * In a cluster, the agents placed across hosts (outside cells, started by the Pit) are this
 * host's only while it holds them (cluster/cluster-member.ts); the others are left to their owners.
 */
function keepClusterShare(context: SupervisorContext, wanted: Map<string, WantedAgent>): void {
  for (const [key, want] of wanted) {
    if (want.cell || supervisionOf(want.config).mode !== 'managed') continue;
    if (!context.cluster?.supervises(key, false)) wanted.delete(key);
  }
}

/**
 * A pending request about an agent another host now owns (taken over while this host was gone,
 * or while its request waited) can never be carried out here: it is withdrawn, saying who owns
 * the agent, so that the fleet has one request per incident (the owner's) and an answer given
 * here is not mistaken for one that starts the agent.
 */
async function withdrawOthersApprovals(
  context: SupervisorContext,
  wanted: Map<string, WantedAgent>,
): Promise<void> {
  const cluster = context.cluster!;
  for (const request of context.approvals.list('pending')) {
    const key = approvalKey(request);
    if (wanted.has(key)) continue;
    const owner = cluster.ownerElsewhere(key);
    if (!owner) continue;
    await context.approvals.cancel(
      request.id,
      context.now(),
      `${owner.host} owns ${request.agent} now (epoch ${owner.epoch}): it decides`,
    );
    context.metrics.approvalsTotal.inc({ outcome: 'cancelled' });
    context.logger.info('cluster: withdrew a request about an agent another host owns', {
      agent: key,
      approval: request.id,
      owner_host: owner.host,
      owner_epoch: owner.epoch,
    });
  }
}

/** The keys of the agents a cluster places across hosts (see {@link keepClusterShare}). */
export function placeableAgents(context: SupervisorContext): string[] {
  return Object.entries(context.config.agents)
    .filter(([, agent]) => agent.cell === 'none' && supervisionOf(agent).mode === 'managed')
    .map(([name]) => `${HOST}/${name}`);
}

/**
 * Whether a slot discovery did not see stays, because its cell (or the whole root) could not be
 * read: an agent is never un-supervised on a read error.
 */
function isUnread(context: SupervisorContext, slot: Slot, unreadable: Set<string>): boolean {
  if (!slot.cell) return false;
  return unreadable.has(context.config.cells.root) || unreadable.has(slot.cell.dir);
}

/** Applies a diff; returns the problems met (state files that could not be read). */
async function applyDiff(
  context: SupervisorContext,
  diff: FleetDiff,
  mode: SyncMode,
): Promise<string[]> {
  for (const { slot, want, configChanged } of diff.kept) {
    if (want.cell) {
      if (want.cell.dir !== slot.target) {
        slot.target = want.cell.dir;
        context.store.attach({ key: slot.key, name: slot.name, scope: slot.target }, slot.state);
      }
      slot.cell = want.cell;
    }
    if (configChanged) {
      slot.supervision = supervisionOf(want.config);
      slot.configHash = want.configHash;
      context.fleet.changed();
      if (slot.scheduled) unscheduleProbes(context, slot);
      context.logger.info('agent config changed', { agent: slot.key });
    }
    if (mode === 'loop' && !slot.scheduled) scheduleProbes(context, slot);
  }
  // Saved records are read only for agents seen for the first time (once per cell, once for the host).
  const saved = new Map<string, Promise<Record<string, AgentState>>>();
  const savedIn = (scope: string) => {
    let records = saved.get(scope);
    if (!records) saved.set(scope, (records = context.store.loadScope(scope)));
    return records;
  };
  const marked = markedScan(context);
  const sharedRecords = readSharedRecords(context, diff.added);
  // Per agent, in the order discovery gave them, whatever order the take-ups finish in.
  const problems: Array<string | undefined> = [];
  const takeUpOne = async (want: WantedAgent, index: number): Promise<void> => {
    const scope = want.cell?.dir ?? HOST;
    let record: AgentState | undefined;
    let firstSight: boolean;
    try {
      record = (await savedIn(scope))[want.name];
      firstSight = record === undefined;
      // Another host owned it last (taken over, or placed here after a clean stop there): what
      // outlives a host (an operator's stop, recent restarts) comes from the cluster, and this
      // host never saw the process (its own record, if any, is from an earlier ownership).
      const shared = await sharedRecords.get(want.key);
      if (shared && shared.host !== context.cluster!.hostId) {
        record = shared.state;
        firstSight = true;
      }
    } catch (error) {
      // Its saved record is unknown: it may be running. Taken up on a later pass, never started on a guess.
      const message = error instanceof Error ? error.message : String(error);
      problems[index] = `${want.key}: not taken up yet: cannot read its state (${message})`;
      return;
    }
    await addAgent(context, want, { record, firstSight, mode, marked });
  };
  // Several at a time (a host that takes over, or starts with, thousands of agents starts them
  // within the takeover's bound, not one start after another), all before any removal. Agents
  // that crash at start then die together, and when they are more than half of the fleet the
  // fleet brake engages (restarts spaced `restart_interval` apart), as it should for a fleet
  // that cannot start.
  await inTurns(diff.added, TAKE_UP_IN_FLIGHT, takeUpOne);
  for (const slot of diff.removed) await removeAgent(context, slot);
  return problems.filter((problem) => problem !== undefined);
}

/** Agents taken up at once per pass (their records read, adopted or started). */
const TAKE_UP_IN_FLIGHT = 16;

/**
 * Runs `run` on every item, at most `limit` at a time (workers over one queue, in order), and
 * resolves when all have finished. A rejection stops the queue as a failure stopped a loop: no
 * item begins after it, those under way finish, then it is thrown.
 */
export async function inTurns<T>(
  items: readonly T[],
  limit: number,
  run: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failure) {
      const index = next++;
      try {
        await run(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}

/** Shared records read at once per pass. */
const SHARED_READS_IN_FLIGHT = 32;

/**
 * In a cluster, the shared records of the agents about to be taken up, read ahead
 * ({@link SHARED_READS_IN_FLIGHT} at a time: a takeover of thousands of agents must not wait
 * for one read after another); alone, none.
 */
function readSharedRecords(
  context: SupervisorContext,
  added: WantedAgent[],
): Map<string, Promise<SharedRecord | undefined>> {
  const reads = new Map<string, Promise<SharedRecord | undefined>>();
  const cluster = context.cluster;
  if (!cluster) return reads;
  let slots = SHARED_READS_IN_FLIGHT;
  const waiting: Array<() => void> = [];
  const turn = (): Promise<void> => {
    if (slots === 0) return new Promise((resolve) => waiting.push(resolve));
    slots -= 1;
    return Promise.resolve();
  };
  const done = () => {
    const next = waiting.shift();
    if (next) next();
    else slots += 1;
  };
  for (const want of added) {
    const read = turn().then(() => cluster.sharedRecord(want.key).finally(done));
    // Awaited where the agent is taken up; a rejection met there is reported there as a problem.
    read.catch(() => undefined);
    reads.set(want.key, read);
  }
  return reads;
}

async function addAgent(
  context: SupervisorContext,
  want: WantedAgent,
  options: {
    record: AgentState | undefined;
    /** This host never saw the agent's process (no record here, or the record is another host's). */
    firstSight: boolean;
    mode: SyncMode;
    marked: MarkedScan;
  },
): Promise<void> {
  const slot: Slot = {
    key: want.key,
    name: want.name,
    ...(want.cell ? { cell: want.cell } : {}),
    supervision: supervisionOf(want.config),
    state: compactRecord(
      options.record ?? { health: 'unknown', revive_attempts: 0, restarts: NO_RESTARTS },
    ),
    healthy: context.store.healthyPeriods(want.key),
    queue: undefined,
    lastSnapshotAt: 0,
    reported: false,
    scheduled: false,
    configHash: want.configHash,
    savedHash: Number.NaN,
    savedRevision: -1,
    target: want.cell?.dir ?? HOST,
  };
  // An approval request stored by a daemon killed before the agent's state named it: link it
  // again, so that answers from another process (`pit approve`) and the status see it.
  const latest = context.approvals.latest(slot.key);
  if (latest?.status === 'pending' && slot.state.pending_approval !== latest.id) {
    slot.state.pending_approval = latest.id;
    context.logger.info('re-linked a pending approval request the state file did not name', {
      agent: slot.key,
      approval: latest.id,
    });
  }
  context.store.attach({ key: slot.key, name: slot.name, scope: slot.target }, slot.state);
  context.fleet.add(slot);
  await takeUp(context, slot, { firstSight: options.firstSight, marked: options.marked });
  if (options.mode === 'loop') scheduleProbes(context, slot);
  // An adopted agent keeps its bus after a daemon restart: serve its cell's bus from the start.
  if (options.mode === 'loop' && slot.cell && context.busHub) openBus(context, slot.cell.dir);
}

function openBus(context: SupervisorContext, cellDir: string): void {
  void context.busHub?.bus(cellDir).catch((error: unknown) => {
    context.logger.error("cannot open the cell's mission bus", {
      cell: cellDir,
      error: error instanceof Error ? error.message : String(error),
    });
  });
}

async function removeAgent(context: SupervisorContext, slot: Slot): Promise<void> {
  unscheduleProbes(context, slot);
  if (slot.timer) clearTimeout(slot.timer);
  context.fleet.remove(slot);
  context.store.detach(slot.key);
  context.assessor.forget(slot.key);
  context.logger.info('agent no longer supervised', { agent: slot.key });
  const cell = slot.cell;
  if (!cell || !context.busHub) return;
  const cellStillSupervised = [...context.fleet.slots.values()].some(
    (other) => other.cell?.dir === cell.dir,
  );
  if (!cellStillSupervised) await context.busHub.release(cell.dir);
}
