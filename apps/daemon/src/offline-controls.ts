/**
 * Operator controls recorded while no daemon runs (`pit restart|stop|start|reset AGENT` with no
 * daemon): under the state directory's and the cells root's locks (so never beside a daemon or a
 * sweep), the agent's record in the daemon's state files says what the operator wants — stopped
 * (`stopped`), a start or restart to carry out (`requested`), or a reset applied at once — and
 * the `agent_control` event is written with `pending: true`. The next `pit sweep --once` or
 * daemon start honours it (controls.ts's `honourOperatorIntent()`). It signals no process itself.
 */
import { join } from 'node:path';
import { appendEvent, cellPaths, PitError, type OperatorAction } from '@pit/cell-spec';
import { resolveAgentRef } from './agent-ref.js';
import { openApprovalStore } from './approvals.js';
import type { PitConfig } from './config-schema.js';
import type { ControlResult } from './controls.js';
import { readFleetStatus } from './fleet-status.js';
import { acquireDaemonLock } from './lock.js';
import { HOST } from './slot.js';
import { updateAgentRecord } from './state-store.js';

/** Options of {@link recordControlOffline}. */
export interface OfflineControlOptions {
  config: PitConfig;
  /** `name` or `cell/name` (see agent-ref.ts). */
  ref: string;
  action: OperatorAction;
  /** Who asked (the CLI user). */
  by: string;
  reason?: string;
  /** @default Date.now() */
  now?: number;
}

/**
 * Records a control for the next sweep or daemon start. Resolves `locked` when a daemon or a
 * sweep holds the state directory (the caller then goes through the daemon's HTTP API).
 * @throws {DaemonError} DAEMON_LOCKED never (reported as `locked`); {PitError} CELL_* when the state file is damaged or unwritable.
 */
export async function recordControlOffline(
  options: OfflineControlOptions,
): Promise<ControlResult | { ok: false; reason: 'locked'; message: string }> {
  const { config, action, by } = options;
  const at = new Date(options.now ?? Date.now()).toISOString();
  const { status } = await readFleetStatus(config);
  const resolved = resolveAgentRef(options.ref, status.agents);
  if (!resolved.ok) return resolved;
  const agent = status.agents.find((candidate) => candidate.key === resolved.key)!;
  const managed = config.agents[agent.agent]?.argv !== undefined;
  if ((action === 'start' || action === 'restart') && !managed)
    return {
      ok: false,
      reason: 'not_managed',
      message: `${agent.key} has no argv in the config: the Pit does not start it`,
    };
  let lock;
  try {
    lock = await acquireDaemonLock(config.daemon.state_dir, { cellsRoot: config.cells.root });
  } catch (error) {
    if (PitError.is(error) && error.code === 'DAEMON_LOCKED')
      return { ok: false, reason: 'locked', message: error.message };
    throw error;
  }
  try {
    const cellDir = agent.cell ? join(config.cells.root, agent.cell) : undefined;
    await updateAgentRecord({
      stateDir: config.daemon.state_dir,
      scope: cellDir ?? HOST,
      name: agent.agent,
      update: (state) => intend(state, { action, by, at, reason: options.reason }),
    });
    // A reset withdraws a pending request, as the daemon does: it no longer decides the agent.
    if (action === 'reset') await withdrawPending(config.daemon.state_dir, agent.key, options.now);
    const events = cellDir
      ? cellPaths(cellDir).events
      : join(config.daemon.state_dir, 'logs', 'events.jsonl');
    await appendEvent(
      events,
      {
        event: 'agent_control',
        agent: agent.agent,
        action,
        by,
        via: 'cli',
        ...(options.reason ? { reason: options.reason } : {}),
        ...(action === 'reset' ? {} : { pending: true }),
      },
      cellDir ? { beneath: cellDir } : {},
    );
  } finally {
    await lock.release();
  }
  return { ok: true, key: agent.key, action, message: describeIntent(agent.key, action) };
}

async function withdrawPending(stateDir: string, key: string, now?: number): Promise<void> {
  const approvals = await openApprovalStore({ stateDir });
  try {
    const pending = approvals.latest(key);
    if (pending?.status === 'pending') await approvals.cancel(pending.id, now ?? Date.now());
  } finally {
    await approvals.close();
  }
}

/** The record with the operator's intent applied. */
function intend(
  state: Parameters<Parameters<typeof updateAgentRecord>[0]['update']>[0],
  intent: { action: OperatorAction; by: string; at: string; reason: string | undefined },
) {
  const { action, by, at, reason } = intent;
  switch (action) {
    case 'stop':
      return {
        ...state,
        stopped: { at, by, ...(reason ? { reason } : {}) },
        requested: undefined,
        backoff_until: undefined,
      };
    case 'start':
    case 'restart':
      return { ...state, stopped: undefined, requested: { action, at, by } };
    case 'reset':
      return {
        ...state,
        backoff_until: undefined,
        restarts: [],
        revive_attempts: 0,
        last_decision: undefined,
        pending_approval: undefined,
        ...(state.health === 'dead' ? { first_dead_at: at } : {}),
      };
  }
}

function describeIntent(key: string, action: OperatorAction): string {
  const next = 'the next `pit sweep --once` or daemon start';
  switch (action) {
    case 'stop':
      return `recorded: ${key} is stopped; ${next} stops it if it runs, and nothing starts it until \`pit start\``;
    case 'start':
      return `recorded: ${next} starts ${key}`;
    case 'restart':
      return `recorded: ${next} restarts ${key}`;
    case 'reset':
      return `reset ${key}: backoff, restart budget and escalation cleared; ${next} decides afresh`;
  }
}
