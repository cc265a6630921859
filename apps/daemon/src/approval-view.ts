/**
 * An approval request as the JSON outputs show it (`GET /api/status`, `pit status --json`,
 * `pit approvals --json`): the stored record with every time as an ISO-8601 string, like every
 * other time in those outputs (the approvals file keeps ms since the epoch). It converts only.
 */
import type { Approval } from '@pit/cell-spec';

/** {@link Approval} with `requested_at`, `expires_at` and `decided_at` as ISO-8601 strings. */
export type ApprovalView = Omit<Approval, 'requested_at' | 'expires_at' | 'decided_at'> & {
  requested_at: string;
  expires_at: string;
  decided_at?: string;
};

/**
 * The view of one request.
 * @example
 * approvalView(approval).expires_at; // '2026-12-04T05:30:00.000Z'
 */
export function approvalView(approval: Approval): ApprovalView {
  const { requested_at, expires_at, decided_at, ...rest } = approval;
  return {
    ...rest,
    requested_at: new Date(requested_at).toISOString(),
    expires_at: new Date(expires_at).toISOString(),
    ...(decided_at !== undefined ? { decided_at: new Date(decided_at).toISOString() } : {}),
  };
}
