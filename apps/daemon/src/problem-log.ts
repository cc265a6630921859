/**
 * Says each problem discovery finds once: a new one at `warn` when it first appears, and at `info`
 * when it is gone, so an operator watching the log at its default level learns of a corrupt or
 * hostile cell without a line every poll. The list itself stays in `/api/status` and `pit status`.
 */
import type { Logger } from '@pit/cell-spec';

/** See the module header. */
export interface ProblemLog {
  /** The problems of the latest pass; logs what changed since the previous one. */
  update(problems: readonly string[]): void;
}

/** Creates the log of problems for one supervisor. */
export function createProblemLog(logger: Logger): ProblemLog {
  let known = new Set<string>();
  return {
    update(problems) {
      const now = new Set(problems);
      for (const problem of now) if (!known.has(problem)) logger.warn('problem', { problem });
      for (const problem of known) if (!now.has(problem)) logger.info('problem gone', { problem });
      known = now;
    },
  };
}
