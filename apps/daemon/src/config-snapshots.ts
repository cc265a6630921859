/**
 * The deadman's side of a healthy agent: its config files are snapshotted as last known good
 * (@pit/snapshot) at most once per poll interval, and only when the running process started
 * with them; and where a rollback finds the canonical version in source control. It never rolls
 * back (restart.ts does, on a decision).
 */
import { promises as fs } from 'node:fs';
import type { CanonicalSource } from '@pit/snapshot';
import { configOf, resolveAgentPath, startedByUsAt, type Slot } from './slot.js';
import { onFallback } from './provider-switch.js';
import type { SupervisorContext } from './supervisor-context.js';

/** Snapshots the agent's config as last known good, when due and when the running process proves it. */
export async function snapshotConfig(
  context: SupervisorContext,
  slot: Slot,
  at: number,
): Promise<void> {
  const files = configOf(slot)?.config_files ?? [];
  // A fallback provider's config is not last known good: the snapshots stay the primary's.
  if (files.length === 0 || context.dryRun || onFallback(slot)) return;
  if (at - slot.lastSnapshotAt < context.config.cells.poll_interval_s * 1000) return;
  slot.lastSnapshotAt = at;
  const paths = files.map((file) => resolveAgentPath(slot, file.path, context.stateDir));
  // Healthy proves only the config the running process started with: a file changed since
  // (an agent editing its own config at runtime) is not last known good until a process has
  // started with it and been healthy.
  const startedAt = startedByUsAt(slot);
  if (startedAt !== undefined) {
    const changed = await changedSince(paths, startedAt);
    if (changed.length > 0) {
      context.logger.debug(
        'config changed since the agent started: not snapshotted until a restart proves it',
        {
          agent: slot.key,
          files: changed,
        },
      );
      return;
    }
  }
  // The files are read after the checks above: an agent that rewrites its config (and dies) in
  // between must not make that the last known good. Checked again once the new content is read.
  const running = slot.process;
  let refused: string | undefined;
  const validate = async (_content: Buffer, path: string) => {
    if (slot.process !== running || running?.exit)
      refused = 'the process exited while its config was read';
    else if (startedAt !== undefined && (await changedSince([path], startedAt)).length > 0)
      refused = `${path} changed since the agent started`;
    if (refused) throw new Error(refused);
  };
  try {
    const result = await context.snapshots.snapshot(slot.name, paths, { validate });
    if (result.status === 'saved') {
      context.logger.info('config snapshotted as last known good', {
        agent: slot.key,
        set: result.set,
      });
    }
  } catch (error) {
    if (refused !== undefined)
      return context.logger.debug('config not snapshotted: not proved by a healthy run', {
        agent: slot.key,
        reason: refused,
      });
    context.logger.warn('config snapshot failed', {
      agent: slot.key,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

/** The canonical versions of the agent's config files (the first repository and ref named). */
export function canonicalOf(context: SupervisorContext, slot: Slot): CanonicalSource | undefined {
  const files = (configOf(slot)?.config_files ?? []).flatMap((file) =>
    file.canonical ? [{ path: file.path, canonical: file.canonical }] : [],
  );
  const first = files[0]?.canonical;
  if (!first) return undefined;
  return {
    repository: first.repo,
    ref: first.ref,
    files: files
      .filter((file) => file.canonical.repo === first.repo && file.canonical.ref === first.ref)
      .map((file) => ({
        path: file.canonical.path,
        target: resolveAgentPath(slot, file.path, context.stateDir),
      })),
  };
}

/** The files among `paths` modified after `sinceMs` (a missing one is left for the snapshot to report). */
async function changedSince(paths: readonly string[], sinceMs: number): Promise<string[]> {
  const stats = await Promise.all(
    paths.map((path) =>
      fs.stat(path).then(
        (stat) => stat.mtimeMs,
        () => 0,
      ),
    ),
  );
  return paths.filter((_, index) => (stats[index] ?? 0) > sinceMs);
}
