/**
 * Starting agents: the first start, a restart after a death (with the config rolled back to last
 * known good and the workspace restored from a checkpoint when the decision and config say so),
 * stopping an agent, and watching the process the Pit started or adopted until it exits. Only
 * managed agents (slot.ts) are started; the executor does the spawning.
 */
import { isAbsolute, join, relative } from 'node:path';
import { composeAgentEnv } from './agent-env.js';
import { probesOf, reportEnded, trackAgent } from './agent-probes.js';
import { canonicalOf } from './config-snapshots.js';
import { restoreBeforeRevive } from './checkpoint-store.js';
import { newSpawnNonce, type AgentProcess, type StartAgentOptions } from './executor.js';
import { applyProviderFiles } from './provider-switch.js';
import { reapLeftoversSoon, whileBusy } from './leftovers.js';
import { leaveStandingRestart, settleStandingRestart } from './standing-restart.js';
import {
  configOf,
  hiddenFromAgent,
  ownHome,
  resolveAgentPath,
  slotLogPaths,
  type ManagedAgentConfig,
  type Slot,
} from './slot.js';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** Why an agent is started. */
export interface StartReason {
  reason: string;
  /** The revive attempt this start is (0 for a first start). */
  attempt: number;
  /** A first start (not a restart: no restart counted). */
  initial: boolean;
  /** More environment (a substitute's handoff). */
  env?: Record<string, string>;
  /** Files in the cell were rewritten as the daemon's user (a config rollback): see `reownWorkspace`. */
  reown?: boolean;
}

/** The moment an agent is restarted after a death: roll back, restore, start again. */
export async function restartAgent(
  context: SupervisorContext,
  slot: Slot,
  how: { rollback: boolean; reason: string; attempt: number },
): Promise<void> {
  const supervision = slot.supervision;
  if (supervision.mode !== 'managed') {
    const agentConfig = supervision.config;
    await context.events.agentEvent(slot, {
      event: 'revive_failed',
      reason: agentConfig?.argv
        ? `${slot.name} runs on ${agentConfig.host}: cannot restart it from here`
        : `no argv configured for ${slot.name}: cannot restart it`,
    });
    return;
  }
  if (context.dryRun) {
    context.logger.info('dry run: would restart', { agent: slot.key, rollback: how.rollback });
    return;
  }
  const rolledBack = how.rollback && (await rollBackConfig(context, slot, how.reason));
  // After the rollback (which restores the primary's last known good): the provider's files.
  await applyProviderFiles(context, slot);
  // A restore replaces the workspace directory (the executor hands a new one over whole).
  if (supervision.config.restore_checkpoint && slot.cell) await restoreBeforeRevive(context, slot);
  await startAgent(context, slot, supervision.config, {
    reason: how.reason,
    attempt: how.attempt,
    initial: false,
    ...(rolledBack ? { reown: true } : {}),
  });
}

/**
 * The moment an agent's config is rolled back to last known good (or its canonical version).
 * @returns whether files were rewritten.
 */
export async function rollBackConfig(
  context: SupervisorContext,
  slot: Slot,
  reason: string,
): Promise<boolean> {
  if ((configOf(slot)?.config_files ?? []).length === 0) return false;
  try {
    const canonical = canonicalOf(context, slot);
    const result = await context.snapshots.rollback(slot.name, {
      reason,
      ...(canonical ? { canonical } : {}),
    });
    if (result.status === 'rolled_back') {
      context.metrics.rollbacksTotal.inc({ agent: slot.name });
      await context.events.agentEvent(slot, {
        event: 'config_rolled_back',
        files: result.files,
        reason,
        source: result.source,
        ...(result.set ? { set: result.set } : {}),
      });
      context.logger.info('config rolled back', { agent: slot.key, files: result.files });
      return true;
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    context.logger.warn('config rollback failed; restarting anyway', {
      agent: slot.key,
      error: message,
    });
    await context.events.agentEvent(slot, { event: 'rollback_failed', reason: message });
  }
  return false;
}

/**
 * Starts the agent's process (stopping a live one first) and watches it. The start's nonce
 * (`PIT_SPAWN`) is saved in the agent's record before the process exists, so that a daemon
 * killed before its pid is saved adopts that process, and only it; what the previous process
 * left behind is killed as leftovers.
 */
export async function startAgent(
  context: SupervisorContext,
  slot: Slot,
  agentConfig: ManagedAgentConfig,
  why: StartReason,
): Promise<void> {
  // One start of an agent at a time. Two requests can meet (a revive the cluster could not grant
  // yet, retried, and the next evaluation's revive): run together, both claims won and two
  // processes were spawned, the first killed as the second's leftover at best.
  const asked = slot.process;
  const run = (starting.get(slot) ?? Promise.resolve()).then(async () => {
    // Another process was started (or adopted) since this start was asked for, and lives: met.
    if (slot.process !== asked && slot.process && !slot.process.exit) return;
    await whileBusy(slot, () => startMarked(context, slot, agentConfig, why));
  });
  const settled = run.catch(() => undefined);
  starting.set(slot, settled);
  try {
    await run;
  } finally {
    if (starting.get(slot) === settled) starting.delete(slot);
    reapLeftoversSoon(context);
  }
}

/** The start of each agent in progress (settled, never rejecting), which a new one waits for. */
const starting = new WeakMap<Slot, Promise<void>>();

async function startMarked(
  context: SupervisorContext,
  slot: Slot,
  agentConfig: ManagedAgentConfig,
  why: StartReason,
): Promise<void> {
  if (slot.process && !slot.process.exit) await stopAgent(context, slot);
  const claimed = await claimStart(context, slot);
  if (claimed === 'retry') return retryStart(context, slot, agentConfig, why);
  if (!claimed) return;
  const env = { ...(await agentEnvironment(context, slot, agentConfig, why)), ...claimed.env };
  const at = context.now();
  if (!why.initial) {
    slot.state.restarts = [...slot.state.restarts, iso(at)].slice(-50);
    context.store.recordRestart(at);
    context.fleet.changed();
  }
  const { nonce, recorded } = recordStart(context, slot);
  try {
    const started = await context.executor.start(
      startOptions(context, slot, agentConfig, { env, nonce, recorded, reown: why.reown }),
    );
    watchProcess(context, slot, started);
    // The next start's nonce, recorded with this start's pid.
    slot.state.next_spawn_nonce = newSpawnNonce();
    slot.aheadRecorded = context.store.save(slot.key);
    void leaveStandingRestart(context, slot, agentConfig, started);
    // argv may carry secrets an operator wrote inline: the logger redacts them (config-safety.ts).
    context.logger.info('agent process started', {
      agent: slot.key,
      pid: started.pid,
      argv: agentConfig.argv,
    });
    slot.state.revive_attempts = why.attempt;
    slot.state.backoff_until = undefined;
    slot.state.health = 'unknown';
    slot.state.since = iso(at);
    context.fleet.changed();
    trackAgent(context, slot, { startedAt: at, probes: probesOf(context, slot) });
    context.metrics.restartsTotal.inc({ agent: slot.name });
    void context.events.agentEvent(
      slot,
      why.initial
        ? {
            event: 'agent_started',
            pid: started.pid,
            level: agentConfig.isolation.level,
            ...(claimed.takenOverFrom ? { taken_over_from: claimed.takenOverFrom } : {}),
          }
        : {
            event: 'agent_revived',
            pid: started.pid,
            attempt: why.attempt,
            reason: why.reason,
            ...(claimed.takenOverFrom ? { taken_over_from: claimed.takenOverFrom } : {}),
          },
    );
    if (context.scheduler?.has(slot.key)) context.scheduler.trigger(slot.key);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    context.logger.error('agent failed to start', { agent: slot.key, error: message });
    slot.exit = { code: null, signal: null, at: new Date(at), how: 'vanished' };
    reportEnded(context, slot);
    await context.events.agentEvent(slot, { event: 'revive_failed', reason: message });
  }
}

/** What the executor is asked to start for the agent (its config, its cell, this start's nonce and environment). */
export function startOptions(
  context: SupervisorContext,
  slot: Slot,
  agentConfig: ManagedAgentConfig,
  start: {
    env: Record<string, string>;
    nonce: string;
    recorded: Promise<unknown>;
    reown?: boolean;
  },
): StartAgentOptions {
  const home = ownHome(slot);
  return {
    agent: slot.name,
    argv: agentConfig.argv,
    env: start.env,
    nonce: start.nonce,
    recorded: start.recorded,
    ...placeOf(context, slot, agentConfig),
    isolation: agentConfig.isolation,
    hiddenPaths: hiddenFromAgent(context.config, context.stateDir, slot.name),
    ...(home ? { home } : {}),
    ...(start.reown ? { reownWorkspace: true } : {}),
    workspaceFiles: workspaceFilesOf(context, slot, agentConfig),
  };
}

/**
 * The start's nonce, on disk before the process exists: recorded ahead of time with the last
 * start (`next_spawn_nonce`: nothing to write before this fork), else recorded now, with no pid
 * until the process exists (the fork waits for `recorded`; the start is prepared meanwhile).
 */
function recordStart(
  context: SupervisorContext,
  slot: Slot,
): { nonce: string; recorded: Promise<void> } {
  const ahead = slot.state.next_spawn_nonce;
  if (ahead !== undefined)
    return { nonce: ahead, recorded: slot.aheadRecorded ?? Promise.resolve() };
  const nonce = newSpawnNonce();
  slot.state.spawn_nonce = nonce;
  slot.state.pid = undefined;
  slot.state.pid_start_time = undefined;
  return { nonce, recorded: context.store.save(slot.key) };
}

/**
 * In a cluster, the claim that fences this start (cluster/cluster-member.ts): the epoch it wins
 * goes to the agent (`PIT_EPOCH`, `PIT_HOST`) and into every event of this incarnation. A claim
 * that loses is recorded and nothing starts. Alone, every start goes ahead.
 */
async function claimStart(
  context: SupervisorContext,
  slot: Slot,
): Promise<{ env: Record<string, string>; takenOverFrom?: string } | 'retry' | undefined> {
  const cluster = context.cluster;
  if (!cluster) return { env: {} };
  const claim = await cluster.claimForStart(slot.key);
  if (!claim.ok) {
    slot.incarnation = undefined;
    // Recorded once per reason, not at every retry.
    if (slot.refused !== claim.reason) {
      slot.refused = claim.reason;
      context.logger.warn('cluster: not starting an agent: its claim was refused', {
        agent: slot.key,
        reason: claim.reason,
        message: claim.message,
      });
      await context.events.agentEvent(slot, {
        event: 'start_refused',
        reason: claim.reason,
        message: claim.message,
        ...(claim.owner ? { owner_host: claim.owner.host, owner_epoch: claim.owner.epoch } : {}),
      });
    }
    // Another host owns it: this one lets it go. NATS silent or this host fenced: the same start
    // is tried again (no restart counted) until the cluster answers.
    if (claim.reason === 'owned' || claim.reason === 'lost') {
      void context.sync('loop');
      return undefined;
    }
    return 'retry';
  }
  slot.refused = undefined;
  slot.incarnation = { host: cluster.hostId, epoch: claim.epoch };
  const env = { PIT_EPOCH: String(claim.epoch), PIT_HOST: cluster.hostId };
  const from = cluster.takenOverFrom(slot.key);
  return from ? { env, takenOverFrom: from } : { env };
}

/** Tries a start the cluster could not grant again in a second, while the agent is still this host's and not running. */
function retryStart(
  context: SupervisorContext,
  slot: Slot,
  agentConfig: ManagedAgentConfig,
  why: StartReason,
): void {
  setTimeout(() => {
    if (context.stopped || context.fleet.slots.get(slot.key) !== slot) return;
    if (slot.process && !slot.process.exit) return;
    void startAgent(context, slot, agentConfig, why);
  }, 1000).unref();
}

/**
 * The agent's environment: its config's (with `env_from` secrets), its mission bus credentials,
 * `extra`. `env_from` names missing from the daemon's environment are warned about unless
 * `quiet` (a standing order composes the environment of a start that already warned).
 */
export async function agentEnvironment(
  context: SupervisorContext,
  slot: Slot,
  agentConfig: ManagedAgentConfig,
  why: StartReason,
  quiet = false,
): Promise<Record<string, string>> {
  const composed = composeAgentEnv(agentConfig, context.env);
  let busEnv: Record<string, string> = {};
  if (slot.cell && context.busHub) {
    busEnv = await context.busHub
      .credentials(slot.cell.dir, slot.name, context.config.bus.participants[slot.name])
      .catch((error: unknown) => {
        context.logger.error('cannot register the agent on its mission bus', {
          agent: slot.key,
          error: error instanceof Error ? error.message : String(error),
        });
        return {};
      });
  }
  if (composed.missing.length > 0 && !quiet) {
    context.logger.warn('env_from variables not set in the daemon environment', {
      agent: slot.key,
      missing: composed.missing,
    });
  }
  return { ...composed.env, ...busEnv, ...why.env };
}

/** The moment an agent is stopped: SIGTERM to its group, SIGKILL after its stop grace. */
export async function stopAgent(context: SupervisorContext, slot: Slot): Promise<void> {
  const agentProcess = slot.process;
  if (!agentProcess || agentProcess.exit) return;
  await context.executor.stop(agentProcess, {
    graceMs: (configOf(slot)?.stop_grace_s ?? 10) * 1000,
  });
}

/** Watches a process the Pit started or adopted: its exit is evaluated at once. */
export function watchProcess(
  context: SupervisorContext,
  slot: Slot,
  agentProcess: AgentProcess,
): void {
  slot.process = agentProcess;
  slot.exit = undefined;
  slot.state.pid = agentProcess.pid;
  slot.state.pid_start_time = agentProcess.startTime;
  slot.state.spawn_nonce = agentProcess.nonce;
  // In a cluster the fence kills it when this host's lease is no longer safe.
  context.cluster?.started({
    key: slot.key,
    pid: agentProcess.pid,
    startTime: agentProcess.startTime,
    ...(context.cgroupOf ? { cgroup: context.cgroupOf(slot.cell?.uuid, slot.name) } : {}),
  });
  void agentProcess.exited.then((exit) => {
    // Whatever it forked goes with it, including children that left its group and session.
    reapLeftoversSoon(context);
    if (slot.process !== agentProcess) {
      if (exit.prestarted) void settleStandingRestart(context, slot, exit.prestarted, undefined);
      return;
    }
    context.cluster?.ended(slot.key);
    slot.exit = exit;
    reportEnded(context, slot);
    context.logger.warn('agent process exited', {
      agent: slot.key,
      pid: agentProcess.pid,
      code: exit.code,
      signal: exit.signal,
      how: exit.how,
    });
    if (context.scheduler?.has(slot.key)) {
      try {
        context.scheduler.trigger(slot.key);
      } catch {
        // unscheduled meanwhile
      }
    }
    const evaluated = context.evaluateSoon(slot);
    if (exit.prestarted) void settleStandingRestart(context, slot, exit.prestarted, evaluated);
  });
}

/**
 * The agent's config and provider files that lie in its cell's `workspace/` (relative to it):
 * rewritten as the daemon's user by a rollback or a provider switch (the daemon's or `pit
 * rollback`'s), they are handed to a root daemon's level-2 sandbox uid at every start.
 */
function workspaceFilesOf(
  context: SupervisorContext,
  slot: Slot,
  agentConfig: ManagedAgentConfig,
): string[] {
  if (!slot.cell) return [];
  const workspace = join(slot.cell.dir, 'workspace');
  return [...(agentConfig.config_files ?? []), ...(agentConfig.provider_files ?? [])]
    .map((file) => relative(workspace, resolveAgentPath(slot, file.path, context.stateDir)))
    .filter((path) => path !== '' && !path.startsWith('..') && !isAbsolute(path));
}

/** Where the agent runs and writes: its cell (and whether its stderr is merged), or outside cells its working directory and logs. */
function placeOf(
  context: SupervisorContext,
  slot: Slot,
  agentConfig: ManagedAgentConfig,
): Pick<StartAgentOptions, 'cell' | 'cwd' | 'logPath' | 'errorLogPath' | 'mergeStderr'> {
  const logs = slotLogPaths(context, slot);
  if (slot.cell)
    return {
      cell: { uuid: slot.cell.uuid, dir: slot.cell.dir },
      mergeStderr: logs.stderr === undefined,
    };
  return {
    cwd: agentConfig.cwd ?? context.stateDir,
    logPath: logs.stdout,
    ...(logs.stderr !== undefined ? { errorLogPath: logs.stderr } : {}),
  };
}
