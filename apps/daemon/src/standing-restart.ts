/**
 * Standing restarts (`[daemon] standing_restarts`): owns leaving the agent launcher an order to
 * start an agent's next process the moment the running one exits, and settling what that order
 * started. A restart then does not wait for the round trip exit → daemon → decision → launcher.
 * The order is left right after a start, only when the policy would answer a death now with an
 * immediate restart (`restart`, no rollback, no wait, no approval) and nothing else must happen
 * before the next start: a level-1 agent alone (not in a cluster), without mission-bus
 * credentials (each start gets a new token), a provider or a checkpoint restore. The daemon still
 * decides every death exactly as before: a start it decides keeps the process the order made
 * (same nonce, same command, directory, environment and logs: executor.ts); any other decision,
 * a stop, or a start that differs kills it. Never decides: the evaluation does.
 */
import type { AgentProcess } from './executor.js';
import { whileBusy } from './leftovers.js';
import { providersOf } from './provider-switch.js';
import { wouldRestartAtOnce } from './evaluation.js';
import { agentEnvironment, startOptions } from './restart.js';
import type { ManagedAgentConfig, Slot } from './slot.js';
import type { SupervisorContext } from './supervisor-context.js';

/** Whether a standing restart may be left for this agent at all (its config and the daemon's). */
function eligible(
  context: SupervisorContext,
  slot: Slot,
  agentConfig: ManagedAgentConfig,
): boolean {
  return (
    context.config.daemon.standing_restarts &&
    !context.dryRun &&
    context.cluster === undefined &&
    agentConfig.isolation.level === 1 &&
    !agentConfig.restore_checkpoint &&
    providersOf(slot) === undefined &&
    !(slot.cell && context.busHub)
  );
}

/**
 * Leaves the launcher a standing order for the agent just started, when the policy would restart
 * it at once (never rejects: an order that cannot be left is logged at debug; restarts then go
 * the usual way).
 */
export async function leaveStandingRestart(
  context: SupervisorContext,
  slot: Slot,
  agentConfig: ManagedAgentConfig,
  started: AgentProcess,
): Promise<void> {
  if (!eligible(context, slot, agentConfig)) return;
  try {
    const nonce = slot.state.next_spawn_nonce;
    if (nonce === undefined || !wouldRestartAtOnce(context, slot)) return;
    const env = await agentEnvironment(
      context,
      slot,
      agentConfig,
      { reason: 'standing restart', attempt: 0, initial: false },
      true,
    );
    const recorded = slot.aheadRecorded ?? Promise.resolve();
    const spec = startOptions(context, slot, agentConfig, { env, nonce, recorded });
    if (slot.process !== started || started.exit) return;
    const stands = await context.executor.standRestart(spec, started);
    context.logger.debug('standing restart', { agent: slot.key, pid: started.pid, stands });
  } catch (error) {
    context.logger.debug('no standing restart left', {
      agent: slot.key,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

/**
 * A standing order started the agent's next process at an exit: once the evaluation of that exit
 * is done (`evaluated`; `undefined`: the exit was not the agent's current process), the process is
 * killed unless a start kept it. No leftover of the agent is judged meanwhile (leftovers.ts): the
 * process carries the next start's nonce, which no start has claimed yet.
 */
export async function settleStandingRestart(
  context: SupervisorContext,
  slot: Slot,
  nonce: string,
  evaluated: Promise<void> | undefined,
): Promise<void> {
  await whileBusy(slot, async () => {
    await evaluated;
    await context.executor.discardPrestarted(nonce, 'the policy did not restart the agent at once');
  });
}
