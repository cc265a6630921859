import type { ApprovalRequest } from './approval-request.js';

/** Options of {@link renderApprovalRequest}. */
export interface RenderApprovalOptions {
  /** How to answer on this channel, appended as the last line. */
  howToAnswer: string;
  /** Clock, for the "expires in" hint. @default () => new Date() */
  now?: Date;
}

/** The plain-text body of an approval request, the same on every channel. */
export function renderApprovalRequest(
  request: ApprovalRequest,
  options: RenderApprovalOptions,
): string {
  const now = options.now ?? new Date();
  const minutes = Math.max(
    0,
    Math.round((Date.parse(request.expires_at) - now.getTime()) / 60_000),
  );
  const lines = [
    `❓ [pit] Approval needed: revive ${request.agent}?`,
    `Mission: ${request.mission}`,
    ...(request.cell_uuid ? [`Cell: ${request.cell_uuid}`] : []),
  ];
  if (request.reasons.length > 0)
    lines.push('Reasons:', ...request.reasons.map((reason) => `• ${reason}`));
  if (request.proposed_action) lines.push(`Proposed: ${request.proposed_action}`);
  lines.push(`Suggested substitute: ${request.substitute ?? 'none'}`);
  lines.push(
    `Expires: ${request.expires_at} (in ${minutes} min); if nobody answers: ${request.on_expiry}`,
  );
  lines.push(`Request: ${request.id}`);
  lines.push(options.howToAnswer);
  return lines.join('\n');
}

/** One line saying how a decided request ended, or null while it is pending. */
export function renderApprovalOutcome(request: ApprovalRequest): string | null {
  switch (request.status) {
    case 'pending':
      return null;
    case 'approved':
      return `✅ Approved by ${request.decided_by} via ${request.decided_via} at ${request.decided_at}`;
    case 'denied':
      return `❌ Denied by ${request.decided_by} via ${request.decided_via} at ${request.decided_at}`;
    case 'expired':
      return `⌛ Expired at ${request.decided_at} unanswered; default applied: ${request.decision}`;
    case 'cancelled':
      return `🚫 Withdrawn at ${request.decided_at}${request.cancel_reason ? `: ${request.cancel_reason}` : ''}; no answer needed`;
  }
}
