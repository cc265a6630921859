/** Exit codes of `pit`, documented in `pit --help` and the README. */
export const EXIT = {
  /** Everything asked for was done; for checks: every agent healthy. */
  ok: 0,
  /** An agent is unhealthy, or the request was refused (bad state, not authorised, conflict). */
  unhealthy: 1,
  /** Usage or configuration error: the command line or the config file is wrong. */
  usage: 2,
  /**
   * For checks (`sweep`, `status`, `cells list`): every agent is healthy, but something under the
   * cells root could not be used (a corrupt or hostile cell, a policy that does not check). An
   * unhealthy agent takes precedence (1).
   */
  problems: 3,
  /** An unexpected internal error (its stack is printed). */
  internal: 70,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0   ok (for sweep/status: every agent healthy)
  1   an agent is unhealthy, or the request was refused
  2   usage or configuration error
  3   for sweep/status/cells list: every agent healthy, but a cell or policy has a problem
  70  internal error (stack printed)`;

/** The exit code of a check: an unhealthy agent (1) before a problem (3) before ok (0). */
export function checkExit(unhealthy: boolean, problems: boolean): number {
  if (unhealthy) return EXIT.unhealthy;
  return problems ? EXIT.problems : EXIT.ok;
}
