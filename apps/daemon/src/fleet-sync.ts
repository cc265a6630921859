/**
 * Applies discovery to the fleet, one pass at a time (the poll timer, the root watcher, reloads
 * and substitutions all ask for one): agents seen for the first time get a slot with their saved
 * record and are taken up (adopted or started); agents whose config changed are re-scheduled
 * (and assessed afresh); agents no longer wanted stop being probed (their processes keep running).
 * It also remembers the last pass (the loop's own health) and the problems it found.
 */
import type { AgentState } from '@pit/cell-spec';
import { scheduleProbes, unscheduleProbes } from './agent-probes.js';
import { markedScan, takeUp, type MarkedScan } from './adoption.js';
import { createDiscovery, diffFleet, type FleetDiff, type WantedAgent } from './discovery.js';
import { createRefusalReporter } from './membership.js';
import { HOST, supervisionOf, type Slot } from './slot.js';
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
    problems = found.problems;
    reportRefused(found.refused);
    await applyDiff(context, diffFleet(context.fleet.slots, found.wanted), mode);
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

async function applyDiff(
  context: SupervisorContext,
  diff: FleetDiff,
  mode: SyncMode,
): Promise<void> {
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
      slot.configJson = want.configJson;
      context.fleet.changed();
      slot.heartbeat = undefined;
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
  const marked = markedScan(context.instance);
  for (const want of diff.added) {
    const record = (await savedIn(want.cell?.dir ?? HOST))[want.name];
    await addAgent(context, want, { record, mode, marked });
  }
  for (const slot of diff.removed) await removeAgent(context, slot);
}

async function addAgent(
  context: SupervisorContext,
  want: WantedAgent,
  options: { record: AgentState | undefined; mode: SyncMode; marked: MarkedScan },
): Promise<void> {
  const slot: Slot = {
    key: want.key,
    name: want.name,
    ...(want.cell ? { cell: want.cell } : {}),
    supervision: supervisionOf(want.config),
    state: options.record ?? { health: 'unknown', revive_attempts: 0, restarts: [] },
    healthy: context.store.healthyPeriods(want.key),
    queue: Promise.resolve(),
    lastSnapshotAt: 0,
    reported: false,
    scheduled: false,
    configJson: want.configJson,
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
  await takeUp(context, slot, { firstSight: options.record === undefined, marked: options.marked });
  if (options.mode === 'loop') scheduleProbes(context, slot);
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
