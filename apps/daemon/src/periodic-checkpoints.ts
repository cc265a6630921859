/**
 * Periodic workspace checkpoints: every `checkpoints.interval_s`, each active cell's workspace
 * is checkpointed (@pit/snapshot) into the daemon's store for the cell
 * (`<state_dir>/checkpoints/<uuid>`, checkpoint-store.ts) and old checkpoints beyond
 * `checkpoints.retention` pruned. A failure is logged and the next cell is checkpointed anyway.
 * In a cluster, each new checkpoint of a cell whose agents this host holds is also put in the
 * cluster's object store (cluster/cell-store.ts), so that a live host can rebuild the cell if this
 * one dies; a cell held here whose record there has no checkpoint yet (a new cell) gets its first
 * one at the next tick, not an interval later (once per daemon run: a cell that cannot be
 * checkpointed waits for the interval like the others). It restores nothing.
 */
import { createCheckpoint, pruneCheckpoints, type CheckpointManifest } from '@pit/snapshot';
import { checkpointStore } from './checkpoint-store.js';
import { localCell } from './cluster/cell-takeover.js';
import type { SupervisorContext } from './supervisor-context.js';

/** Creates the periodic checkpointer; `tick()` checkpoints when the interval has passed. */
export function createPeriodicCheckpoints(context: SupervisorContext): { tick(): Promise<void> } {
  let lastAt = context.now();
  /** Cells given a first checkpoint out of turn (cluster): once each per run. */
  const firstTaken = new Set<string>();
  return {
    async tick() {
      const { interval_s: intervalS, retention } = context.config.checkpoints;
      if (intervalS <= 0 || context.dryRun) return;
      const due = context.now() - lastAt >= intervalS * 1000;
      const first = [...(context.cluster?.awaitingCheckpoint() ?? [])].filter(
        (uuid) => !firstTaken.has(uuid),
      );
      if (!due && first.length === 0) return;
      if (due) lastAt = context.now();
      for (const uuid of first) firstTaken.add(uuid);
      const cells = new Map<string, string>();
      for (const slot of context.fleet.slots.values()) {
        if (slot.cell && slot.cell.manifest.status === 'active')
          cells.set(slot.cell.uuid, slot.cell.dir);
      }
      for (const [uuid, dir] of cells) {
        if (!due && !first.includes(uuid)) continue;
        try {
          const store = checkpointStore(context.stateDir, uuid);
          const created = await createCheckpoint(dir, {
            store,
            createdBy: 'pit-daemon',
            reason: 'periodic',
            logger: context.logger,
          });
          await publish(context, uuid, created);
          await pruneCheckpoints(dir, { store, keep: retention, logger: context.logger });
        } catch (error) {
          context.logger.warn('periodic checkpoint failed', {
            cell: dir,
            error: error instanceof Error ? error.message : String(error),
          });
        }
      }
    },
  };
}

/** In a cluster: the checkpoint into the object store (a failure is logged; the local one stays). */
async function publish(
  context: SupervisorContext,
  uuid: string,
  created: { archive: string; manifest: CheckpointManifest },
): Promise<void> {
  const cell = context.cluster ? localCell(context, uuid) : undefined;
  if (!cell || !context.cluster) return;
  try {
    await context.cluster.publishCheckpoint(cell, created);
  } catch (error) {
    context.logger.warn('cluster: cannot put a checkpoint in the object store', {
      cell: uuid,
      checkpoint: created.manifest.name,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}
