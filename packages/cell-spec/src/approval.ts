/**
 * The approval request: the one record that @pit/notify's broker persists and shows on its
 * channels, that the daemon asks and answers through, and that @pit/policy decides on. It lives
 * here because all three speak it and siblings share only cell-spec. Times are ms since the Unix
 * epoch (the policy computes with them). This module owns the schema and the approvals file's
 * shape; it does no I/O.
 */
import { z } from 'zod';
import { AgentNameSchema } from './agent-name.js';

/**
 * An approval id: 128 random bits as 32 lower-case hex characters. Unguessable, and short
 * enough that Telegram callback data `a:<id>` (34 bytes) fits the 64-byte limit.
 */
export const ApprovalIdSchema = z
  .string()
  .regex(/^[0-9a-f]{32}$/, { message: 'must be 32 lower-case hex characters' });

/**
 * Where a request stands. `expired` carries its timeout default in `decision`; `cancelled` means
 * it was withdrawn (the agent recovered on its own) and has no decision.
 */
export const ApprovalStatusSchema = z.enum([
  'pending',
  'approved',
  'denied',
  'expired',
  'cancelled',
]);
export type ApprovalStatus = z.infer<typeof ApprovalStatusSchema>;

/** What a human (or the timeout default) decided. */
export const ApprovalDecisionSchema = z.enum(['approve', 'deny']);
export type ApprovalDecision = z.infer<typeof ApprovalDecisionSchema>;

/** Why the request was made: `revive` (the policy asks first) or `escalation` (the restart budget ran out). */
export const ApprovalKindSchema = z.enum(['revive', 'escalation']);
export type ApprovalKind = z.infer<typeof ApprovalKindSchema>;

/** A remedy the Pit can carry out: what an approval request proposes. */
export const RemedyActionSchema = z.enum(['restart', 'rollback_and_restart', 'substitute']);
export type RemedyAction = z.infer<typeof RemedyActionSchema>;

/**
 * What happens when an approval request expires unanswered: `record_only`, `proceed` (carry out
 * what the request proposed), `restart`, `rollback_and_restart` or `substitute`.
 */
export const OnTimeoutSchema = z.enum([
  'record_only',
  'proceed',
  'restart',
  'rollback_and_restart',
  'substitute',
]);
export type OnTimeout = z.infer<typeof OnTimeoutSchema>;

/**
 * Where a decision came from: a channel name (`telegram`, `nostr`, `cli`, `http`, or any
 * custom channel's name), `expiry`, or `cancel`.
 */
export const DecisionSourceSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/, { message: 'must be a lower-case channel name' });

const EpochMsSchema = z.number().int().nonnegative();

/** One approval request, as persisted in `<state_dir>/approvals.json` and handed to channels, the daemon and the policy. */
export const ApprovalSchema = z.strictObject({
  id: ApprovalIdSchema,
  agent: AgentNameSchema,
  mission: z.string().min(1).max(500),
  /** The cell the agent belongs to; absent for an agent outside cells. */
  cell_uuid: z.string().min(1).optional(),
  kind: ApprovalKindSchema.default('revive'),
  /** Why it was asked (probe failures, the policy's rule, …), one line each. */
  reasons: z.array(z.string().min(1).max(2000)).max(50),
  /** What will be done if approved. */
  proposed: RemedyActionSchema.default('restart'),
  /** The suggested substitute agent, if any. */
  substitute: AgentNameSchema.optional(),
  /** What the approver chose instead of `proposed`, when it differs. */
  action: RemedyActionSchema.optional(),
  /** The channels it was asked on (`cli`, `http`, `telegram`, `nostr`, …). */
  channels: z.array(z.string().min(1).max(64)).max(50).default([]),
  /** When it was asked (ms since epoch). */
  requested_at: EpochMsSchema,
  /** When it expires unanswered (ms since epoch). */
  expires_at: EpochMsSchema,
  /** What happens if nobody answers by `expires_at`. */
  on_timeout: OnTimeoutSchema,
  status: ApprovalStatusSchema,
  /** The effective decision once decided (for `expired`, `deny` when `on_timeout` is `record_only`, else `approve`); null while pending or cancelled. */
  decision: ApprovalDecisionSchema.nullable().default(null),
  /** When it was decided, expired or withdrawn (ms since epoch). */
  decided_at: EpochMsSchema.optional(),
  /** Who decided: a Telegram user, a Nostr npub, an operator's name, `expiry` or `daemon`. */
  decided_by: z.string().min(1).max(200).optional(),
  /** Through which channel the decision came (`expiry` for expiry, `cancel` when withdrawn). */
  decided_via: DecisionSourceSchema.optional(),
  /** The approver's note, or why the request was withdrawn. */
  reason: z.string().min(1).max(500).optional(),
  /** Per-channel delivery references (e.g. the Telegram message id), used to update the message later. */
  deliveries: z.record(DecisionSourceSchema, z.string().max(500)).default({}),
});
export type Approval = z.infer<typeof ApprovalSchema>;

/**
 * `<state_dir>/approvals.json`: every pending request and recently decided ones (kept so that
 * late answers are recognised). Version 1 was @pit/notify's file beside the daemon's
 * `approval-meta.json`; the daemon migrates it on start.
 */
export const ApprovalsFileSchema = z.strictObject({
  version: z.literal(2),
  requests: z.array(ApprovalSchema),
});
export type ApprovalsFile = z.infer<typeof ApprovalsFileSchema>;

/** The decision an expired request reports: `deny` when it times out into `record_only`, else `approve`. */
export function timeoutDecision(onTimeout: OnTimeout): ApprovalDecision {
  return onTimeout === 'record_only' ? 'deny' : 'approve';
}
