import type { Approval, ApprovalDecision } from '@pit/cell-spec';
import type { AlertBatch } from './alert.js';

/** Why an approval attempt was refused. */
export type RejectReason =
  | 'not_approver' // the sender is not a configured approver of that channel
  | 'wrong_chat' // a Telegram update from a chat other than the configured one
  | 'bad_token' // a CLI/HTTP token that matches no configured token
  | 'unwrap_failed' // a Nostr gift wrap that does not decrypt or verify
  | 'forged_seal' // a Nostr message whose inner sender is not the seal's signer
  | 'bad_signature' // a signature that does not verify
  | 'stale' // the message was written too long ago, or before the request existed
  | 'malformed' // not a command we understand
  | 'unknown_request' // no request has that id
  | 'no_pending_request' // `revive <agent>` / `skip <agent>` with nothing pending for that agent
  | 'ambiguous' // `revive <agent>` while agents of that name in several cells wait: name the request or `<cell>/<agent>`
  | 'already_decided' // single use: the request was decided before
  | 'expired'; // the request expired before the answer arrived

/** A refused approval attempt, as logged and reported to `onRejected`. */
export interface RejectedAttempt {
  /** The channel it came through (`telegram`, `nostr`, `cli`, `http`, …). */
  channel: string;
  /** Who the sender claimed to be (Telegram user id, npub, token name or "unknown"). Never a secret. */
  identity: string;
  reason: RejectReason;
  /** Human-readable detail for the log. */
  detail: string;
  /** The request id the attempt named, if any. */
  request_id?: string;
  /** The agent the attempt named, if any. */
  agent?: string;
  /** When it was refused. */
  at: Date;
}

/** An authenticated approver's answer, as a channel hands it to the broker. */
export interface DecisionAttempt {
  decision: ApprovalDecision;
  /** The request named by id… */
  request_id?: string;
  /** …or by agent (`revive <agent>` / `skip <agent>`): the newest pending request of that agent. */
  agent?: string;
  /** With `agent`: the start of the cell's uuid (`revive 3f2a1c4e/scout`); needed when several cells have a pending `scout`. */
  cell?: string;
  /** The approver's identity as the channel authenticated it. */
  identity: string;
  /** When the approver wrote the answer (for freshness checks); omitted for button presses. */
  sent_at?: Date;
  /** The approver's note, recorded as the request's `reason`. */
  reason?: string;
}

/** The outcome of a decision attempt: a value, never an exception. */
export type DecisionResult =
  | { ok: true; request: Approval }
  | { ok: false; reason: RejectReason; detail: string; request?: Approval };

/**
 * What the broker gives each channel: the only way a channel can decide. It is bound to the
 * channel's name, so a channel cannot speak for another.
 */
export interface ApprovalSink {
  /** Records an approver's decision (first valid decision wins). */
  decide(attempt: DecisionAttempt): Promise<DecisionResult>;
  /** Reports an attempt the channel refused itself (not an approver, bad signature, …). */
  reject(attempt: Omit<RejectedAttempt, 'channel' | 'at'>): void;
  /** The request with that id, if the broker knows it. */
  get(id: string): Approval | undefined;
  /**
   * Whether `revive <agent>` would find a pending request here (one, or several: `ambiguous`).
   * Hosts that share a channel ask it before answering a command another host may hold.
   */
  hasPending?(agent: string, cell?: string): boolean;
}

/** A channel that can carry approval requests (Telegram, Nostr, or your own). */
export interface ApprovalChannel {
  /** Unique lower-case name; also the `decided_via` of decisions that come through it. */
  readonly name: string;
  /** Called once by the broker when it starts. */
  bindApprovals(sink: ApprovalSink): void;
  /**
   * Presents a new request to the channel's approvers.
   * @returns an opaque reference (≤ 500 chars) kept with the request and passed back to
   *   {@link ApprovalChannel.sendApprovalOutcome}, or undefined.
   * @throws {NotifyError} NOTIFY_SEND_FAILED / NOTIFY_TIMEOUT (retryable when transient).
   */
  sendApprovalRequest(request: Approval, signal: AbortSignal): Promise<string | undefined>;
  /** Shows how a request ended (who decided, or that it expired). */
  sendApprovalOutcome(
    request: Approval,
    reference: string | undefined,
    signal: AbortSignal,
  ): Promise<void>;
}

/** A channel that can carry alerts. */
export interface AlertChannel {
  /** Unique lower-case name, used in logs and delivery reports. */
  readonly name: string;
  /**
   * Delivers one message for `batch` (one alert, or a grouped alert listing many).
   * @throws {NotifyError} NOTIFY_SEND_FAILED / NOTIFY_TIMEOUT / NOTIFY_RATE_LIMITED (retryable when transient).
   */
  sendAlert(batch: AlertBatch, signal: AbortSignal): Promise<void>;
}
