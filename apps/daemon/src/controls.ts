/**
 * Operator controls of one agent in the running loop: `restart`, `stop`, `start`, `reset`
 * (`pit restart|stop|start|reset AGENT`, `POST /api/agents/<agent>/<action>`, the dashboard).
 * It owns what each control does to a slot, on the agent's evaluation queue (never beside an
 * evaluation), and honouring, when an agent is taken up, what the operator recorded while no
 * daemon ran (`honourOperatorIntent()`). Every control is an `agent_control` event. Which agent
 * a reference names is agent-ref.ts's; recording a control with no daemon is
 * offline-controls.ts's. Starting and stopping processes is restart.ts's.
 */
import type { OperatorAction } from '@pit/cell-spec';
import { resolveAgentRef } from './agent-ref.js';
import { evaluateSoon } from './evaluation.js';
import { startAgent, stopAgent } from './restart.js';
import type { Slot } from './slot.js';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** Who asked for a control, and how. */
export interface ControlRequest {
  /** The authenticated identity (the HTTP token's), or the CLI user. */
  by: string;
  /** `http`, `dashboard`, `cli`, or `sweep` for an intent recorded while no daemon ran. */
  via: string;
  reason?: string;
}

/** The outcome of a control. */
export type ControlResult =
  | { ok: true; key: string; action: OperatorAction; message: string; pid?: number }
  | {
      ok: false;
      reason: 'not_found' | 'ambiguous' | 'not_managed';
      message: string;
      candidates?: string[];
    };

/** Resolves `ref` among the supervised agents (agent-ref.ts) and carries out `action` on it. */
export async function controlAgent(
  context: SupervisorContext,
  ref: string,
  action: OperatorAction,
  request: ControlRequest,
): Promise<ControlResult> {
  const slots = [...context.fleet.slots.values()];
  const resolved = resolveAgentRef(
    ref,
    slots.map((slot) => ({
      key: slot.key,
      agent: slot.name,
      ...(slot.cell ? { cell: slot.cell.uuid, mission: slot.cell.manifest.mission } : {}),
    })),
  );
  if (!resolved.ok) return resolved;
  return applyControl(context, context.fleet.slots.get(resolved.key)!, action, request);
}

/**
 * Carries out `action` on the agent, after the evaluation in progress (if any), writes the
 * `agent_control` event and saves the record.
 */
export function applyControl(
  context: SupervisorContext,
  slot: Slot,
  action: OperatorAction,
  request: ControlRequest,
): Promise<ControlResult> {
  return onSlotQueue(slot, () => carryOutControl(context, slot, action, request));
}

/**
 * Runs `work` on the agent's evaluation queue, after the evaluation in progress and before any
 * queued later: nothing decides about the agent meanwhile.
 */
export function onSlotQueue<T>(slot: Slot, work: () => Promise<T>): Promise<T> {
  const run = (slot.queue ?? Promise.resolve()).then(work);
  const settled: Promise<void> = run
    .then(
      () => undefined,
      () => undefined,
    )
    .finally(() => {
      if (slot.queue === settled) slot.queue = undefined;
    });
  slot.queue = settled;
  return run;
}

async function carryOutControl(
  context: SupervisorContext,
  slot: Slot,
  action: OperatorAction,
  request: ControlRequest,
): Promise<ControlResult> {
  if ((action === 'start' || action === 'restart') && slot.supervision.mode !== 'managed')
    return {
      ok: false,
      reason: 'not_managed',
      message: `${slot.key} is observed, not started by the Pit (no argv, or host is not local): it cannot be ${action}ed from here`,
    };
  await context.events.agentEvent(slot, {
    event: 'agent_control',
    action,
    by: request.by,
    via: request.via,
    ...(request.reason ? { reason: request.reason } : {}),
  });
  context.logger.info('operator control', { agent: slot.key, action, by: request.by });
  slot.state.requested = undefined;
  clearWakeUp(slot);
  let message: string;
  if (action === 'stop') message = await stopByOperator(context, slot, request);
  else if (action === 'reset') message = await resetAgent(context, slot);
  else message = await startByOperator(context, slot, action, request);
  context.fleet.changed();
  await context.store.save(slot.key);
  const pid = slot.process && !slot.process.exit ? slot.process.pid : undefined;
  return { ok: true, key: slot.key, action, message, ...(pid ? { pid } : {}) };
}

/** The moment an agent is stopped by the operator: not judged, started or revived until started. */
async function stopByOperator(
  context: SupervisorContext,
  slot: Slot,
  request: ControlRequest,
): Promise<string> {
  const already = slot.state.stopped !== undefined;
  slot.state.stopped = {
    at: iso(context.now()),
    by: request.by,
    ...(request.reason ? { reason: request.reason } : {}),
  };
  slot.state.backoff_until = undefined;
  await withdrawApproval(context, slot);
  const running = slot.process && !slot.process.exit ? slot.process.pid : undefined;
  await stopAgent(context, slot);
  slot.state.pid = undefined;
  slot.state.pid_start_time = undefined;
  slot.state.health = 'unknown';
  slot.state.since = iso(context.now());
  slot.state.first_dead_at = undefined;
  if (running) return `stopped ${slot.key} (pid ${running}); it stays stopped until started`;
  return already
    ? `${slot.key} was already stopped`
    : `${slot.key} had no process running; it stays stopped until started`;
}

/** `start`: clears a stop and starts the agent when it is not running; `restart`: starts it anew. */
async function startByOperator(
  context: SupervisorContext,
  slot: Slot,
  action: 'start' | 'restart',
  request: ControlRequest,
): Promise<string> {
  if (slot.supervision.mode !== 'managed') return `${slot.key} is not managed`;
  slot.state.stopped = undefined;
  const running = slot.process && !slot.process.exit ? slot.process.pid : undefined;
  if (action === 'start' && running !== undefined)
    return `${slot.key} is already running (pid ${running})`;
  if (context.dryRun) return `dry run: would ${action} ${slot.key}`;
  // The policy's budget counts the Pit's own revives: a start asked by a person is not one.
  await startAgent(context, slot, slot.supervision.config, {
    reason: `${action} by ${request.by} via ${request.via}`,
    attempt: slot.state.revive_attempts,
    initial: true,
  });
  const pid = slot.process && !slot.process.exit ? slot.process.pid : undefined;
  if (pid === undefined) return `${slot.key} failed to start (see its revive_failed event)`;
  return running !== undefined
    ? `restarted ${slot.key}: pid ${running} → ${pid}`
    : `started ${slot.key} as pid ${pid}`;
}

/**
 * `reset`: forgets the backoff, the restart budget used (restarts, revive attempts) and the
 * escalation (the last decision; a pending approval request is withdrawn), then lets policy
 * decide afresh: a dead agent under an automatic policy is restarted.
 */
async function resetAgent(context: SupervisorContext, slot: Slot): Promise<string> {
  const { state } = slot;
  state.backoff_until = undefined;
  state.restarts = [];
  state.revive_attempts = 0;
  state.last_decision = undefined;
  slot.lastRule = undefined;
  await withdrawApproval(context, slot);
  // A death goes on, but as a new episode: answers given about the old one no longer decide it.
  if (state.health === 'dead') state.first_dead_at = iso(context.now());
  if (state.stopped === undefined) void evaluateSoon(context, slot);
  return `reset ${slot.key}: backoff, restart budget and escalation cleared${state.stopped ? ' (it stays stopped until started)' : ''}`;
}

async function withdrawApproval(context: SupervisorContext, slot: Slot): Promise<void> {
  const pending = context.approvals.latest(slot.key);
  if (pending?.status === 'pending') {
    await context.approvals.cancel(pending.id, context.now());
    context.metrics.approvalsTotal.inc({ outcome: 'cancelled' });
  }
  slot.state.pending_approval = undefined;
}

function clearWakeUp(slot: Slot): void {
  if (slot.timer) clearTimeout(slot.timer);
  slot.timer = undefined;
}

/**
 * What the operator recorded while no daemon ran, honoured when the agent is taken up (by the
 * next sweep or daemon start): a stopped agent found running is stopped; a requested start or
 * restart is carried out. The `agent_control` event was written when it was recorded.
 */
export async function honourOperatorIntent(context: SupervisorContext, slot: Slot): Promise<void> {
  const { stopped, requested } = slot.state;
  if (stopped !== undefined && slot.process && !slot.process.exit) {
    context.logger.info('stopping an agent the operator stopped', { agent: slot.key });
    await stopAgent(context, slot);
    slot.state.pid = undefined;
    slot.state.pid_start_time = undefined;
    void context.store.save(slot.key);
  }
  if (requested === undefined || stopped !== undefined) return;
  slot.state.requested = undefined;
  if (slot.supervision.mode !== 'managed') return;
  context.logger.info('carrying out a control recorded while no daemon ran', {
    agent: slot.key,
    action: requested.action,
    by: requested.by,
  });
  await startByOperator(context, slot, requested.action, { by: requested.by, via: 'cli' });
  await context.store.save(slot.key);
}
