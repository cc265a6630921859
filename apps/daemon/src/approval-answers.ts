/**
 * The loop's side of human approvals: an answer (HTTP, CLI, Telegram, Nostr) is written to the
 * agent's event log and the agent is evaluated at once, so the approved action is carried out;
 * expired requests and answers given by another process (`pit approve` on the shared file) reach
 * the loop on its housekeeping tick; and the latest request about an agent, as policy reads it.
 * Who may answer is the approval store's and the channels' business, not this module's.
 */
import type { ApprovalRecord } from '@pit/policy';
import type { StoredApproval } from './approvals.js';
import type { Supervisor } from './supervisor-api.js';
import type { SupervisorContext } from './supervisor-context.js';

/** Answers a request (HTTP, CLI): recorded, then carried out. */
export async function decideApproval(
  context: SupervisorContext,
  ...[id, decision, body]: Parameters<Supervisor['decideApproval']>
): ReturnType<Supervisor['decideApproval']> {
  const channel = body.channel ?? 'http';
  const result = await context.approvals.decide(id, decision, {
    channel,
    now: context.now(),
    ...(body.by ? { by: body.by } : {}),
    ...(body.reason ? { reason: body.reason } : {}),
  });
  if (!result.ok) return result;
  context.metrics.approvalsTotal.inc({ outcome: decision === 'approve' ? 'approved' : 'denied' });
  const approval = context.approvals.get(id);
  const slot = approval ? context.fleet.slots.get(approval.key) : undefined;
  if (slot) {
    await context.events.agentEvent(slot, {
      event: decision === 'approve' ? 'revive_approved' : 'revive_denied',
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
  approval: StoredApproval,
): Promise<void> {
  context.metrics.approvalsTotal.inc({ outcome: approval.status });
  const slot = context.fleet.slots.get(approval.key);
  if (!slot) return;
  await context.events.agentEvent(slot, {
    event: approval.status === 'approved' ? 'revive_approved' : 'revive_denied',
    approval_id: approval.id,
    ...(approval.channel ? { channel: approval.channel } : {}),
    ...(approval.by ? { by: approval.by } : {}),
  });
  await context.evaluateSoon(slot);
}

/** Expires requests past their time and picks up answers given by another process. */
export async function collectApprovalAnswers(context: SupervisorContext): Promise<void> {
  const expired = await context.approvals.expire(context.now());
  for (const approval of expired) {
    context.metrics.approvalsTotal.inc({ outcome: 'expired' });
    const slot = context.fleet.slots.get(approval.key);
    if (slot) void context.evaluateSoon(slot);
  }
  for (const slot of context.fleet.slots.values()) {
    const pending = slot.state.pending_approval;
    const latest = pending ? context.approvals.get(pending) : undefined;
    if (latest && latest.status !== 'pending') void context.evaluateSoon(slot);
  }
}

/** The latest request about an agent as policy reads it (a cancelled one is none). */
export function approvalRecordOf(
  context: SupervisorContext,
  key: string,
): ApprovalRecord | undefined {
  const stored = context.approvals.latest(key);
  if (!stored || stored.status === 'cancelled') return undefined;
  return {
    id: stored.id,
    kind: stored.kind,
    status: stored.status,
    proposed: stored.proposed,
    ...(stored.substitute ? { substitute: stored.substitute } : {}),
    requested_at: stored.requested_at,
    expires_at: stored.expires_at,
    ...(stored.decided_at !== undefined ? { decided_at: stored.decided_at } : {}),
    on_timeout: stored.on_timeout,
  };
}
