/**
 * Evaluation: from a probe result (or an exit, an answer, a wake-up) to a decision carried out.
 * One evaluation at a time per agent: take the verdict (health.ts), record a change of health
 * (declared dead, healthy or degraded: actions.ts), ask @pit/policy what to do, carry it out
 * (actions.ts), save the agent's record (state store). It owns the order of those steps and the
 * shortcut for a healthy agent with nothing to do; it never starts or stops a process itself.
 */
import { decide, type Decision } from '@pit/policy';
import type { ProbeEvent } from '@pit/probes';
import { hash53 } from './hash53.js';
import { carryOutDecision, declareDead, declareDegraded, declareHealthy } from './actions.js';
import { countProbe, isOwnResourceFailure } from './agent-probes.js';
import { snapshotConfig } from './config-snapshots.js';
import { fleetFrom } from './fleet-view.js';
import { healthOf, type Verdict } from './health.js';
import { holdForProvider } from './provider-gate.js';
import { noticeComeback } from './recovery.js';
import { configOf, type Slot } from './slot.js';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** A healthy agent's state (last_healthy_at) is written at least this often while nothing else changes (ms). */
export const HEALTHY_PERSIST_MS = 60_000;

/** A probe result from the scheduler: assessed at once; evaluated when it changes anything. */
export function onProbeResult(context: SupervisorContext, probeEvent: ProbeEvent): void {
  countProbe(context, probeEvent.result);
  const slot = context.fleet.slots.get(probeEvent.agent);
  if (!slot) return;
  if (isOwnResourceFailure(probeEvent.result)) {
    warnIgnoredSample(context, slot.key, probeEvent);
    return;
  }
  // A managed agent with no process whose heartbeat passes came back by other means (recovery.ts).
  noticeComeback(context, slot, probeEvent);
  const assessment = context.assessor.note(slot.key, probeEvent.probe, probeEvent.result);
  // A healthy verdict that changes nothing needs no evaluation (and no decision): only a change,
  // a death, or a healthy verdict with something left to do (a recovery the loop has not seen
  // yet, an approval to cancel, a backoff to clear, a snapshot or a state write due).
  if (
    assessment.changed ||
    assessment.health === 'dead' ||
    (assessment.health === 'healthy' &&
      !settledHealthy(context, slot, probeEvent.result.observedAt))
  ) {
    void evaluateSoon(context, slot);
  }
}

/** Healthy in the loop's eyes with nothing pending: evaluating it again would decide `none` and change nothing. */
function quietlyHealthy(context: SupervisorContext, slot: Slot): boolean {
  return (
    slot.state.health === 'healthy' &&
    slot.state.pending_approval === undefined &&
    slot.state.backoff_until === undefined &&
    slot.timer === undefined &&
    slot.exit === undefined &&
    (slot.lastRule === 'none:health.healthy' || slot.cell?.manifest.status === 'frozen') &&
    context.approvals.latest(slot.key)?.status !== 'pending'
  );
}

function settledHealthy(context: SupervisorContext, slot: Slot, at: number): boolean {
  const snapshotDue =
    (configOf(slot)?.config_files.length ?? 0) > 0 &&
    !context.dryRun &&
    at - slot.lastSnapshotAt >= context.config.cells.poll_interval_s * 1000;
  return (
    quietlyHealthy(context, slot) &&
    !snapshotDue &&
    at - context.store.persistedAt(slot.key) < HEALTHY_PERSIST_MS
  );
}

/**
 * Queues an evaluation of the agent after the one in progress (never rejects). One that is
 * queued and not started yet serves the request: it will see everything known now.
 */
export function evaluateSoon(context: SupervisorContext, slot: Slot): Promise<void> {
  if (slot.nextEvaluation) return slot.nextEvaluation;
  const queued = (slot.queue ?? Promise.resolve())
    .then(() => {
      slot.nextEvaluation = undefined;
      return evaluate(context, slot);
    })
    .catch((error: unknown) =>
      context.logger.error('evaluation failed', {
        agent: slot.key,
        error: error instanceof Error ? error.stack : String(error),
      }),
    )
    .finally(() => {
      // Idle again: a fleet of agents holds no settled promise chain.
      if (slot.queue === queued) slot.queue = undefined;
    });
  slot.queue = queued;
  slot.nextEvaluation = queued;
  return queued;
}

/** Ignored samples since the last warning, per supervisor: out of fds, every probe fails at once. */
const ignoredSamples = new WeakMap<SupervisorContext, { warnedAt: number; since: number }>();
const IGNORED_WARN_MS = 10_000;

/** Says that a probe could not run for lack of the daemon's own resources: once per 10 s, with a count. */
function warnIgnoredSample(
  context: SupervisorContext,
  agent: string,
  probeEvent: ProbeEvent,
): void {
  const now = context.now();
  const seen = ignoredSamples.get(context) ?? { warnedAt: -Infinity, since: 0 };
  ignoredSamples.set(context, seen);
  seen.since += 1;
  if (now - seen.warnedAt < IGNORED_WARN_MS) return;
  context.logger.warn('probe could not run: the sample is ignored', {
    agent,
    probe: probeEvent.probe,
    detail: probeEvent.result.detail,
    ignored_since_last_warning: seen.since,
  });
  seen.warnedAt = now;
  seen.since = 0;
}

// An agent the operator stopped (`pit stop`) is not judged: not declared dead, not revived.
const supervised = (context: SupervisorContext, slot: Slot) =>
  !context.stopped && context.fleet.slots.get(slot.key) === slot && !slot.state.stopped;

async function evaluate(context: SupervisorContext, slot: Slot): Promise<void> {
  if (!supervised(context, slot)) return;
  const at = context.now();
  const verdict = healthOf(context.assessor.get(slot.key), at);
  const before = slot.state.health;
  if (verdict.state === 'healthy' && quietlyHealthy(context, slot)) {
    // Healthy and unchanged: nothing to decide. Snapshot the config when due; write the state now and then.
    slot.state.last_healthy_at = iso(at);
    await snapshotConfig(context, slot, at);
    if (at - context.store.persistedAt(slot.key) >= HEALTHY_PERSIST_MS)
      void context.store.save(slot.key);
    return;
  }
  if (verdict.state !== before) await recordHealthChange(context, slot, verdict, at);
  else if (verdict.state === 'dead') slot.state.first_dead_at ??= iso(verdict.since);
  if (verdict.state === 'healthy') {
    slot.state.last_healthy_at = iso(at);
    await snapshotConfig(context, slot, at);
  }
  if (slot.cell?.manifest.status === 'frozen') {
    saveIfChanged(context, slot);
    return;
  }
  if (verdict.state === 'dead' && before !== 'dead' && context.policy.fleet_brake.enabled) {
    // A new death is decided one turn of the event loop later, so that deaths arriving together
    // (a storm: many exits in one poll) are all in the fleet the policy sees (the fleet brake).
    // Without the brake nothing depends on the rest of the fleet's deaths: decided at once.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (!supervised(context, slot)) return;
  }
  const decision = decideFor(context, slot, verdict, at);
  // Not restarted into a provider outage: held (a wait, not a restart) or switched (provider-gate.ts).
  if (await holdForProvider(context, slot, decision, at)) return saveIfChanged(context, slot);
  await carryOutDecision(context, slot, decision, at);
  // Not awaited: the next evaluation (say, the exit of the agent just started) must not queue
  // behind a state write. Writes are coalesced per cell and awaited by sweep() and stop().
  saveIfChanged(context, slot);
}

/**
 * Saves the agent's record unless it is exactly what an evaluation last saved and nothing was
 * saved since: a standing decision (escalated, record only, waiting) re-evaluated on every probe
 * rewrites nothing, so the daemon is idle. What was saved is kept in the slot as a 53-bit hash of
 * its JSON (not the JSON: a copy per agent is 11,000 strings in a large fleet) and the store's
 * revision right after. Two different records share a hash with a chance of about 1 in 2^53; the
 * state would then be written at the next change instead.
 */
function saveIfChanged(context: SupervisorContext, slot: Slot): void {
  const hash = hash53(JSON.stringify(slot.state));
  if (slot.savedHash === hash && slot.savedRevision === context.store.revision(slot.key)) return;
  void context.store.save(slot.key);
  slot.savedHash = hash;
  slot.savedRevision = context.store.revision(slot.key);
}

async function recordHealthChange(
  context: SupervisorContext,
  slot: Slot,
  verdict: Verdict,
  at: number,
): Promise<void> {
  const before = slot.state.health;
  slot.state.health = verdict.state;
  slot.state.since = iso(verdict.since);
  context.fleet.changed();
  context.store.historyChanged();
  if (verdict.state === 'dead') declareDead(context, slot, verdict);
  else if (verdict.state === 'healthy') await declareHealthy(context, slot, before, at);
  else if (verdict.state === 'degraded') await declareDegraded(context, slot, verdict);
  if (before === 'healthy') {
    const open = slot.healthy.at(-1);
    if (open && open.to === undefined) open.to = at;
  }
  context.logger.info('agent health changed', {
    agent: slot.key,
    from: before,
    to: verdict.state,
    reason: verdict.reason,
  });
}

/**
 * Whether the policy would answer the agent's death now (its process killed) with an immediate
 * restart: the condition for a standing restart (standing-restart.ts).
 */
export function wouldRestartAtOnce(context: SupervisorContext, slot: Slot): boolean {
  const at = context.now();
  const detail = 'process exited (signal SIGKILL)';
  const decision = decideFor(
    context,
    slot,
    {
      state: 'dead',
      since: at,
      reason: detail,
      failure: { exited: true, failing_probes: ['process'], signal: 'SIGKILL', detail },
    },
    at,
  );
  return decision.action === 'restart';
}

/** Asks @pit/policy what to do about the agent now. */
function decideFor(context: SupervisorContext, slot: Slot, verdict: Verdict, at: number): Decision {
  const { state } = slot;
  const firstDead = state.first_dead_at ? Date.parse(state.first_dead_at) : undefined;
  const approval = context.approvals.latest(slot.key);
  const dead = verdict.state === 'dead';
  return decide({
    agent: {
      name: slot.name,
      ...(slot.cell ? { mission: slot.cell.manifest.mission } : {}),
      local: (configOf(slot)?.host ?? 'local') === 'local',
      restartable: slot.supervision.mode === 'managed',
      // Without config files a rollback restores nothing: the decision (and its reason) is a plain restart.
      rollbackable: (configOf(slot)?.config_files.length ?? 0) > 0,
    },
    health: {
      state: verdict.state,
      since: dead && firstDead !== undefined ? firstDead : verdict.since,
      ...(dead && verdict.failure ? { failure: verdict.failure } : {}),
    },
    history: {
      restarts: state.restarts.map((value) => Date.parse(value)),
      healthy: slot.healthy,
      ...(approval ? { approval } : {}),
      ...(state.substituted_by ? { substituted_by: state.substituted_by } : {}),
    },
    // Only a death consults the fleet (brake, substitutes).
    ...(dead
      ? {
          fleet: fleetFrom(
            context.fleet.index(context.config, context.store.fleetRestarts),
            slot,
            context.config,
          ),
        }
      : {}),
    now: at,
    config: context.policy,
    seed: slot.key,
  });
}
