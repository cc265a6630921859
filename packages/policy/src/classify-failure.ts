import type { FailureInfo } from './decide-input.js';
import type { Classify, FailureClass } from './policy-config.js';

/** A failure class and, in words, why. */
export interface Classification {
  class: FailureClass;
  /** `exit code 78 (classify.exit_codes)`, `killed by SIGKILL`, … */
  because: string;
}

/**
 * Classifies a death. In order: a class already given; a stuck heartbeat (`stuck`, or a failing
 * probe named `stuck`); the exit code through `classify.exit_codes`; a rate-limit reset time
 * (`rate_limited`); a signal or a non-zero exit code (`crashed`); otherwise `unknown`.
 * @example
 * classifyFailure({ failure: { exit_code: 78 }, classify: { exit_codes: { '78': 'bad_config' } } });
 * // { class: 'bad_config', because: 'exit code 78 (classify.exit_codes)' }
 */
export function classifyFailure(options: {
  failure?: FailureInfo;
  classify: Classify;
}): Classification {
  const { failure, classify } = options;
  if (failure === undefined) return { class: 'unknown', because: 'no failure details' };
  if (failure.class !== undefined)
    return { class: failure.class, because: `reported as ${failure.class}` };
  if (failure.stuck === true || failure.failing_probes?.includes('stuck') === true) {
    return { class: 'stuck', because: 'heartbeat fresh but its cycle stands still' };
  }
  if (failure.exit_code !== undefined) {
    const mapped = classify.exit_codes[String(failure.exit_code)];
    if (mapped !== undefined)
      return { class: mapped, because: `exit code ${failure.exit_code} (classify.exit_codes)` };
  }
  if (failure.reset_at !== undefined)
    return { class: 'rate_limited', because: 'a rate-limit reset time was reported' };
  if (failure.signal !== undefined)
    return { class: 'crashed', because: `killed by ${failure.signal}` };
  if (failure.exit_code !== undefined && failure.exit_code !== 0)
    return { class: 'crashed', because: `exit code ${failure.exit_code}` };
  const probes = failure.failing_probes ?? [];
  return {
    class: 'unknown',
    because:
      failure.exit_code === 0
        ? 'exited with code 0'
        : probes.length > 0
          ? `failing probes: ${probes.join(', ')}`
          : 'no failure details',
  };
}
