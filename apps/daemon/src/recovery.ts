/**
 * Recovery by hand: an agent that the Pit did not bring back, but that came back anyway. When a
 * managed agent whose process is gone writes a heartbeat again, the pid it names is taken up as
 * the agent — only on proof (executor.ts's `handStartRefusal()`: alive, the daemon's user, the
 * agent's cell and name in its environment; a heartbeat is the agent's word, never authority) —
 * and the agent is supervised again under its policy: `agent_recovered` is written, its open
 * death issue gets a recovery comment and is closed. An agent that comes back with no process to
 * take up (its probes pass again) is recorded by actions.ts's `declareHealthy()`. It never
 * starts or kills a process.
 */
import { readHeartbeat } from '@pit/cell-spec';
import { processStartedAtMs, readProcessStat, type ProbeEvent } from '@pit/probes';
import { probesOf, trackAgent } from './agent-probes.js';
import { onSlotQueue } from './controls.js';
import { whileBusy } from './leftovers.js';
import { watchProcess } from './restart.js';
import type { Slot } from './slot.js';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** Slots whose comeback is being checked (one check at a time per agent). */
const checking = new WeakSet<Slot>();

/**
 * Looks at a passing heartbeat of an agent the Pit has no process for: when it names a new pid,
 * checks it and takes it up (in the background; never rejects).
 */
export function noticeComeback(
  context: SupervisorContext,
  slot: Slot,
  probeEvent: Pick<ProbeEvent, 'probe' | 'result'>,
): void {
  if (probeEvent.probe !== 'heartbeat' || !probeEvent.result.ok) return;
  if (!slot.cell || slot.supervision.mode !== 'managed' || slot.state.stopped) return;
  if ((slot.process && !slot.process.exit) || checking.has(slot)) return;
  checking.add(slot);
  void onSlotQueue(slot, () => whileBusy(slot, () => takeUpComeback(context, slot)))
    .catch((error: unknown) =>
      context.logger.warn('cannot check an agent that came back', {
        agent: slot.key,
        error: error instanceof Error ? error.message : String(error),
      }),
    )
    .finally(() => checking.delete(slot));
}

async function takeUpComeback(context: SupervisorContext, slot: Slot): Promise<void> {
  const beat = await readHeartbeat(slot.cell!.dir, slot.name).catch(() => undefined);
  const pid = beat?.pid;
  if (pid === undefined || !Number.isInteger(pid) || pid <= 1) return;
  if (slot.process && !slot.process.exit) return;
  if (slot.process?.pid === pid) return;
  const stat = await readProcessStat(pid).catch(() => undefined);
  if (!stat) return;
  const level = slot.supervision.config?.isolation.level ?? 1;
  // At levels 2 and 3 a heartbeat's pid is inside the agent's namespace: not one to take up.
  if (level !== 1) return;
  const adopted = await context.executor.adopt({
    agent: slot.name,
    cell: slot.cell!.uuid,
    pid,
    startTime: stat.startTime,
    level: 1,
    byHand: true,
  });
  if (!adopted || context.stopped || context.fleet.slots.get(slot.key) !== slot) return;
  const wasDead = slot.state.health === 'dead';
  watchProcess(context, slot, adopted);
  if (slot.timer) clearTimeout(slot.timer);
  slot.timer = undefined;
  slot.state.backoff_until = undefined;
  slot.state.health = 'unknown';
  slot.state.since = iso(context.now());
  context.fleet.changed();
  const startedAt = (await processStartedAtMs(stat.startTime)) ?? context.now();
  trackAgent(context, slot, { startedAt, probes: probesOf(context, slot) });
  const reason = `heartbeat resumed with pid ${pid}, started outside the Pit; taken up (its environment names this cell and agent, run by the daemon's user)`;
  context.logger.warn('agent came back by hand: supervised again', { agent: slot.key, pid });
  await context.events.agentEvent(slot, { event: 'agent_recovered', pid, reason });
  if (wasDead || slot.reported) {
    slot.reported = false;
    context.notify(
      context.notifier.recovery(
        slot.name,
        `${slot.name} came back (${iso(context.now())}): ${reason}`,
        slot.cell!.uuid,
      ),
    );
  }
  void context.store.save(slot.key);
  if (context.scheduler?.has(slot.key)) context.scheduler.trigger(slot.key);
  void context.evaluateSoon(slot);
}
