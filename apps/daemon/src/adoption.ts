/**
 * Taking an agent up when it is first supervised: adopt the process its record names, or a
 * process this daemon started but never recorded (a daemon killed between a start and saving its
 * pid), or start an agent seen for the first time. It never starts a second copy of a running
 * agent, and never adopts on a pid alone: a process is the agent only if it still has the
 * recorded start time, leads its own session, and carries in its environment this daemon's
 * instance, the agent's cell and name, and the start nonce recorded in the daemon's own state
 * (executor.ts's adoption proof). A pid read from any file is a hint.
 */
import { resolvePolicy } from '@pit/policy';
import { approvalKey } from './approvals.js';
import { scanMarkedProcesses, markedKey, type MarkedProcess } from './proc.js';
import { reportEnded } from './agent-probes.js';
import { honourOperatorIntent } from './controls.js';
import { reapLeftoversSoon, whileBusy } from './leftovers.js';
import { startAgent, watchProcess } from './restart.js';
import { configOf, containerName, type Slot } from './slot.js';
import type { SupervisorContext } from './supervisor-context.js';

/** Live processes marked with this daemon's instance, read from `/proc` at most once per discovery pass. */
export interface MarkedScan {
  get(): Promise<MarkedProcess[]>;
}

/** How long a scan of `/proc` serves later discovery passes (ms), while no agent was removed. */
const SCAN_REUSE_MS = 30_000;

/** Per daemon: the last scan, when it began, and the fleet's removals then. */
const lastScans = new WeakMap<
  SupervisorContext,
  { scan: Promise<MarkedProcess[]>; at: number; removals: number }
>();

/**
 * The marked processes for one discovery pass: read from `/proc` on first use (every process on
 * the machine, one file each: thousands of reads on a full host), or the scan an earlier pass
 * made, when it began less than {@link SCAN_REUSE_MS} ago and no agent was removed since. That
 * is enough because a marked process that is no slot's was started, before the scan began,
 * either by an earlier daemon of this instance (gone before this one took the lock) or for an
 * agent this daemon stopped supervising (a removal, which ends the reuse); whatever this daemon
 * starts later is a slot's, and a slot is never taken up again. A process that died since the
 * scan is refused by the executor's adoption proof. Without the reuse, a host taking agents up a
 * few at a time (placement, a takeover) paid a full scan for every few agents.
 */
export function markedScan(context: SupervisorContext): MarkedScan {
  return {
    get() {
      const last = lastScans.get(context);
      if (last && last.removals === context.fleet.removals && Date.now() - last.at < SCAN_REUSE_MS)
        return last.scan;
      const fresh = {
        scan: scanMarkedProcesses(context.instance),
        at: Date.now(),
        removals: context.fleet.removals,
      };
      lastScans.set(context, fresh);
      return fresh.scan;
    },
  };
}

/** Adopts the recorded process, or starts an agent seen for the first time. */
export async function takeUp(
  context: SupervisorContext,
  slot: Slot,
  options: { firstSight: boolean; marked: MarkedScan },
): Promise<void> {
  checkPendingApproval(context, slot);
  await whileBusy(slot, () => takeUpMarked(context, slot, options));
  // What the operator recorded while no daemon ran (`pit stop|start|restart`).
  await honourOperatorIntent(context, slot);
  // What an earlier start of the agent left running (a child that copied its marks) is not it.
  if (slot.supervision.mode === 'managed') reapLeftoversSoon(context);
}

async function takeUpMarked(
  context: SupervisorContext,
  slot: Slot,
  options: { firstSight: boolean; marked: MarkedScan },
): Promise<void> {
  const { pid, pid_start_time: startTime, spawn_nonce: nonce } = slot.state;
  if (pid !== undefined && startTime !== undefined) {
    if (await adoptRecorded(context, slot, { pid, startTime, marked: options.marked })) {
      context.logger.info('re-adopted a running agent', { agent: slot.key, pid });
      return;
    }
  }
  const supervision = slot.supervision;
  // The recorded process is gone, or none was recorded: the last daemon may have started one
  // (a replacement, a first start) and been killed before its pid reached the state file.
  if (supervision.mode === 'managed' && (await adoptUnrecorded(context, slot, options.marked)))
    return;
  if ((pid !== undefined && startTime !== undefined) || nonce !== undefined) {
    slot.exit = { code: null, signal: null, at: new Date(context.now()), how: 'vanished' };
    reportEnded(context, slot);
    context.logger.warn('recorded agent process is gone', { agent: slot.key, pid });
    return;
  }
  if (
    !options.firstSight ||
    slot.state.stopped !== undefined ||
    slot.state.requested !== undefined ||
    supervision.mode !== 'managed' ||
    slot.cell?.manifest.status === 'frozen'
  )
    return;
  // A substitute being set up is started by the substitution itself, with its handoff.
  if (context.fleet.heldBack.has(slot.key)) return;
  // Taken over from a host whose lease expired. An agent its policy restarts by itself is
  // started at once (the takeover is not a death of its own: no backoff, no fleet brake, inside
  // 2T); any other mode (ask: one request fleet-wide, from the one host that won the claim;
  // substitute; never) decides as for a death.
  if (
    context.cluster?.isTakeover(slot.key) &&
    resolvePolicy({ config: context.policy, agent: slot.name }).mode !== 'auto'
  ) {
    slot.exit = { code: null, signal: null, at: new Date(context.now()), how: 'vanished' };
    reportEnded(context, slot);
    context.logger.warn('taken over from a host that is gone: its policy decides', {
      agent: slot.key,
    });
    return;
  }
  await startAgent(context, slot, supervision.config, {
    reason: 'first start',
    attempt: 0,
    initial: true,
  });
}

/**
 * A pending approval the record names must be a request about this agent in the daemon's own
 * approval store (a record migrated from a cell could name any id).
 */
function checkPendingApproval(context: SupervisorContext, slot: Slot): void {
  const named = slot.state.pending_approval;
  if (named === undefined) return;
  const request = context.approvals.get(named);
  if (request && approvalKey(request) === slot.key) return;
  context.logger.warn(
    'dropped a pending approval its record named: no such request for the agent',
    {
      agent: slot.key,
      approval: named,
    },
  );
  slot.state.pending_approval = undefined;
}

/**
 * Adopts the process the record names, on the executor's proof. A record without a nonce (an
 * older daemon's, or a migrated hint) names a process started before nonces: it must also be
 * the earliest session leader with the agent's marks (a child that copied them started later).
 */
async function adoptRecorded(
  context: SupervisorContext,
  slot: Slot,
  found: { pid: number; startTime: number; marked: MarkedScan },
): Promise<boolean> {
  const nonce = slot.state.spawn_nonce;
  if (nonce === undefined) {
    const earliest = earliestLeader(
      await found.marked.get(),
      slot,
      (marked) => marked === undefined,
    );
    if (earliest?.pid !== found.pid) {
      context.logger.warn('refused to adopt a process as the agent', {
        agent: slot.key,
        pid: found.pid,
        reason: `pid ${found.pid} is not the first process marked by this daemon as the agent (the record names no start nonce)`,
      });
      return false;
    }
  }
  return adopt(context, slot, { pid: found.pid, startTime: found.startTime, nonce });
}

async function adopt(
  context: SupervisorContext,
  slot: Slot,
  found: { pid: number; startTime: number; nonce: string | undefined },
): Promise<boolean> {
  const level = configOf(slot)?.isolation.level ?? 1;
  const adopted = await context.executor.adopt({
    agent: slot.name,
    ...(slot.cell ? { cell: slot.cell.uuid } : {}),
    pid: found.pid,
    startTime: found.startTime,
    ...(found.nonce !== undefined ? { nonce: found.nonce } : {}),
    level,
    ...(level === 3 ? { container: containerName(slot) } : {}),
  });
  if (!adopted) return false;
  watchProcess(context, slot, adopted);
  return true;
}

/** The earliest-started session leader with the agent's marks and a nonce that `accept`s. */
function earliestLeader(
  marked: MarkedProcess[],
  slot: Slot,
  accept: (nonce: string | undefined) => boolean,
): MarkedProcess | undefined {
  const key = markedKey(slot.cell?.uuid, slot.name);
  let earliest: MarkedProcess | undefined;
  for (const candidate of marked) {
    if (candidate.sid !== candidate.pid || !accept(candidate.nonce)) continue;
    if (markedKey(candidate.cell, candidate.agent) !== key) continue;
    if (!earliest || candidate.startTime < earliest.startTime) earliest = candidate;
  }
  return earliest;
}

/**
 * The process of the start whose nonce was recorded but whose pid was not (the nonce is saved
 * before the start, with no pid; or, for a restart, ahead of time as `next_spawn_nonce` with the
 * previous start's pid): the earliest session leader carrying that nonce (its children carry it
 * too, and started after it). Once the pid of a start is recorded, nothing else is adopted for
 * it: a child it left behind is a leftover, not the agent. A record with neither
 * (an older daemon's, a migrated hint, a lost file) takes the earliest session leader with the
 * agent's marks, whatever its nonce: no process can be marked as the agent but the agent and
 * what it forked, and a child starts after its parent.
 */
async function adoptUnrecorded(
  context: SupervisorContext,
  slot: Slot,
  marked: MarkedScan,
): Promise<boolean> {
  const { spawn_nonce: nonce, pid: recorded, next_spawn_nonce: ahead } = slot.state;
  // A start whose pid was recorded: only the next start, by the nonce recorded for it ahead of
  // time (a restart forks before it writes), can have left a process the record does not name.
  const started = nonce !== undefined && recorded !== undefined;
  if (started && ahead === undefined) return false;
  const found = earliestLeader(await marked.get(), slot, (candidate) =>
    started
      ? candidate === ahead
      : nonce === undefined || candidate === nonce || (ahead !== undefined && candidate === ahead),
  );
  if (!found || found.pid === recorded) return false;
  if (!(await adopt(context, slot, found))) return false;
  context.logger.warn('adopted a running agent its state file did not record', {
    agent: slot.key,
    pid: found.pid,
    recorded_pid: recorded,
  });
  void context.events.agentEvent(slot, {
    event: 'agent_adopted',
    pid: found.pid,
    reason:
      recorded === undefined
        ? 'found running, no pid recorded'
        : `found running; the recorded pid ${recorded} is gone`,
  });
  void context.store.save(slot.key);
  return true;
}
