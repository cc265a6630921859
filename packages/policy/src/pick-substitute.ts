import type { FleetIndex } from './fleet-index.js';

/** The outcome of {@link pickSubstitute}: the chosen substitute, and why the ones before it were passed over. */
export interface SubstituteChoice {
  substitute?: string;
  /** Candidates passed over, in order, with the reason (`dead`, `not in the fleet`, `substituting for ezra`). */
  skipped: { name: string; why: string }[];
}

/**
 * Picks the first candidate, in the listed order, that is healthy right now, is not the dead
 * agent itself, and is not already standing in for another agent.
 * @example
 * pickSubstitute({ agent: 'bezalel', candidates: ['allegro', 'timmy'], fleet });
 * // { substitute: 'timmy', skipped: [{ name: 'allegro', why: 'dead' }] }
 */
export function pickSubstitute(options: {
  agent: string;
  candidates: readonly string[];
  fleet: FleetIndex;
}): SubstituteChoice {
  const { agent, candidates, fleet } = options;
  const skipped: { name: string; why: string }[] = [];
  for (const name of candidates) {
    if (name === agent) {
      skipped.push({ name, why: 'is the dead agent itself' });
      continue;
    }
    const candidate = fleet.get(name);
    if (candidate === undefined) {
      skipped.push({ name, why: 'not in the fleet' });
      continue;
    }
    if (candidate.state !== 'healthy') {
      skipped.push({ name, why: candidate.state });
      continue;
    }
    if (candidate.substituting_for !== undefined && candidate.substituting_for !== agent) {
      skipped.push({ name, why: `substituting for ${candidate.substituting_for}` });
      continue;
    }
    return { substitute: name, skipped };
  }
  return { skipped };
}
