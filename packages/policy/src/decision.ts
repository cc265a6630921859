import type { Classification } from './classify-failure.js';
import type { RemedyAction } from './decide-input.js';
import type { BrakeStatus } from './fleet-index.js';
import type { FailureClass, OnTimeout } from './policy-config.js';
import type { PolicyTrace } from './resolve-policy.js';

/**
 * The rule that fired, stable across versions (what `pit why` prints before the reason):
 * - `health.healthy` · `health.degraded` · `health.unknown` — the agent is not dead: nothing to do;
 * - `approval.moot` — it recovered while an approval was pending: cancel the request;
 * - `substituted` — a live substitute stands in for it;
 * - `dead_after` — it has not been dead long enough yet;
 * - `mode.never` — its mode forbids any action;
 * - `approval.*` / `escalation.*` (`pending`, `approved`, `denied`, `expired`) — an answer (or none) to a request;
 * - `on_failure.<class>` — the failure class's action decided (wait for a rate limit, roll back, ask, record);
 * - `mode.auto` · `mode.ask` · `mode.substitute` · `remote.substitute` — the mode decided;
 * - `restart_intensity` · `max_revive_attempts` · `no_remedy` — an escalation;
 * - `backoff` · `fleet_brake` — a restart waits;
 * - `no_approval_channel` — a built-in `ask` found no channel to ask on: record only.
 */
export type DecisionRule =
  | 'health.healthy'
  | 'health.degraded'
  | 'health.unknown'
  | 'approval.moot'
  | 'substituted'
  | 'dead_after'
  | 'mode.never'
  | 'approval.pending'
  | 'approval.approved'
  | 'approval.denied'
  | 'approval.expired'
  | 'escalation.pending'
  | 'escalation.approved'
  | 'escalation.denied'
  | 'escalation.expired'
  | `on_failure.${FailureClass}`
  | 'mode.auto'
  | 'mode.ask'
  | 'mode.substitute'
  | 'remote.substitute'
  | 'restart_intensity'
  | 'max_revive_attempts'
  | 'no_remedy'
  | 'backoff'
  | 'fleet_brake'
  | 'no_approval_channel';

/** An approval request for the daemon to create (the broker assigns its id). Times are ms since epoch. */
export interface ApprovalRequestDraft {
  agent: string;
  mission?: string;
  /** `revive`: the policy asks first; `escalation`: the restart budget ran out. */
  kind: 'revive' | 'escalation';
  /** What will be done if approved. */
  proposed: RemedyAction;
  /** The healthy substitute the approver may choose instead (or that `proposed` uses). */
  suggested_substitute?: string;
  /** Why the Pit asks, one sentence each. */
  reasons: string[];
  /** Where to ask. */
  channels: string[];
  requested_at: number;
  expires_at: number;
  /** What happens if nobody answers by `expires_at`. */
  on_timeout: OnTimeout;
}

/** Why a decision waits. */
export type WaitCause = 'dead_after' | 'rate_limit' | 'backoff' | 'fleet_brake' | 'approval';

/** Why a decision escalates. */
export type EscalationCause = 'restart_intensity' | 'max_revive_attempts' | 'no_remedy';

/** What every decision carries. */
export interface DecisionCommon {
  agent: string;
  /** The mission whose policy applied. */
  mission?: string;
  /** The rule that fired. */
  rule: DecisionRule;
  /** A sentence for people naming the rule and the config key (and the layer that set it). */
  reason: string;
  /** For a dead agent: its failure class and why. */
  failure?: Classification;
  /** For a dead agent: how long it has been dead (ms). */
  dead_for?: number;
  /** Present while the fleet brake is engaged (one cause, one alert: the daemon groups on it). */
  brake?: BrakeStatus;
  /** The approval request this decision acts on. */
  approval_id?: string;
  /** How the agent's policy was resolved. */
  policy: PolicyTrace;
}

/** Nothing to do (the agent is not dead, is covered, …). */
export interface NoneDecision extends DecisionCommon {
  action: 'none';
  /** An open approval request that is no longer needed: cancel it. */
  cancel_approval?: string;
}
/** Decide again at `until` (ms since epoch). */
export interface WaitDecision extends DecisionCommon {
  action: 'wait';
  until: number;
  wait_for: WaitCause;
  /** What is planned once the wait is over (subject to the decision made then). */
  next?: RemedyAction | 'ask' | 'record_only';
}
/** Restart the agent, rolling its config back first for `rollback_and_restart`. */
export interface RestartDecision extends DecisionCommon {
  action: 'restart' | 'rollback_and_restart';
  /** The number of this restart since the agent was last stable (1 = first). */
  attempt: number;
}
/** Hand the agent's work to `substitute`. */
export interface SubstituteDecision extends DecisionCommon {
  action: 'substitute';
  substitute: string;
}
/** Create an approval request and wait for the answer. */
export interface AskDecision extends DecisionCommon {
  action: 'ask';
  request: ApprovalRequestDraft;
}
/** Record the death (event, notification, issue) and do nothing else. */
export interface RecordOnlyDecision extends DecisionCommon {
  action: 'record_only';
}
/** Automatic remedies are exhausted: tell people, then ask (if a channel exists) or record only. */
export interface EscalateDecision extends DecisionCommon {
  action: 'escalate';
  why: EscalationCause;
  then: 'ask' | 'record_only';
  /** The request to create when `then` is `ask`. */
  request?: ApprovalRequestDraft;
}

/** Exactly one decision about one agent. */
export type Decision =
  | NoneDecision
  | WaitDecision
  | RestartDecision
  | SubstituteDecision
  | AskDecision
  | RecordOnlyDecision
  | EscalateDecision;
/** The action of a decision. */
export type DecisionAction = Decision['action'];
