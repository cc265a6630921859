/**
 * The single verdict the policy sees about an agent: its health, since when, why, and which
 * probes fail, read from the fleet's assessor (@pit/probes). The assessor holds every fact the
 * verdict needs (probe results, the startup grace, the process's exit, the incarnation's start
 * for heartbeats: agent-probes.ts gives it those), so this is a plain mapping. Pure.
 */
import type { FailureInfo } from '@pit/policy';
import type { Assessment } from '@pit/probes';
import { describeExit } from './slot.js';

/** The verdict of {@link healthOf}. */
export interface Verdict {
  state: 'unknown' | 'healthy' | 'degraded' | 'dead';
  /** When this state began (ms). */
  since: number;
  reason: string;
  failure?: FailureInfo;
}

/** The agent's health as the policy sees it; `unknown` before its first assessment. */
export function healthOf(assessment: Assessment | undefined, now: number): Verdict {
  if (!assessment) return { state: 'unknown', since: now, reason: 'no verdict yet' };
  const { exit, failing } = assessment;
  if (exit) {
    const detail = exit.detail ?? `process exited (${describeExit(exit)})`;
    return {
      state: 'dead',
      since: exit.at,
      reason: detail,
      failure: {
        // Seen, not inferred: the policy acts at once (dead_after applies to inferred deaths only).
        exited: true,
        failing_probes: ['process', ...failing.filter((name) => name !== 'process')],
        ...(exit.code !== null && exit.code !== undefined ? { exit_code: exit.code } : {}),
        ...(exit.signal ? { signal: exit.signal } : {}),
        detail,
      },
    };
  }
  // The startup grace is the assessor's (tracked from the process's start): healthy only once
  // every critical probe passed, never dead by probes while it lasts.
  const dead = assessment.health === 'dead';
  return {
    state: assessment.health,
    since: dead ? (assessment.firstFailedAt ?? assessment.since) : assessment.since,
    reason: assessment.reason,
    failure: {
      failing_probes: failing,
      ...(Object.values(assessment.failures).includes('stuck') ? { stuck: true } : {}),
      detail: failing.map((name) => assessment.probes[name]?.lastResult?.detail ?? name).join('; '),
    },
  };
}
