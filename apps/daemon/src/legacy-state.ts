/**
 * Migration from the daemons that kept their per-agent records inside the cell
 * (`.lazarus/state.json`, which the cell's agents can write). Owns reading that file once, as a
 * hint, while the daemon has no record of the cell in its own state directory: only what cannot
 * give an agent anything is carried over (restart times and revive attempts, which can only make
 * the policy stricter; a pending approval id, which the caller checks against the approval store;
 * a pid and start time, which the adoption proof checks like any other). Never writes the file.
 */
import { readCellState, type AgentState } from '@pit/cell-spec';
import type { Logger } from './logger.js';

/** Restart times kept from a hint (the same bound as the daemon's own records). */
const MAX_RESTARTS = 50;

/**
 * The records an older daemon left in the cell at `cellDir`, reduced to what may be carried over
 * (see the module header). A missing, damaged or unsafe file is no hint (logged, never moved).
 */
export async function readLegacyHint(
  cellDir: string,
  logger: Logger,
): Promise<Record<string, AgentState>> {
  let agents: Record<string, AgentState>;
  try {
    agents = (await readCellState(cellDir)).agents;
  } catch (error) {
    logger.warn('ignored the state file an older daemon left in the cell', {
      cell: cellDir,
      error: error instanceof Error ? error.message : String(error),
    });
    return {};
  }
  const hints: Record<string, AgentState> = {};
  for (const [name, state] of Object.entries(agents)) hints[name] = hintOf(state);
  if (Object.keys(hints).length > 0)
    logger.info('read the state file an older daemon left in the cell, as a hint', {
      cell: cellDir,
      agents: Object.keys(hints),
    });
  return hints;
}

/** What one record of the hint may carry over. */
function hintOf(state: AgentState): AgentState {
  return {
    health: 'unknown',
    revive_attempts: state.revive_attempts,
    restarts: state.restarts.slice(-MAX_RESTARTS),
    ...(state.pending_approval !== undefined ? { pending_approval: state.pending_approval } : {}),
    ...(state.pid !== undefined && state.pid_start_time !== undefined
      ? { pid: state.pid, pid_start_time: state.pid_start_time }
      : {}),
  };
}
