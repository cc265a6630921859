/**
 * The loop's side of human approvals: an answer (HTTP, CLI, Telegram, Nostr) is written to the
 * agent's event log and the agent is evaluated at once, so the approved action is carried out;
 * expired requests and answers given by another process (`pit approve` on the shared file) reach
 * the loop on its housekeeping tick; and the latest request about an agent, as policy reads it.
 * Who may answer is the approval store's and the channels' business, not this module's.
 */
import type { Approval } from '@pit/cell-spec';
import { approvalKey } from './approvals.js';
import type { Supervisor } from './supervisor-api.js';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** Answers a request (HTTP, CLI): recorded, then carried out. */
export async function decideApproval(
  context: SupervisorContext,
  ...[id, decision, body]: Parameters<Supervisor['decideApproval']>
): ReturnType<Supervisor['decideApproval']> {
  const channel = body.channel ?? 'http';
  // The answer's own time: the restart it causes is logged before this event is.
  const answeredAt = context.now();
  const result = await context.approvals.decide(id, decision, {
    channel,
    now: answeredAt,
    ...(body.by ? { by: body.by } : {}),
    ...(body.reason ? { reason: body.reason } : {}),
  });
  if (!result.ok) return result;
  context.metrics.approvalsTotal.inc({ outcome: decision === 'approve' ? 'approved' : 'denied' });
  const approval = context.approvals.get(id);
  const slot = approval ? context.fleet.slots.get(approvalKey(approval)) : undefined;
  if (slot) {
    // Recorded here: the record lets go of it, so it is not taken for an answer given elsewhere.
    if (slot.state.pending_approval === id) slot.state.pending_approval = undefined;
    await context.events.agentEvent(slot, {
      event: decision === 'approve' ? 'revive_approved' : 'revive_denied',
      ts: iso(answeredAt),
      approval_id: id,
      channel,
      ...(body.by ? { by: body.by } : {}),
      ...(body.reason ? { reason: body.reason } : {}),
    });
    await context.evaluateSoon(slot);
  }
  return result;
}

/** An answer from Telegram or Nostr: recorded like an HTTP one, then carried out. */
export async function onChannelDecision(
  context: SupervisorContext,
  approval: Approval,
): Promise<void> {
  context.metrics.approvalsTotal.inc({ outcome: approval.status });
  const slot = context.fleet.slots.get(approvalKey(approval));
  if (!slot) return;
  if (slot.state.pending_approval === approval.id) slot.state.pending_approval = undefined;
  await context.events.agentEvent(slot, answerEvent(approval));
  await context.evaluateSoon(slot);
}

/**
 * The event of an answer as the approval store recorded it (who, through which channel, when,
 * and the reason they gave): for a channel's answer, and for one given by another process
 * (`pit approve|deny` with no daemon running, found when the record still names the request).
 */
export function answerEvent(approval: Approval) {
  return {
    event:
      approval.status === 'approved' ? ('revive_approved' as const) : ('revive_denied' as const),
    ...(approval.decided_at !== undefined ? { ts: iso(approval.decided_at) } : {}),
    approval_id: approval.id,
    ...(approval.decided_via ? { channel: approval.decided_via } : {}),
    ...(approval.decided_by ? { by: approval.decided_by } : {}),
    ...(approval.reason ? { reason: approval.reason } : {}),
  };
}

/** Expires requests past their time and picks up answers given by another process. */
export async function collectApprovalAnswers(context: SupervisorContext): Promise<void> {
  const expired = await context.approvals.expire(context.now());
  for (const approval of expired) {
    context.metrics.approvalsTotal.inc({ outcome: 'expired' });
    const slot = context.fleet.slots.get(approvalKey(approval));
    if (slot) void context.evaluateSoon(slot);
  }
  for (const slot of context.fleet.slots.values()) {
    const pending = slot.state.pending_approval;
    const latest = pending ? context.approvals.get(pending) : undefined;
    if (latest && latest.status !== 'pending') void context.evaluateSoon(slot);
  }
}
