/**
 * Approval ids and decisions for the broker. The request itself is @pit/cell-spec's
 * {@link Approval} (one schema shared with the daemon and the policy); this module only makes
 * ids and maps decisions to statuses.
 */
import { randomBytes } from 'node:crypto';
import type { ApprovalDecision } from '@pit/cell-spec';

/** Makes a fresh approval id (128 bits from the system CSPRNG, 32 hex characters). */
export function createApprovalId(): string {
  return randomBytes(16).toString('hex');
}

/** Maps a decision to the status it produces. */
export function statusOf(decision: ApprovalDecision): 'approved' | 'denied' {
  return decision === 'approve' ? 'approved' : 'denied';
}
