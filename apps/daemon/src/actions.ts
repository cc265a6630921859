/**
 * The actions the loop takes about one agent, each named after its moment: an agent is declared
 * dead, healthy again or degraded; a decision of @pit/policy is carried out (restart, roll back
 * and restart, substitute, ask a human, wait, escalate, record only); people are told of a death
 * the Pit will not repair by itself. Starting and stopping processes is restart.ts's, handing
 * work over is substitute.ts's. Every function takes the loop's context explicitly.
 */
import type { Decision } from '@pit/policy';
import type { Verdict } from './health.js';
import { answerEvent } from './approval-answers.js';
import { downWithProvider } from './provider-gate.js';
import { restartAgent } from './restart.js';
import { slotLogPaths, type Slot } from './slot.js';
import { substitute } from './substitute.js';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** A request for a human's approval, as the policy words it. */
type ApprovalAsk = NonNullable<Extract<Decision, { action: 'ask' }>['request']>;

/** The moment an agent is declared dead: its episode starts, the event is written, the notifier told. */
export function declareDead(context: SupervisorContext, slot: Slot, verdict: Verdict): void {
  slot.state.first_dead_at ??= iso(verdict.since);
  void context.events.agentEvent(slot, {
    event: 'agent_dead',
    reason: verdict.reason,
    failing: [...(verdict.failure?.failing_probes ?? [])],
  });
  const died = context.notifier.died;
  // A death in a provider outage is told in the outage's one alert (provider-alerts.ts).
  if (died && !downWithProvider(context, slot)) {
    context.notify(
      died({
        agent: slot.name,
        mission: slot.cell?.manifest.mission ?? 'outside cells',
        ...(slot.cell ? { cell: slot.cell.uuid } : {}),
        reason: verdict.reason,
        at: new Date(verdict.since),
        fleetSize: context.fleet.slots.size,
      }),
    );
  }
}

/** The moment an agent is declared healthy: a healthy period opens; a reported death is resolved. */
export async function declareHealthy(
  context: SupervisorContext,
  slot: Slot,
  before: Slot['state']['health'],
  at: number,
): Promise<void> {
  slot.state.first_dead_at = undefined;
  slot.state.last_healthy_at = iso(at);
  // Only the recent periods matter (history keeps 5): a flapping agent must not grow it forever.
  slot.healthy = context.store.openHealthyPeriod(slot.key, at, 20);
  // Dead, then healthy with no restart by the Pit in between (a restart makes it `unknown`): it
  // came back by itself or by hand, with the process the Pit knows (or none: an observed agent).
  if (before === 'dead')
    void context.events.agentEvent(slot, {
      event: 'agent_recovered',
      ...(slot.process && !slot.process.exit ? { pid: slot.process.pid } : {}),
      reason: 'its probes pass again (not restarted by the Pit)',
    });
  await context.events.agentEvent(slot, { event: 'agent_healthy' });
  if (before === 'dead' || before === 'degraded' || slot.reported) {
    slot.reported = false;
    context.notify(
      context.notifier.recovery(
        slot.name,
        `${slot.name} is healthy again (${iso(at)})`,
        slot.cell?.uuid,
      ),
    );
  }
}

/** The moment an agent is declared degraded. */
export async function declareDegraded(
  context: SupervisorContext,
  slot: Slot,
  verdict: Verdict,
): Promise<void> {
  await context.events.agentEvent(slot, { event: 'agent_degraded', reason: verdict.reason });
}

/**
 * Decisions that do something new each time they are taken (a process started, work handed
 * over): recorded every time. Every other decision is a standing one (wait, ask, escalate,
 * record only): recorded once, and again only when it changes (see {@link decisionSignature}).
 */
const ACTING = new Set<Decision['action']>(['restart', 'rollback_and_restart', 'substitute']);
const REPORTED = new Set<Decision['action']>(['record_only', 'escalate', 'ask']);

/**
 * What makes a decision the same as the last one: its action and rule (and, for an escalation,
 * whether it asks or only records). Its reason is not part of it: "dead for 7s" becomes "dead
 * for 8s" without anything being decided anew.
 */
export function decisionSignature(decision: Decision): string {
  const signature = `${decision.action}:${decision.rule}`;
  return decision.action === 'escalate' ? `${signature}:${decision.then}` : signature;
}

/**
 * Carries out a decision of the policy: records it (a standing decision once, until it changes;
 * an acting one every time), reports a death left to people, acts.
 */
export async function carryOutDecision(
  context: SupervisorContext,
  slot: Slot,
  decision: Decision,
  at: number,
): Promise<void> {
  const signature = decisionSignature(decision);
  dropAnsweredApproval(context, slot);
  if (decision.action !== 'none' && (signature !== slot.lastRule || ACTING.has(decision.action))) {
    void context.events.agentEvent(slot, {
      event: 'decision',
      action: decision.action,
      rule: decision.rule,
      reason: decision.reason,
      ...(decision.approval_id ? { approval_id: decision.approval_id } : {}),
    });
    slot.state.last_decision = { action: decision.action, reason: decision.reason, at: iso(at) };
    // Persisted before it is carried out (a stop may wait out a grace): `pit status` reads the files.
    void context.store.save(slot.key);
    context.logger.info('decision', {
      agent: slot.key,
      action: decision.action,
      rule: decision.rule,
      reason: decision.reason,
    });
  }
  // One string per distinct rule, not one per agent (a fleet mostly repeats `none:health.healthy`).
  slot.lastRule = internRule(signature);
  if (REPORTED.has(decision.action) && !slot.reported && slot.state.health === 'dead') {
    reportDeath(context, slot, decision, at);
  }
  if (slot.timer) {
    clearTimeout(slot.timer);
    slot.timer = undefined;
  }
  await act(context, slot, decision, at);
}

/**
 * The record names a request only while it waits for an answer: once answered (denied, expired,
 * withdrawn, or approved) the policy reads the answer from the approval store, and the record
 * lets go of it (so `pit status` shows no denied request as pending). An answer the record still
 * names was given by another process (`pit approve|deny` with no daemon running): its event,
 * with the answerer's reason, is written now, before the decision it leads to.
 */
function dropAnsweredApproval(context: SupervisorContext, slot: Slot): void {
  const named = slot.state.pending_approval;
  if (named === undefined) return;
  const approval = context.approvals.get(named);
  if (approval?.status === 'pending') return;
  slot.state.pending_approval = undefined;
  if (approval?.status === 'approved' || approval?.status === 'denied')
    void context.events.agentEvent(slot, answerEvent(approval));
}

async function act(
  context: SupervisorContext,
  slot: Slot,
  decision: Decision,
  at: number,
): Promise<void> {
  switch (decision.action) {
    case 'none':
      slot.state.backoff_until = undefined;
      if (decision.cancel_approval) {
        await context.approvals.cancel(decision.cancel_approval, at);
        slot.state.pending_approval = undefined;
        context.metrics.approvalsTotal.inc({ outcome: 'cancelled' });
      }
      return;
    case 'wait':
      // Waiting for an answer is not a backoff: the request's expiry is the approval's, not the agent's.
      slot.state.backoff_until = decision.wait_for === 'approval' ? undefined : iso(decision.until);
      wakeAt(context, slot, decision.until);
      return;
    case 'restart':
    case 'rollback_and_restart':
      slot.state.pending_approval = undefined;
      await restartAgent(context, slot, {
        rollback: decision.action === 'rollback_and_restart',
        reason: decision.reason,
        attempt: decision.attempt,
      });
      return;
    case 'substitute':
      slot.state.pending_approval = undefined;
      await substitute(context, slot, decision.substitute, decision.reason);
      return;
    case 'ask':
      await askHuman(context, slot, decision.request);
      return;
    case 'escalate':
      if (decision.then === 'ask' && decision.request)
        await askHuman(context, slot, decision.request);
      return;
    case 'record_only':
      return;
  }
}

/** Tells people of a death the Pit will not repair by itself (a death issue, an alert). */
function reportDeath(context: SupervisorContext, slot: Slot, decision: Decision, at: number): void {
  slot.reported = true;
  const assessment = context.assessor.get(slot.key);
  const probes = Object.values(assessment?.probes ?? {}).flatMap((probe) => {
    const last = probe.lastResult;
    return last
      ? [
          {
            name: probe.name,
            ok: last.ok,
            latencyMs: last.latencyMs,
            detail: last.detail,
            observedAt: last.observedAt,
          },
        ]
      : [];
  });
  const logs = slotLogPaths(context, slot);
  context.notify(
    context.notifier.death({
      agent: slot.name,
      mission: slot.cell?.manifest.mission ?? 'outside cells',
      ...(slot.cell ? { cell: slot.cell.uuid, logRoot: slot.cell.dir } : {}),
      logPath: logs.stdout,
      ...(logs.stderr !== undefined ? { errorLogPath: logs.stderr } : {}),
      reason: decision.failure ? `${decision.failure.class}: ${decision.reason}` : decision.reason,
      deadSince: new Date(slot.state.first_dead_at ? Date.parse(slot.state.first_dead_at) : at),
      decision: { action: decision.action, reason: decision.reason },
      probes,
      restarts: slot.state.restarts,
    }),
  );
}

/** Evaluates the agent again at `until` (a backoff's end, an approval's expiry); only while the loop runs. */
export function wakeAt(context: SupervisorContext, slot: Slot, until: number): void {
  if (context.stopped || context.scheduler === undefined) return;
  const delay = Math.max(0, Math.min(until - context.now(), 2_147_483_647));
  slot.timer = setTimeout(() => {
    slot.timer = undefined;
    void context.evaluateSoon(slot);
  }, delay);
  slot.timer.unref();
}

/** Asks a human (Telegram, Nostr, HTTP, CLI) before acting, unless a request is already pending. */
export async function askHuman(
  context: SupervisorContext,
  slot: Slot,
  request: ApprovalAsk,
): Promise<void> {
  const pending = slot.state.pending_approval
    ? context.approvals.get(slot.state.pending_approval)
    : undefined;
  if (pending?.status === 'pending') return;
  const approval = await context.approvals.ask({
    agent: slot.name,
    ...(slot.cell ? { cell_uuid: slot.cell.uuid } : {}),
    ...(request.mission ? { mission: request.mission } : {}),
    kind: request.kind,
    proposed: request.proposed,
    ...(request.suggested_substitute ? { substitute: request.suggested_substitute } : {}),
    reasons: request.reasons,
    channels: request.channels,
    expires_at: request.expires_at,
    on_timeout: request.on_timeout,
  });
  slot.state.pending_approval = approval.id;
  context.metrics.approvalsTotal.inc({ outcome: 'requested' });
  await context.events.agentEvent(slot, {
    event: 'revive_requested',
    approval_id: approval.id,
    reason: request.reasons.join(' '),
    proposed: request.proposed,
    expires_at: iso(request.expires_at),
  });
  wakeAt(context, slot, request.expires_at + 1);
}

/** Distinct `action:rule` signatures seen (a few dozen: actions × the policy's rules). */
const ruleSignatures = new Map<string, string>();

function internRule(signature: string): string {
  const known = ruleSignatures.get(signature);
  if (known !== undefined) return known;
  if (ruleSignatures.size < 1024) ruleSignatures.set(signature, signature);
  return signature;
}
