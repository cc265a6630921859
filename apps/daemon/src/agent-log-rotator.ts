/**
 * Size rotation of running agents' logs (`[logs] max_bytes`, `keep`): on its own short timer,
 * never per line, each running agent's logs are looked at (one `lstat` each) every
 * {@link LOG_CHECK_INTERVAL_MS} while they grow, and less often while they do not (the wait
 * doubles up to {@link LOG_IDLE_CHECK_MS}: a fleet of thousands of quiet agents costs a few
 * hundred `lstat`s a second, not thousands), sooner again after a rotation; a running agent's log at or over `max_bytes` (its stdout `<agent>.log`, its stderr
 * `<agent>.err.log`, each on its own) is rotated with the agent's cgroup frozen (agent-cgroups.ts)
 * so that nothing is written meanwhile: its whole lines are copied to `<agent>.log.1` (or
 * `<agent>.err.log.1`) and the live file cut back (log-copy-rotation.ts); both logs are rotated in
 * one freeze when both are full. Without agent cgroups (off or unavailable), or at level 3 (Podman's
 * group), a running agent's log is rotated only at its next start (the executor does that); this
 * is logged once. Owns the timer and which logs it rotates, nothing about the agents.
 */
import { lstatSync } from 'node:fs';
import type { AgentCgroups } from './agent-cgroups.js';
import { copyRotateLog } from './log-copy-rotation.js';
import { slotLogPaths, type Slot } from './slot.js';
import type { SupervisorContext } from './supervisor-context.js';

/** How often running agents' log sizes are looked at (ms): the rotator's tick, and the wait while a log grows. */
export const LOG_CHECK_INTERVAL_MS = 250;
/** The longest wait between two looks at logs that did not grow (ms): a log that starts growing overshoots `max_bytes` by at most this much of its output. */
const LOG_IDLE_CHECK_MS = 4_000;
/** How soon they are looked at again after a rotation (ms). */
const LOG_RECHECK_MS = 20;
/** Logs looked at in one turn of the event loop (synchronous `lstat`s): a large fleet yields between. */
const LSTATS_PER_TURN = 256;

/** When a running agent's logs are looked at next, and their sizes at the last look. */
interface LogCheck {
  pid: number;
  paths: string[];
  sizes: number[];
  dueAt: number;
  wait: number;
}

/** The rotator's timer, started once. */
export interface AgentLogRotator {
  /** Stops the timer and waits for a rotation under way. */
  stop(): Promise<void>;
}

/** Starts checking running agents' logs every {@link LOG_CHECK_INTERVAL_MS}. */
export function startAgentLogRotator(
  context: SupervisorContext,
  cgroups: AgentCgroups | undefined,
): AgentLogRotator {
  let running: Promise<unknown> | undefined;
  let warned = false;
  /** `<slot>:<pid>` of the processes whose log could not be rotated, said once each. */
  const refused = new Set<string>();
  const warnOnce = (agent: string, reason: string) => {
    if (warned) return;
    warned = true;
    context.logger.warn('a running agent’s log is rotated only at its next start', {
      agent,
      reason,
      max_bytes: context.config.logs.max_bytes,
    });
  };
  const checks = new WeakMap<Slot, LogCheck>();
  /** @returns whether a log was rotated */
  const tick = async () => {
    let rotated = false;
    let looked = 0;
    for (const slot of context.fleet.slots.values()) {
      const agent = slot.process;
      if (!agent || agent.exit || context.stopped) continue;
      const check = logCheckOf(context, checks, slot, agent.pid);
      const now = Date.now();
      if (now < check.dueAt) continue;
      if ((looked += check.paths.length) >= LSTATS_PER_TURN) {
        looked = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const { full, grew } = measureLogs(context, check);
      check.wait = grew ? LOG_CHECK_INTERVAL_MS : Math.min(check.wait * 2, LOG_IDLE_CHECK_MS);
      check.dueAt = now + check.wait;
      if (full.length === 0) continue;
      if (!cgroups)
        warnOnce(slot.name, 'agent cgroups are off or unavailable ([sandbox] agent_cgroups)');
      else if (agent.level === 3) warnOnce(slot.name, 'a level-3 agent runs in Podman’s cgroup');
      else if (await rotateRunning(context, cgroups, { slot, pid: agent.pid, full, refused })) {
        rotated = true;
        check.wait = LOG_CHECK_INTERVAL_MS;
        check.dueAt = 0;
      }
    }
    return rotated;
  };
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = (delay: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick()
        .catch((error: unknown) => {
          context.logger.error('agent log rotation failed', { error: String(error) });
          return false;
        })
        .then((rotated) => {
          running = undefined;
          // A log that needed rotating may be written fast: look again soon.
          schedule(rotated ? LOG_RECHECK_MS : LOG_CHECK_INTERVAL_MS);
        });
    }, delay);
    timer.unref();
  };
  schedule(LOG_CHECK_INTERVAL_MS);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/** The slot's log check, a fresh one for a new process. */
function logCheckOf(
  context: SupervisorContext,
  checks: WeakMap<Slot, LogCheck>,
  slot: Slot,
  pid: number,
): LogCheck {
  let check = checks.get(slot);
  if (check?.pid !== pid) {
    const { stdout, stderr } = slotLogPaths(context, slot);
    const paths = stderr === undefined ? [stdout] : [stdout, stderr];
    check = { pid, paths, sizes: [], dueAt: 0, wait: LOG_CHECK_INTERVAL_MS };
    checks.set(slot, check);
  }
  return check;
}

/**
 * The agent's logs (stdout, and stderr unless merged) at or over `[logs] max_bytes`, and whether
 * any size changed since the last look (grew, or was cut back). `lstat`: a link planted in its
 * place counts as empty, never followed.
 */
function measureLogs(
  context: SupervisorContext,
  check: LogCheck,
): { full: string[]; grew: boolean } {
  const full: string[] = [];
  let grew = false;
  check.paths.forEach((path, index) => {
    let size = 0;
    try {
      const stat = lstatSync(path, { throwIfNoEntry: false });
      size = stat?.isFile() ? stat.size : 0;
    } catch {
      size = 0;
    }
    if (size !== check.sizes[index]) grew = true;
    check.sizes[index] = size;
    if (size >= context.config.logs.max_bytes) full.push(path);
  });
  return { full, grew };
}

/** Rotates a running agent's full logs; says why not once per process. @returns whether lines moved */
async function rotateRunning(
  context: SupervisorContext,
  cgroups: AgentCgroups,
  agent: { slot: Slot; pid: number; full: string[]; refused: Set<string> },
): Promise<boolean> {
  const { slot, pid, full, refused } = agent;
  const target = { slot: slot.key, cell: slot.cell, name: slot.name, paths: full };
  const done = await rotate(context, cgroups, target, !refused.has(`${slot.key}:${pid}`));
  if (done === undefined) refused.add(`${slot.key}:${pid}`);
  return done === true;
}

/**
 * Rotates one running agent's full logs with its group frozen (one freeze for both); a failure is logged when `say` (once
 * per process: an agent adopted from a daemon without cgroups has no group, every tick).
 * @returns whether it moved lines out, or `undefined` when it could not rotate
 */
async function rotate(
  context: SupervisorContext,
  cgroups: AgentCgroups,
  target: {
    slot: string;
    cell: { uuid: string; dir: string } | undefined;
    name: string;
    paths: string[];
  },
  say: boolean,
): Promise<boolean | undefined> {
  const { keep } = context.config.logs;
  const options = { keep, ...(target.cell ? { beneath: target.cell.dir } : {}) };
  try {
    const moved = await cgroups.whileFrozen(target.cell?.uuid, target.name, async () => {
      let bytes = 0;
      for (const path of target.paths) bytes += await copyRotateLog(path, options);
      return bytes;
    });
    // 0: no whole line to move yet (one long unfinished line): looked at again on the next tick.
    if (moved !== undefined) return moved > 0;
    if (say)
      context.logger.warn(
        'cannot rotate a running agent’s log: its cgroup is empty or did not freeze',
        {
          agent: target.slot,
          consequence: 'rotated at its next start',
        },
      );
  } catch (error) {
    if (say)
      context.logger.warn('cannot rotate a running agent’s log', {
        agent: target.slot,
        paths: target.paths,
        error: String(error),
      });
  }
  return undefined;
}
