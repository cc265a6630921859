/**
 * Periodic workspace checkpoints: every `checkpoints.interval_s`, each active cell's workspace
 * is checkpointed (@pit/snapshot) into the daemon's store for the cell
 * (`<state_dir>/checkpoints/<uuid>`, checkpoint-store.ts) and old checkpoints beyond
 * `checkpoints.retention` pruned. A failure is logged and the next cell is checkpointed anyway.
 * It restores nothing.
 */
import { createCheckpoint, pruneCheckpoints } from '@pit/snapshot';
import { checkpointStore } from './checkpoint-store.js';
import type { SupervisorContext } from './supervisor-context.js';

/** Creates the periodic checkpointer; `tick()` checkpoints when the interval has passed. */
export function createPeriodicCheckpoints(context: SupervisorContext): { tick(): Promise<void> } {
  let lastAt = context.now();
  return {
    async tick() {
      const { interval_s: intervalS, retention } = context.config.checkpoints;
      if (intervalS <= 0 || context.dryRun) return;
      if (context.now() - lastAt < intervalS * 1000) return;
      lastAt = context.now();
      const cells = new Map<string, string>();
      for (const slot of context.fleet.slots.values()) {
        if (slot.cell && slot.cell.manifest.status === 'active')
          cells.set(slot.cell.uuid, slot.cell.dir);
      }
      for (const [uuid, dir] of cells) {
        try {
          const store = checkpointStore(context.stateDir, uuid);
          await createCheckpoint(dir, {
            store,
            createdBy: 'pit-daemon',
            reason: 'periodic',
            logger: context.logger,
          });
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
