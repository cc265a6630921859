import { appendEvent } from './events.js';
import { assertTransition, TRANSITION_EVENTS, type CellStatus } from './lifecycle.js';
import { updateManifest, type CellManifest } from './manifest.js';
import { cellPaths } from './paths.js';

/** Options of {@link transitionCell}. */
export interface TransitionCellOptions {
  /** Recorded in the event. */
  reason?: string;
  /** Refuse with CELL_CONFLICT unless the manifest is at this revision. */
  expectedRevision?: number;
  now?: () => Date;
}

/**
 * Moves a cell to a new lifecycle status (provisioning → active → frozen ⇄ active →
 * archived → destroyed), writing the manifest atomically under its lock, then appends the
 * status's event (`cell_frozen`, …).
 * @throws {CellError} CELL_ILLEGAL_TRANSITION naming both states; CELL_CONFLICT; CELL_INVALID; CELL_IO.
 */
export async function transitionCell(cellDir: string, to: CellStatus, options: TransitionCellOptions = {}): Promise<CellManifest> {
  const manifest = await updateManifest(
    cellDir,
    (current) => {
      assertTransition(current.status, to, cellPaths(cellDir).manifest);
      current.status = to;
    },
    { ...(options.expectedRevision !== undefined ? { expectedRevision: options.expectedRevision } : {}), ...(options.now ? { now: options.now } : {}) },
  );
  if (to !== 'provisioning') {
    await appendEvent(
      cellPaths(cellDir).events,
      { event: TRANSITION_EVENTS[to], ...(options.reason ? { reason: options.reason } : {}) },
      { ...(options.now ? { now: options.now } : {}) },
    );
  }
  return manifest;
}
