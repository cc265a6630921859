/**
 * Size rotation of running agents' logs (`[logs] max_bytes`, `keep`): on its own short timer
 * (one `lstat` per running agent's log a tick, never per line; sooner again after a rotation),
 * a running agent's log at or over `max_bytes` (its stdout `<agent>.log`, its stderr
 * `<agent>.err.log`, each on its own) is rotated with the agent's cgroup frozen (agent-cgroups.ts)
 * so that nothing is written meanwhile: its whole lines are copied to `<agent>.log.1` (or
 * `<agent>.err.log.1`) and the live file cut back (log-copy-rotation.ts); both logs are rotated in
 * one freeze when both are full. Without agent cgroups (off or unavailable), or at level 3 (Podman's
 * group), a running agent's log is rotated only at its next start (the executor does that); this
 * is logged once. Owns the timer and which logs it rotates, nothing about the agents.
 */
import { promises as fs } from 'node:fs';
import type { AgentCgroups } from './agent-cgroups.js';
import { copyRotateLog } from './log-copy-rotation.js';
import { slotLogPaths, type Slot } from './slot.js';
import type { SupervisorContext } from './supervisor-context.js';

/** How often running agents' log sizes are looked at (ms). */
export const LOG_CHECK_INTERVAL_MS = 250;
/** How soon they are looked at again after a rotation (ms). */
const LOG_RECHECK_MS = 20;

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
  /** @returns whether a log was rotated */
  const tick = async () => {
    let rotated = false;
    for (const slot of context.fleet.slots.values()) {
      const agent = slot.process;
      if (!agent || agent.exit || context.stopped) continue;
      const paths = await fullLogs(context, slot);
      if (paths.length === 0) continue;
      if (!cgroups)
        warnOnce(slot.name, 'agent cgroups are off or unavailable ([sandbox] agent_cgroups)');
      else if (agent.level === 3) warnOnce(slot.name, 'a level-3 agent runs in Podman’s cgroup');
      else {
        const target = { slot: slot.key, cell: slot.cell, name: slot.name, paths };
        const done = await rotate(
          context,
          cgroups,
          target,
          !refused.has(`${slot.key}:${agent.pid}`),
        );
        if (done === undefined) refused.add(`${slot.key}:${agent.pid}`);
        else if (done) rotated = true;
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

/** The agent's logs (stdout, and stderr unless merged) at or over `[logs] max_bytes`. */
async function fullLogs(context: SupervisorContext, slot: Slot): Promise<string[]> {
  const { stdout, stderr } = slotLogPaths(context, slot);
  const full: string[] = [];
  for (const path of stderr === undefined ? [stdout] : [stdout, stderr]) {
    const size = await fs.lstat(path).then(
      (stat) => (stat.isFile() ? stat.size : 0),
      () => 0,
    );
    if (size >= context.config.logs.max_bytes) full.push(path);
  }
  return full;
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
