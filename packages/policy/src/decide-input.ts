import type { Approval, RemedyAction } from '@pit/cell-spec';
import type { FailureClass } from './policy-config.js';

/** An agent's health as the assessor sees it. */
export type HealthState = 'healthy' | 'degraded' | 'dead' | 'unknown';

/** A remedy the Pit can carry out (what an approval request proposes; @pit/cell-spec's). */
export type { RemedyAction };

/** The agent a decision is about. */
export interface AgentRef {
  name: string;
  /** The mission of the agent's cell, if it lives in one (a policy override's `mission` wins). */
  mission?: string;
  /** Whether the agent runs on this host. A remote agent prefers a substitute in auto mode. @default true */
  local?: boolean;
  /** Whether the Pit can restart it from here. @default the value of `local` */
  restartable?: boolean;
  /**
   * Whether it has config files a rollback restores. Without any, a restart is not preceded by a
   * rollback (`rollback_before_restart` and `on_failure.<class>=rollback_and_restart` restart only),
   * so no reason claims a rollback that cannot happen. @default true
   */
  rollbackable?: boolean;
}

/** What is known about why an agent died. Times are ms since the Unix epoch. */
export interface FailureInfo {
  /** A class already determined (by the harness, a log scan, the probes); wins over everything else. */
  class?: FailureClass;
  /**
   * The Pit saw the agent's process end (its exit status, or its pid gone): the death is a fact,
   * not an inference, so `dead_after` does not apply and the Pit acts at once. Without it the
   * death is inferred (a stale heartbeat, failing probes) and waits `dead_after`.
   */
  exited?: boolean;
  /** The exit code of the agent's process, if it exited. */
  exit_code?: number;
  /** The signal that ended it (`SIGKILL`), if any. */
  signal?: string;
  /** The kinds of probe that failed (`heartbeat`, `http`, `tcp`, `ws`, `process`, `exec`). */
  failing_probes?: readonly string[];
  /** The heartbeat is fresh but its cycle stands still: alive but not working. */
  stuck?: boolean;
  /** When a rate limit resets (ms since epoch), for `rate_limited`. */
  reset_at?: number;
  /** Free text for the reason (the probe's detail, the last log line). */
  detail?: string;
}

/** The agent's current health. */
export interface AgentHealth {
  state: HealthState;
  /** Since when it has been in this state (ms since epoch); for `dead`, the first failed probe. */
  since?: number;
  /** Why it died, when `state` is `dead`. */
  failure?: FailureInfo;
}

/**
 * The latest approval request about an agent: the fields of @pit/cell-spec's {@link Approval}
 * that the policy reads, so the daemon passes its stored request as it is. A `cancelled` request
 * counts as none. `on_timeout` is what the request said would happen on expiry (kept so a config
 * change does not alter an open request); without it the policy's `approval.on_timeout` applies.
 */
export type ApprovalRecord = Pick<
  Approval,
  'id' | 'kind' | 'status' | 'proposed' | 'requested_at' | 'expires_at'
> &
  Partial<Pick<Approval, 'substitute' | 'action' | 'decided_at' | 'on_timeout'>>;

/** A stretch of time during which the agent was healthy (ms since epoch); `to` is absent while it lasts. */
export interface HealthyPeriod {
  from: number;
  to?: number;
}

/**
 * What the Pit remembers about an agent: raw facts, recorded by the daemon; every rule that
 * reads them lives in the policy.
 */
export interface AgentHistory {
  /**
   * When the Pit restarted this agent (ms since epoch, any order). Keep at least those within
   * the restart-intensity window and since the latest stable period.
   */
  restarts?: readonly number[];
  /** Healthy stretches (keep at least the latest few): the backoff resets after a stable one. */
  healthy?: readonly HealthyPeriod[];
  /** The latest approval request about this agent. */
  approval?: ApprovalRecord;
  /** The agent that currently stands in for this one. */
  substituted_by?: string;
}

/** One agent as the rest of the fleet sees it (for substitutes and the fleet brake). */
export interface FleetAgent {
  name: string;
  state: HealthState;
  /** Since when it has been in this state (ms since epoch). A dead agent without it does not count toward the fleet brake. */
  since?: number;
  /** The agent it currently stands in for, if it is a substitute. */
  substituting_for?: string;
}

/** The whole fleet at one moment. Build one per change and share it across the decisions of that change. */
export interface FleetView {
  agents: readonly FleetAgent[];
  /** When the Pit last started agents fleet-wide (restarts and substitutions, ms since epoch). */
  restarts?: readonly number[];
}
