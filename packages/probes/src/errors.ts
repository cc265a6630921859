import { PitError, type PitErrorOptions } from '@pit/cell-spec';

/**
 * Error codes of @pit/probes. A dead or hung target is never an error (it is a
 * {@link ProbeResult} with `ok: false`); these are for calls that cannot be made at all.
 */
export type ProbeErrorCode =
  | 'PROBE_INVALID_TARGET' // a target that cannot be probed: bad URL, port, pid, pattern, agent name
  | 'PROBE_INVALID_OPTIONS' // bad configuration of a probe, assessor, detector, scheduler or server
  | 'PROBE_AGENT_EXISTS' // scheduler.add() for an agent that is already scheduled
  | 'PROBE_UNKNOWN_AGENT' // an agent (or probe) that is not scheduled / tracked
  | 'PROBE_STOPPED' // the scheduler or server has been stopped
  | 'PROBE_LISTEN_FAILED' // the health server could not bind its address
  | 'PROBE_UNSUPPORTED'; // the platform lacks what the probe needs (no /proc)

/** The error thrown by @pit/probes. Extends `PitError` from @pit/cell-spec. */
export class ProbeError extends PitError<ProbeErrorCode> {
  constructor(code: ProbeErrorCode, message: string, options: PitErrorOptions = {}) {
    super(code, message, options);
  }
}
