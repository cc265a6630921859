/**
 * The single verdict the policy sees about an agent: its health, since when, why, and which
 * probes fail. It reads the agent's assessor (@pit/probes) and the one fact the assessor does not
 * hold: a managed agent whose process has exited is dead at once, whatever the startup grace.
 * Pure given the slot and the clock; it changes nothing.
 */
import type { FailureInfo } from '@pit/policy';
import { describeExit, type Slot } from './slot.js';

/** The verdict of {@link healthOf}. */
export interface Verdict {
  state: 'unknown' | 'healthy' | 'degraded' | 'dead';
  /** When this state began (ms). */
  since: number;
  reason: string;
  failure?: FailureInfo;
}

/** The health the policy sees: an exited process is dead at once, whatever the grace. */
export function healthOf(slot: Slot, now: number): Verdict {
  const assessment = slot.assessor.get(slot.key);
  const exited = slot.supervision.mode === 'managed' && (!slot.process || slot.exit !== undefined);
  if (exited && (slot.exit || slot.state.pid !== undefined || slot.state.health === 'dead')) {
    const exit = slot.exit;
    const detail = exit ? `process exited (${describeExit(exit)})` : 'process not running';
    return {
      state: 'dead',
      since: exit?.at.getTime() ?? assessment?.firstFailedAt ?? now,
      reason: detail,
      failure: {
        failing_probes: [
          'process',
          ...(assessment?.failing.filter((name) => name !== 'process') ?? []),
        ],
        ...(exit && exit.code !== null ? { exit_code: exit.code } : {}),
        ...(exit?.signal ? { signal: exit.signal } : {}),
        detail,
      },
    };
  }
  if (!assessment) return { state: 'unknown', since: now, reason: 'no verdict yet' };
  // The startup grace is the assessor's (tracked from the process's start): healthy only once
  // every critical probe passed, never dead by probes while it lasts.
  const failing = assessment.failing;
  return {
    state: assessment.health,
    since:
      assessment.health === 'dead'
        ? (assessment.firstFailedAt ?? assessment.since)
        : assessment.since,
    reason: assessment.reason,
    failure: {
      failing_probes: failing,
      ...(Object.values(assessment.failures).includes('stuck') ? { stuck: true } : {}),
      detail: failing.map((name) => assessment.probes[name]?.lastResult?.detail ?? name).join('; '),
    },
  };
}
