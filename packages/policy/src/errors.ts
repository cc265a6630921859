import { PitError, type PitErrorOptions } from '@pit/cell-spec';

/** Error codes of @pit/policy. A code is public API. */
export type PolicyErrorCode =
  | 'POLICY_INVALID' // the config breaks the schema (a wrong key, type or value)
  | 'POLICY_UNKNOWN_MISSION' // the config names a mission that does not exist
  | 'POLICY_UNKNOWN_AGENT' // the config names an agent that does not exist
  | 'POLICY_UNKNOWN_CHANNEL' // the config names an approval channel that is not configured
  | 'POLICY_NO_APPROVAL_CHANNEL' // the config says `ask` where no approval channel is configured
  | 'POLICY_BAD_INPUT'; // decide() or nextBackoff() was called with impossible input (NaN time, negative attempt)

/** One problem found in a policy config: a code, the path inside the `[policy]` section, a message. */
export interface PolicyProblem {
  code: Exclude<PolicyErrorCode, 'POLICY_BAD_INPUT'>;
  /** Path inside the `[policy]` section, e.g. `['missions', 'forge', 'mode']`. */
  path: (string | number)[];
  message: string;
}

/** The error thrown by @pit/policy; carries every problem found, not just the first. */
export class PolicyError extends PitError<PolicyErrorCode> {
  /** Every problem found (empty for POLICY_BAD_INPUT). */
  readonly problems: readonly PolicyProblem[];
  constructor(
    code: PolicyErrorCode,
    message: string,
    options: PitErrorOptions & { problems?: readonly PolicyProblem[] } = {},
  ) {
    super(code, message, options);
    this.problems = options.problems ?? [];
  }
}

/**
 * Renders problems as `policy.missions.forge.mode: message`, one per line.
 * @param root the name of the section the paths are relative to. @default 'policy'
 */
export function formatPolicyProblems(problems: readonly PolicyProblem[], root = 'policy'): string {
  return problems
    .map(
      (problem) =>
        `${[root, ...problem.path].filter((part) => part !== '').join('.')}: ${problem.message}`,
    )
    .join('\n');
}
