/**
 * What the fleet looks like now, for `GET /api/status`, `pit status` and the dashboard: each
 * cell, each agent's health, heartbeat age, process, restarts, backoff, pending approval and
 * failing probes, and the problems discovery found. It reads only.
 */
import { readHeartbeat } from '@pit/cell-spec';
import { approvalView } from './approval-view.js';
import { providerStatusOf } from './provider-gate.js';
import { configOf, type Slot } from './slot.js';
import type { AgentStatus, FleetStatus } from './supervisor-api.js';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** The fleet's status now. */
export async function fleetStatus(
  context: SupervisorContext,
  problems: string[],
): Promise<FleetStatus> {
  const cells = new Map<string, FleetStatus['cells'][number]>();
  const agents: AgentStatus[] = [];
  for (const slot of context.fleet.slots.values()) {
    if (slot.cell && !cells.has(slot.cell.uuid)) {
      const manifest = slot.cell.manifest;
      cells.set(slot.cell.uuid, {
        uuid: manifest.uuid,
        ...(manifest.name ? { name: manifest.name } : {}),
        mission: manifest.mission,
        status: manifest.status,
        agents: manifest.agents.map((agent) => agent.name),
      });
    }
    agents.push(await agentStatus(context, slot));
  }
  agents.sort((a, b) => a.key.localeCompare(b.key));
  return {
    generated_at: iso(context.now()),
    cells: [...cells.values()],
    agents,
    approvals: context.approvals.list('pending').map(approvalView),
    problems,
    ...(context.cluster ? { cluster: await context.cluster.view() } : {}),
    providers: context.providers.matrix(),
  };
}

async function agentStatus(context: SupervisorContext, slot: Slot): Promise<AgentStatus> {
  let heartbeatAge: number | undefined;
  if (slot.cell) {
    const beat = await readHeartbeat(slot.cell.dir, slot.name).catch(() => undefined);
    if (beat) heartbeatAge = Math.round((context.now() / 1000 - beat.timestamp) * 10) / 10;
  }
  const { state } = slot;
  return {
    key: slot.key,
    agent: slot.name,
    ...(slot.cell ? { cell: slot.cell.uuid, mission: slot.cell.manifest.mission } : {}),
    host: configOf(slot)?.host ?? 'local',
    // Not proved yet (no heartbeat of this incarnation, in its grace): starting, not its old verdict.
    health: state.stopped
      ? 'stopped'
      : state.health === 'unknown' && slot.process && !slot.process.exit
        ? 'starting'
        : state.health,
    ...(state.since ? { since: state.since } : {}),
    ...(state.first_dead_at ? { first_dead_at: state.first_dead_at } : {}),
    ...(heartbeatAge !== undefined ? { heartbeat_age_s: heartbeatAge } : {}),
    ...(slot.process && !slot.process.exit ? { pid: slot.process.pid } : {}),
    revive_attempts: state.revive_attempts,
    restarts: state.restarts.length,
    ...(state.backoff_until ? { backoff_until: state.backoff_until } : {}),
    // Only a request still waiting for an answer (a denied or expired one is history: `pit why`).
    ...(state.pending_approval &&
    context.approvals.get(state.pending_approval)?.status === 'pending'
      ? { pending_approval: state.pending_approval }
      : {}),
    ...(state.substituted_by ? { substituted_by: state.substituted_by } : {}),
    ...(state.last_decision ? { last_decision: state.last_decision } : {}),
    failing: context.assessor.get(slot.key)?.failing ?? [],
    ...(slot.incarnation ? { owner: slot.incarnation } : {}),
    ...providerStatusOf(context, slot),
  };
}
