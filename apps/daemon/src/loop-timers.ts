/**
 * The loop's clocks: discovery every poll interval and whenever the cells root changes (a
 * watcher, debounced), and housekeeping (approval answers and expiries, periodic checkpoints)
 * every poll interval or 2 s, whichever is shorter. A failed round is logged and the next one
 * runs. It owns the timers and nothing they do. `loopHealth()` says whether they still turn:
 * discovery ran recently and its last pass succeeded (`/health`).
 */
import { watch, type FSWatcher, promises as fs } from 'node:fs';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** The loop's timers, started once. */
export interface LoopTimers {
  stop(): void;
}

/** Starts the timers: `discover` and `housekeep` are what they run. */
export async function startLoopTimers(
  context: SupervisorContext,
  work: { discover(): Promise<void>; housekeep(): Promise<void> },
): Promise<LoopTimers> {
  const { config, logger } = context;
  const discover = () => {
    work
      .discover()
      .catch((error: unknown) => logger.error('discovery failed', { error: String(error) }));
  };
  const poll = config.cells.poll_interval_s * 1000;
  const discoveryTimer = setInterval(discover, poll);
  const housekeepingTimer = setInterval(
    () => {
      work
        .housekeep()
        .catch((error: unknown) => logger.error('housekeeping failed', { error: String(error) }));
    },
    Math.min(poll, 2000),
  );
  let rootWatcher: FSWatcher | undefined;
  if (config.cells.watch) {
    await fs.mkdir(config.cells.root, { recursive: true });
    try {
      let pending: NodeJS.Timeout | undefined;
      rootWatcher = watch(config.cells.root, () => {
        if (pending) return;
        pending = setTimeout(() => {
          pending = undefined;
          discover();
        }, 100);
      });
      rootWatcher.on('error', () => undefined);
    } catch (error) {
      logger.warn('cannot watch the cells root; new cells are found on the next poll', {
        root: config.cells.root,
        error: String(error),
      });
    }
  }
  return {
    stop() {
      clearInterval(discoveryTimer);
      clearInterval(housekeepingTimer);
      rootWatcher?.close();
    },
  };
}

/** The loop's own health: discovery ran recently and the last one succeeded. */
export function loopHealth(
  context: SupervisorContext,
  last: { at: number; ok: boolean; error?: string } | undefined,
): { ok: boolean; last_discovery?: string; reason?: string } {
  if (!last) return { ok: false, reason: 'no discovery yet' };
  const staleAfter = Math.max(30_000, context.config.cells.poll_interval_s * 5000);
  const at = { last_discovery: iso(last.at) };
  if (!last.ok)
    return {
      ok: false,
      ...at,
      reason: `the last discovery failed: ${last.error ?? 'unknown error'}`,
    };
  const silentFor = context.now() - last.at;
  if (silentFor > staleAfter) {
    return {
      ok: false,
      ...at,
      reason: `no discovery for ${Math.round(silentFor / 1000)} s (the loop is stuck)`,
    };
  }
  return { ok: true, ...at };
}
