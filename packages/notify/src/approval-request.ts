import { randomBytes } from 'node:crypto';
import { AgentNameSchema, IsoTimestampSchema } from '@pit/cell-spec';
import { z } from 'zod';

/**
 * An approval id: 128 random bits as 32 lower-case hex characters. Unguessable, and short
 * enough that Telegram callback data `a:<id>` (34 bytes) fits the 64-byte limit.
 */
export const ApprovalIdSchema = z
  .string()
  .regex(/^[0-9a-f]{32}$/, { message: 'must be 32 lower-case hex characters' });

/** Makes a fresh approval id from the system CSPRNG. */
export function createApprovalId(): string {
  return randomBytes(16).toString('hex');
}

/**
 * Where a request stands. `expired` carries the configured default in `decision`;
 * `cancelled` means the daemon withdrew it (the agent recovered on its own) and has no decision.
 */
export const ApprovalStatusSchema = z.enum([
  'pending',
  'approved',
  'denied',
  'expired',
  'cancelled',
]);
export type ApprovalStatus = z.infer<typeof ApprovalStatusSchema>;

/** What a human (or the expiry default) decided. */
export const ApprovalDecisionSchema = z.enum(['approve', 'deny']);
export type ApprovalDecision = z.infer<typeof ApprovalDecisionSchema>;

/**
 * Where a decision came from: a channel name (`telegram`, `nostr`, `cli`, `http`, or any
 * custom channel's name) or `expiry`.
 */
export const DecisionSourceSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/, { message: 'must be a lower-case channel name' });

/** One approval request, as persisted in the approvals file and reported to callbacks. */
export const ApprovalRequestSchema = z.strictObject({
  id: ApprovalIdSchema,
  agent: AgentNameSchema,
  mission: z.string().min(1).max(500),
  /** The cell the agent belongs to, when known. */
  cell_uuid: z.string().min(1).optional(),
  /** Why the daemon asks (probe failures, policy outcome, …), one line each. */
  reasons: z.array(z.string().min(1).max(2000)).max(50),
  /** The suggested substitute agent, or null when there is none. */
  substitute: AgentNameSchema.nullable(),
  /** What the daemon proposes to do if approved (`restart`, `rollback and restart`, `substitute`, …), for display. */
  proposed_action: z.string().min(1).max(100).optional(),
  created_at: IsoTimestampSchema,
  expires_at: IsoTimestampSchema,
  /** The decision reported if nobody answers before `expires_at`. */
  on_expiry: ApprovalDecisionSchema,
  status: ApprovalStatusSchema,
  /** The effective decision once decided (for `expired`, the `on_expiry` default); null while pending. */
  decision: ApprovalDecisionSchema.nullable(),
  decided_at: IsoTimestampSchema.nullable(),
  /** Who decided: a Telegram user, a Nostr npub, a token's name, or `expiry`. */
  decided_by: z.string().min(1).max(200).nullable(),
  /** Through which channel the decision came (`expiry` for expiry, `cancel` when withdrawn). */
  decided_via: DecisionSourceSchema.nullable(),
  /** Why the daemon withdrew the request (status `cancelled` only). */
  cancel_reason: z.string().min(1).max(500).optional(),
  /** Per-channel delivery references (e.g. the Telegram message id), used to update the message later. */
  deliveries: z.record(DecisionSourceSchema, z.string().max(500)).default({}),
});
export type ApprovalRequest = z.infer<typeof ApprovalRequestSchema>;

/** The approvals file: every pending request and recently decided ones (kept so that late answers are recognised). */
export const ApprovalStoreSchema = z.strictObject({
  version: z.literal(1),
  requests: z.array(ApprovalRequestSchema),
});
export type ApprovalStore = z.infer<typeof ApprovalStoreSchema>;

/** Maps a decision to the status it produces. */
export function statusOf(decision: ApprovalDecision): 'approved' | 'denied' {
  return decision === 'approve' ? 'approved' : 'denied';
}
