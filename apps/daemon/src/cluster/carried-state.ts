/**
 * The part of an agent's state that outlives the host that wrote it (agent-records.ts's module
 * header says why these fields and not the others). Kept apart from agent-records.ts so that a
 * daemon without `[cluster]` never loads the NATS client through it.
 */
import type { AgentState } from '@pit/cell-spec';

/** The fields of an agent's state that another host carries on. */
const CARRIED = ['stopped', 'restarts', 'substituted_by', 'last_healthy_at'] as const;

/** The carried fields of a state, as a fresh record. */
export function carriedState(state: AgentState): AgentState {
  const fresh: AgentState = { health: 'unknown', revive_attempts: 0, restarts: [] };
  for (const field of CARRIED)
    if (state[field] !== undefined) Object.assign(fresh, { [field]: state[field] });
  return fresh;
}
