/** Exit codes of `pit`, documented in `pit --help` and the README. */
export const EXIT = {
  /** Everything asked for was done; for checks: every agent healthy. */
  ok: 0,
  /** An agent is unhealthy, or the request was refused (bad state, not authorised, conflict). */
  unhealthy: 1,
  /** Usage or configuration error: the command line or the config file is wrong. */
  usage: 2,
  /** An unexpected internal error (its stack is printed). */
  internal: 70,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0   ok (for sweep/status: every agent healthy)
  1   an agent is unhealthy, or the request was refused
  2   usage or configuration error
  70  internal error (stack printed)`;
