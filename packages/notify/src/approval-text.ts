import type { Approval } from '@pit/cell-spec';

/** Options of {@link renderApprovalRequest}. */
export interface RenderApprovalOptions {
  /** How to answer on this channel, appended as the last line. */
  howToAnswer: string;
  /** Clock, for the "expires in" hint. @default () => new Date() */
  now?: Date;
}

/** The plain-text body of an approval request, the same on every channel. */
export function renderApprovalRequest(request: Approval, options: RenderApprovalOptions): string {
  const now = options.now ?? new Date();
  const minutes = Math.max(0, Math.round((request.expires_at - now.getTime()) / 60_000));
  const lines = [
    `❓ [pit] Approval needed: revive ${request.agent}?`,
    `Mission: ${request.mission}`,
    ...(request.cell_uuid ? [`Cell: ${request.cell_uuid}`] : []),
  ];
  if (request.reasons.length > 0)
    lines.push('Reasons:', ...request.reasons.map((reason) => `• ${reason}`));
  lines.push(`Proposed: ${spoken(request.proposed)}`);
  lines.push(`Suggested substitute: ${request.substitute ?? 'none'}`);
  lines.push(
    `Expires: ${iso(request.expires_at)} (in ${minutes} min); if nobody answers: ${spoken(request.on_timeout)}`,
  );
  lines.push(`Request: ${request.id}`);
  lines.push(options.howToAnswer);
  return lines.join('\n');
}

/** One line saying how a decided request ended, or null while it is pending. */
export function renderApprovalOutcome(request: Approval): string | null {
  switch (request.status) {
    case 'pending':
      return null;
    case 'approved':
      return `✅ Approved by ${request.decided_by} via ${request.decided_via} at ${iso(request.decided_at)}`;
    case 'denied':
      return `❌ Denied by ${request.decided_by} via ${request.decided_via} at ${iso(request.decided_at)}`;
    case 'expired':
      return `⌛ Expired at ${iso(request.decided_at)} unanswered; default applied: ${request.decision} (${spoken(request.on_timeout)})`;
    case 'cancelled':
      return `🚫 Withdrawn at ${iso(request.decided_at)}${request.reason ? `: ${request.reason}` : ''}; no answer needed`;
  }
}

/** `rollback_and_restart` → `rollback and restart`. */
function spoken(word: string): string {
  return word.replace(/_/g, ' ');
}

/** A time in ms since epoch as ISO 8601 (`?` when absent). */
function iso(ms: number | undefined): string {
  return ms === undefined ? '?' : new Date(ms).toISOString();
}

/**
 * How a text reply names the request's agent: `<first 8 of the cell uuid>/<agent>` for an agent in
 * a cell (two cells may each have one of that name), the bare name outside cells.
 */
export function agentReference(request: Pick<Approval, 'agent' | 'cell_uuid'>): string {
  return request.cell_uuid ? `${request.cell_uuid.slice(0, 8)}/${request.agent}` : request.agent;
}
