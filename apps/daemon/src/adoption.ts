/**
 * Taking an agent up when it is first supervised: adopt the process its record names (same pid,
 * same start time), or a process this daemon's instance started but never recorded (found in
 * `/proc` by its `PIT_INSTANCE` mark: a daemon killed between spawn and persist), or start an
 * agent seen for the first time. It never starts a second copy of a running agent.
 */
import { findMarkedProcesses, markedKey, type MarkedProcess } from './proc.js';
import { reportEnded } from './agent-probes.js';
import { startAgent, watchProcess } from './restart.js';
import { configOf, containerName, type Slot } from './slot.js';
import type { SupervisorContext } from './supervisor-context.js';

/** Live processes marked with this daemon's instance, read from `/proc` at most once per discovery pass. */
export interface MarkedScan {
  get(): Promise<Map<string, MarkedProcess>>;
}

/** A scan of `/proc` made on first use, shared by one discovery pass. */
export function markedScan(instance: string): MarkedScan {
  let scan: Promise<Map<string, MarkedProcess>> | undefined;
  return { get: () => (scan ??= findMarkedProcesses(instance)) };
}

/** Adopts the recorded process, or starts an agent seen for the first time. */
export async function takeUp(
  context: SupervisorContext,
  slot: Slot,
  options: { firstSight: boolean; marked: MarkedScan },
): Promise<void> {
  const { pid, pid_start_time: startTime } = slot.state;
  if (pid !== undefined && startTime !== undefined) {
    if (await adopt(context, slot, { pid, startTime })) {
      context.logger.info('re-adopted a running agent', { agent: slot.key, pid });
      return;
    }
  }
  const supervision = slot.supervision;
  // The recorded process is gone, or none was recorded: the last daemon may have started one
  // (a replacement, a first start) and been killed before its pid reached the state file.
  if (supervision.mode === 'managed' && (await adoptUnrecorded(context, slot, options.marked)))
    return;
  if (pid !== undefined && startTime !== undefined) {
    slot.exit = { code: null, signal: null, at: new Date(context.now()), how: 'vanished' };
    reportEnded(context, slot);
    context.logger.warn('recorded agent process is gone', { agent: slot.key, pid });
    return;
  }
  if (
    !options.firstSight ||
    supervision.mode !== 'managed' ||
    slot.cell?.manifest.status === 'frozen'
  )
    return;
  // A substitute being set up is started by the substitution itself, with its handoff.
  if (context.fleet.heldBack.has(slot.key)) return;
  await startAgent(context, slot, supervision.config, {
    reason: 'first start',
    attempt: 0,
    initial: true,
  });
}

async function adopt(
  context: SupervisorContext,
  slot: Slot,
  found: { pid: number; startTime: number },
): Promise<boolean> {
  const level = configOf(slot)?.isolation.level ?? 1;
  const adopted = await context.executor.adopt({
    agent: slot.name,
    ...(slot.cell ? { cell: slot.cell.uuid } : {}),
    pid: found.pid,
    startTime: found.startTime,
    level,
    ...(level === 3 ? { container: containerName(slot) } : {}),
  });
  if (!adopted) return false;
  watchProcess(context, slot, adopted);
  return true;
}

async function adoptUnrecorded(
  context: SupervisorContext,
  slot: Slot,
  marked: MarkedScan,
): Promise<boolean> {
  const found = (await marked.get()).get(markedKey(slot.cell?.uuid, slot.name));
  const recorded = slot.state.pid;
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
