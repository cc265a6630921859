/**
 * Watching for the exit of a process that is not our child (an agent adopted after a daemon
 * restart, or one whose launcher died), where no exit event arrives: `/proc` is polled. Owns how
 * such an exit is told: a zombie's wait status from `/proc/<pid>/stat`, else `vanished`.
 */
import type { SpawnedExit } from './agent-spawn.js';
import { checkProcess, decodeWaitStatus } from './proc.js';

/** Options of {@link pollExit}. */
export interface PollExitOptions {
  pid: number;
  /** The start time recorded for `pid` (clock ticks since boot): a recycled pid counts as exited. */
  startTime: number;
  /** Time between checks (ms). */
  intervalMs: number;
  /** The timer is added here while it runs (so that its owner can stop every poll at once). */
  timers: Set<NodeJS.Timeout>;
}

/** Resolves once the process recorded as `pid` + `startTime` is no longer running. */
export function pollExit(options: PollExitOptions): Promise<SpawnedExit> {
  return new Promise((resolve) => {
    let checking = false;
    const timer = setInterval(() => {
      if (checking) return;
      checking = true;
      // A read that failed (EMFILE…) is no answer: the next tick asks again.
      void checkProcess(options.pid, options.startTime).then(
        (now) => {
          checking = false;
          if (now.alive || !options.timers.has(timer)) return;
          clearInterval(timer);
          options.timers.delete(timer);
          if (now.reason === 'zombie' && now.stat?.exitStatus !== undefined)
            resolve({ ...decodeWaitStatus(now.stat.exitStatus), how: 'zombie' });
          else resolve({ code: null, signal: null, how: 'vanished' });
        },
        () => {
          checking = false;
        },
      );
    }, options.intervalMs);
    timer.unref();
    options.timers.add(timer);
  });
}
