/**
 * The assessor's memory of one agent, kept small for fleets of tens of thousands: fixed-shape
 * records of numbers and short strings, one per agent and one per probe, and no sample object
 * kept (a probe remembers its last result's base fields, not the result). Owns nothing else:
 * the rules that turn these counters into health are in assessor.ts.
 */
import type { Health, ProcessExit, ProbeState, ProbeStatus } from './assessor.js';
import { flatString } from './compact-string.js';
import type { ProbeFailure, ProbeResult } from './probe-result.js';

/** One probe of one agent: thresholds, counters and its last result's fields. */
export class ProbeTrack implements ProbeStatus {
  state: ProbeState = 'unknown';
  consecutiveFailures = 0;
  consecutiveSuccesses = 0;
  /** NaN when not failing. */
  failingSinceMs = Number.NaN;
  /** NaN until the state first changes. */
  stateSinceMs = Number.NaN;
  lastFailure: ProbeFailure | undefined = undefined;
  // The last result's base fields (`lastKind` undefined: none yet).
  lastKind: string | undefined = undefined;
  lastOk = false;
  lastLatencyMs = 0;
  lastObservedAt = 0;
  lastDetail = '';
  lastFailureOfResult: ProbeFailure | undefined = undefined;
  lastDeadlineAt = Number.NaN;

  constructor(
    readonly name: string,
    readonly critical: boolean,
    readonly failureThreshold: number,
    readonly successThreshold: number,
    readonly inconclusive: readonly ProbeFailure[] | undefined,
  ) {}

  get failingSince(): number | undefined {
    return Number.isNaN(this.failingSinceMs) ? undefined : this.failingSinceMs;
  }

  get stateSince(): number | undefined {
    return Number.isNaN(this.stateSinceMs) ? undefined : this.stateSinceMs;
  }

  /** The last result recorded, rebuilt from its base fields (probe-specific fields are not kept). */
  get lastResult(): ProbeResult | undefined {
    if (this.lastKind === undefined) return undefined;
    return {
      kind: this.lastKind,
      ok: this.lastOk,
      latencyMs: this.lastLatencyMs,
      detail: this.lastDetail,
      observedAt: this.lastObservedAt,
      ...(this.lastFailureOfResult === undefined ? {} : { failure: this.lastFailureOfResult }),
      ...(Number.isNaN(this.lastDeadlineAt) ? {} : { deadlineAt: this.lastDeadlineAt }),
    };
  }

  /** Remembers a result's base fields (with `ok`, `failure` and `detail` as judged). */
  remember(result: ProbeResult, ok: boolean, failure: ProbeFailure | undefined, detail: string) {
    this.lastKind = result.kind;
    this.lastOk = ok;
    this.lastLatencyMs = result.latencyMs;
    this.lastObservedAt = result.observedAt;
    this.lastDetail = flatString(detail);
    this.lastFailureOfResult = ok ? undefined : failure;
    this.lastDeadlineAt = ok && result.deadlineAt !== undefined ? result.deadlineAt : Number.NaN;
  }

  /** A plain copy, as {@link Assessment.probes} shows it. */
  toStatus(): ProbeStatus {
    const lastResult = this.lastResult;
    return {
      name: this.name,
      state: this.state,
      critical: this.critical,
      consecutiveFailures: this.consecutiveFailures,
      consecutiveSuccesses: this.consecutiveSuccesses,
      ...(Number.isNaN(this.failingSinceMs) ? {} : { failingSince: this.failingSinceMs }),
      ...(Number.isNaN(this.stateSinceMs) ? {} : { stateSince: this.stateSinceMs }),
      ...(lastResult === undefined ? {} : { lastResult }),
    };
  }
}

/** One agent's incarnation: its start, grace, verdict bookkeeping and probes. */
export class AgentRecord {
  graceOver = false;
  health: Health = 'unknown';
  /** The health before the last update, and whether that update changed it. */
  previous: Health = 'unknown';
  changed = false;
  since: number;
  /** NaN when not in an unhealthy episode. */
  firstFailedAt = Number.NaN;
  /** NaN until healthy once. */
  lastHealthyAt = Number.NaN;
  exit: ProcessExit | undefined = undefined;
  /**
   * Replaced (by `concat`), never pushed to, when a probe is added: an array grown by `push`, as
   * a spread `[...probes, track]` is, keeps room for 17 elements (136 bytes of empty slots for an
   * agent's one probe, 1.4 MB at 11,000 agents).
   */
  probes: readonly ProbeTrack[] = [];

  constructor(
    readonly agent: string,
    readonly startedAt: number,
    readonly graceMs: number,
    /** NaN: no not-before. */
    readonly notBefore: number,
  ) {
    this.since = startedAt;
  }

  /** The probe named `name`, if it has been declared or sampled. */
  probe(name: string): ProbeTrack | undefined {
    for (const track of this.probes) if (track.name === name) return track;
    return undefined;
  }
}
