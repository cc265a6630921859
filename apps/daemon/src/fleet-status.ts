import { join } from 'node:path';
import {
  CellStateSchema,
  describeDiscoveryProblem,
  discoverCells,
  readHeartbeat,
  readJsonFile,
  type CellState,
} from '@pit/cell-spec';
import { readApprovals } from './approvals.js';
import type { PitConfig } from './config-schema.js';
import { readDaemonLock, type LockHolder } from './lock.js';
import { readAgentStates } from './state-store.js';
import type { AgentStatus, FleetStatus } from './supervisor.js';

/**
 * The fleet's status from what is on disk (cells, the daemon's records in its state directory,
 * heartbeats,
 * approvals), for `pit status` when no daemon runs, and whether one does.
 * @example
 * const { status, daemon } = await readFleetStatus(config);
 */
export async function readFleetStatus(
  config: PitConfig,
  now: number = Date.now(),
): Promise<{ status: FleetStatus; daemon: LockHolder | undefined }> {
  const discovery = await discoverCells(config.cells.root);
  const approvals = await readApprovals(config.daemon.state_dir).catch(() => []);
  const agents: AgentStatus[] = [];
  const toStatus = async (
    key: string,
    name: string,
    state: CellState['agents'][string] | undefined,
    cell?: { uuid: string; dir: string; mission: string },
  ): Promise<AgentStatus> => {
    const beat = cell ? await readHeartbeat(cell.dir, name).catch(() => undefined) : undefined;
    return {
      key,
      agent: name,
      ...(cell ? { cell: cell.uuid, mission: cell.mission } : {}),
      host: config.agents[name]?.host ?? 'local',
      // A recorded process with no verdict yet (no heartbeat of this incarnation): starting.
      health: state?.stopped
        ? 'stopped'
        : state?.health === 'unknown' && state.pid
          ? 'starting'
          : (state?.health ?? 'unknown'),
      ...(state?.since ? { since: state.since } : {}),
      ...(state?.first_dead_at ? { first_dead_at: state.first_dead_at } : {}),
      ...(beat ? { heartbeat_age_s: Math.round((now / 1000 - beat.timestamp) * 10) / 10 } : {}),
      ...(state?.pid ? { pid: state.pid } : {}),
      revive_attempts: state?.revive_attempts ?? 0,
      restarts: state?.restarts.length ?? 0,
      ...(state?.backoff_until ? { backoff_until: state.backoff_until } : {}),
      ...(state?.pending_approval ? { pending_approval: state.pending_approval } : {}),
      ...(state?.substituted_by ? { substituted_by: state.substituted_by } : {}),
      ...(state?.last_decision ? { last_decision: state.last_decision } : {}),
      failing: [],
    };
  };
  for (const cell of discovery.supervised) {
    const state = await readAgentStates(config.daemon.state_dir, cell.dir).catch(() => undefined);
    for (const agent of cell.manifest.agents) {
      agents.push(
        await toStatus(`${cell.uuid}/${agent.name}`, agent.name, state?.agents[agent.name], {
          uuid: cell.uuid,
          dir: cell.dir,
          mission: cell.manifest.mission,
        }),
      );
    }
  }
  const host = await readJsonFile(
    join(config.daemon.state_dir, 'host-state.json'),
    CellStateSchema,
  ).catch(() => undefined);
  for (const [name, agent] of Object.entries(config.agents)) {
    if (agent.cell === 'none')
      agents.push(await toStatus(`host/${name}`, name, host?.agents[name]));
  }
  return {
    status: {
      generated_at: new Date(now).toISOString(),
      cells: discovery.supervised.map((cell) => ({
        uuid: cell.uuid,
        ...(cell.manifest.name ? { name: cell.manifest.name } : {}),
        mission: cell.manifest.mission,
        status: cell.manifest.status,
        agents: cell.manifest.agents.map((agent) => agent.name),
      })),
      agents,
      approvals: approvals.filter((approval) => approval.status === 'pending'),
      problems: discovery.problems.map(describeDiscoveryProblem),
    },
    daemon: await readDaemonLock(config.daemon.state_dir),
  };
}
