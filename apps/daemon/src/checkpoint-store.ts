/**
 * Where the daemon keeps cells' workspace checkpoints, and the restore before a revive. The
 * archives and their manifests live in `<state_dir>/checkpoints/<cell uuid>/`, out of the cell's
 * agents' reach, so "newest" is the newest creation time the daemon itself recorded; anything
 * in the cell's own `checkpoints/` (where an agent could plant a `2099-…` archive) is never
 * restored by the daemon, only reported. It decides nothing about when to restore.
 */
import { join } from 'node:path';
import { assertCellUuid, cellPaths, openDirectoryBeneath } from '@pit/cell-spec';
import { listCheckpoints, restoreCheckpoint } from '@pit/snapshot';
import { promises as fs } from 'node:fs';
import type { Slot } from './slot.js';
import type { SupervisorContext } from './supervisor-context.js';

/** `<state_dir>/checkpoints/<uuid>`: the daemon's checkpoints of one cell. */
export function checkpointStore(stateDir: string, uuid: string): string {
  return join(stateDir, 'checkpoints', assertCellUuid(uuid));
}

/**
 * Reports what lies in the cell's own `checkpoints/` (read beneath the cell, never through a
 * link): the daemon neither restores nor removes it. Logged as a problem naming the cell and
 * the files, once per restore.
 */
async function reportCellCheckpoints(context: SupervisorContext, slot: Slot): Promise<void> {
  if (!slot.cell) return;
  const paths = cellPaths(slot.cell.dir);
  let names: string[];
  try {
    const directory = await openDirectoryBeneath(slot.cell.dir, 'checkpoints');
    try {
      names = await fs.readdir(`/proc/self/fd/${directory.fd}`);
    } finally {
      await directory.close();
    }
  } catch (error) {
    if ((error as { code?: string }).code === 'CELL_NOT_FOUND') return;
    context.logger.error('checkpoints: refused the cell’s checkpoints/ directory', {
      cell: slot.cell.uuid,
      path: paths.checkpoints,
      error: String(error),
    });
    return;
  }
  const archives = names.filter((name) => name.endsWith('.tar.gz') || name.endsWith('.json'));
  if (archives.length > 0)
    context.logger.warn(
      'checkpoints: files in the cell’s checkpoints/ are ignored (not made by this daemon; it restores only those in its state directory)',
      { cell: slot.cell.uuid, path: paths.checkpoints, files: archives.slice(0, 20) },
    );
}

/**
 * The moment a workspace is restored before a revive: the newest of the daemon's own
 * checkpoints of the cell, within limits derived from its manifest and capped by
 * `[checkpoints] restore_max_bytes` / `restore_max_entries`. A failure is logged; the revive
 * goes ahead.
 */
export async function restoreBeforeRevive(context: SupervisorContext, slot: Slot): Promise<void> {
  if (!slot.cell) return;
  await reportCellCheckpoints(context, slot);
  const store = checkpointStore(context.stateDir, slot.cell.uuid);
  try {
    const { checkpoints } = await listCheckpoints(slot.cell.dir, { store });
    if (checkpoints.length === 0) return;
    await restoreCheckpoint(slot.cell.dir, {
      store,
      restoredBy: 'pit-daemon',
      reason: `before reviving ${slot.name}`,
      logger: context.logger,
      maxBytes: context.config.checkpoints.restore_max_bytes,
      maxEntries: context.config.checkpoints.restore_max_entries,
    });
  } catch (error) {
    context.logger.error('checkpoint restore failed', {
      agent: slot.key,
      cell: slot.cell.uuid,
      error: String(error),
    });
  }
}
