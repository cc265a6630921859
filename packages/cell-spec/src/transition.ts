import { assertTransition, type CellStatus } from './lifecycle.js';
import { updateManifest, type CellManifest } from './manifest.js';
import { cellPaths } from './paths.js';

/** Options of {@link transitionCell}. */
export interface TransitionCellOptions {
  /** Recorded as `reason` in the event. */
  reason?: string;
  /** Refuse with CELL_CONFLICT unless the manifest is at this revision. */
  expectedRevision?: number;
  /** How long to wait for another writer of the manifest. @default 5000 (ms) */
  lockTimeoutMs?: number;
  /** Clock, for tests. @default () => new Date() */
  now?: () => Date;
}

/**
 * Moves a cell to a new lifecycle status (provisioning → active → frozen ⇄ active →
 * archived → destroyed), writing the manifest atomically under its lock, and appends the
 * status's event (`cell_activated`, `cell_frozen`, `cell_archived`, `cell_destroyed`, with
 * `from` and `reason`) to `logs/events.jsonl`.
 * @throws {CellError} CELL_ILLEGAL_TRANSITION naming both states (also for a move to the
 *   current status); CELL_CONFLICT; CELL_LOCKED; CELL_INVALID; CELL_NOT_FOUND; CELL_IO.
 * @example
 * await transitionCell(dir, 'frozen', { reason: 'maintenance window' });
 */
export async function transitionCell(
  cellDir: string,
  to: CellStatus,
  options: TransitionCellOptions = {},
): Promise<CellManifest> {
  return updateManifest(
    cellDir,
    (current) => {
      // Checked here too so that a move to the current status is refused (`active → active`).
      assertTransition(current.status, to, cellPaths(cellDir).manifest);
      current.status = to;
    },
    options,
  );
}
