import { join } from 'node:path';
import {
  CellStateSchema,
  describeDiscoveryProblem,
  discoverCells,
  readHeartbeat,
  PitError,
  readJsonFile,
  type CellState,
} from '@pit/cell-spec';
import { readApprovals } from './approvals.js';
import { approvalView } from './approval-view.js';
import type { PitConfig } from './config-schema.js';
import { cellAgents, type Refusal } from './discovery.js';
import { readDaemonLock, type LockHolder } from './lock.js';
import { migration, readMembers, type MembersFile } from './membership.js';
import { readProviderMatrix, type ProviderMatrixFile } from './provider-matrix-file.js';
import { readRecordedProvider } from './provider-switch.js';
import { agentStatePath, readAgentStates } from './state-store.js';
import type { AgentStatus, FleetStatus } from './supervisor.js';

/**
 * The fleet's status from what is on disk (cells, the daemon's records in its state directory,
 * heartbeats, approvals), for `pit status` when no daemon runs, and whether one does. It lists
 * the agents a daemon would supervise (an agent added to a cell.json without the operator's
 * grant is a problem, not an agent), and a state file, the approvals file or the members file
 * that cannot be read is a problem naming it (nothing is moved or written: that is the daemon's).
 * The provider matrix is the one the daemon last persisted (`providers.json`), with when it was
 * written and whether the daemon that wrote it still runs (else it is history, not the present).
 * @example
 * const { status, daemon } = await readFleetStatus(config);
 */
export async function readFleetStatus(
  config: PitConfig,
  now: number = Date.now(),
): Promise<{ status: FleetStatus; daemon: LockHolder | undefined }> {
  const discovery = await discoverCells(config.cells.root);
  const problems = discovery.problems.map(describeDiscoveryProblem);
  const damaged = (error: unknown) => {
    problems.push(error instanceof Error ? error.message : String(error));
    return undefined;
  };
  const approvals = (await readApprovals(config.daemon.state_dir).catch(damaged)) ?? [];
  const pending = approvals.filter((approval) => approval.status === 'pending');
  const pendingIds = new Set(pending.map((approval) => approval.id));
  const daemon = await readDaemonLock(config.daemon.state_dir);
  const matrix = await readProviderMatrix(config.daemon.state_dir).catch(damaged);
  const agents: AgentStatus[] = [];
  const toStatus = (
    key: string,
    name: string,
    state: AgentRecord | undefined,
    cell?: { uuid: string; dir: string; mission: string },
  ) =>
    agentStatus(config, now, { key, name, state, pendingIds, matrix, ...(cell ? { cell } : {}) });
  const members = await membersOnDisk(config, discovery, now, problems);
  const refused: Refusal[] = [];
  for (const cell of discovery.supervised) {
    const state = await readAgentStates(config.daemon.state_dir, cell.dir).catch((error) =>
      damaged(
        `${agentStatePath(config.daemon.state_dir, cell.dir)}: ${String(error instanceof Error ? error.message : error).replace(`${agentStatePath(config.daemon.state_dir, cell.dir)}: `, '')} (the daemon keeps it aside and starts this cell's records afresh)`,
      ),
    );
    for (const agent of cellAgents(config, members, cell, refused)) {
      agents.push(
        await toStatus(agent.key, agent.name, state?.agents[agent.name], {
          uuid: cell.uuid,
          dir: cell.dir,
          mission: cell.manifest.mission,
        }),
      );
    }
  }
  for (const refusal of refused)
    problems.push(`${refusal.cell.dir}/cell.json: ${refusal.agent}: ${refusal.reason}`);
  const host = await readJsonFile(
    join(config.daemon.state_dir, 'host-state.json'),
    CellStateSchema,
  ).catch((error: unknown) =>
    PitError.is(error) && error.code === 'CELL_NOT_FOUND' ? undefined : damaged(error),
  );
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
      approvals: pending.map(approvalView),
      problems,
      ...providersPart(matrix, daemon),
    },
    daemon,
  };
}

/** The persisted matrix, live only while the daemon that wrote it holds the state directory. */
function providersPart(
  matrix: ProviderMatrixFile | undefined,
  daemon: LockHolder | undefined,
): Pick<FleetStatus, 'providers' | 'providers_as_of'> {
  if (!matrix) return {};
  const live = daemon !== undefined && daemon.pid === matrix.pid;
  return { providers: matrix.providers, providers_as_of: { written_at: matrix.written_at, live } };
}

/**
 * The members file as a daemon would use it; before any daemon ran (no file), every agent of the
 * cells found now, as its first start would record them. A damaged file grants nothing (a problem).
 */
async function membersOnDisk(
  config: PitConfig,
  discovery: Awaited<ReturnType<typeof discoverCells>>,
  now: number,
  problems: string[],
): Promise<MembersFile> {
  const membership = await readMembers(config.daemon.state_dir);
  if (membership.problem) problems.push(membership.problem);
  if (membership.exists) return membership.members;
  return migration(
    discovery.supervised.map((cell) => ({
      uuid: cell.uuid,
      agents: cell.manifest.agents.map((agent) => agent.name),
    })),
    new Date(now),
  )(membership.members);
}

type AgentRecord = CellState['agents'][string];

/** One agent's status from its record in the state file and its heartbeat. */
async function agentStatus(
  config: PitConfig,
  now: number,
  agent: {
    key: string;
    name: string;
    state: AgentRecord | undefined;
    /** The ids of the requests still waiting for an answer. */
    pendingIds: ReadonlySet<string>;
    /** The persisted provider matrix (an agent's primary's status comes from it). */
    matrix: ProviderMatrixFile | undefined;
    cell?: { uuid: string; dir: string; mission: string };
  },
): Promise<AgentStatus> {
  const { key, name, state, cell } = agent;
  // A dead or stopped agent has no process: the pid of its last one is history.
  const running = state?.health !== 'dead' && !state?.stopped;
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
    ...(state?.pid && running ? { pid: state.pid } : {}),
    revive_attempts: state?.revive_attempts ?? 0,
    restarts: state?.restarts.length ?? 0,
    ...(state?.backoff_until ? { backoff_until: state.backoff_until } : {}),
    ...(state?.pending_approval && agent.pendingIds.has(state.pending_approval)
      ? { pending_approval: state.pending_approval }
      : {}),
    ...(state?.substituted_by ? { substituted_by: state.substituted_by } : {}),
    ...(state?.last_decision ? { last_decision: state.last_decision } : {}),
    failing: [],
    ...(await providerOf(config, agent)),
  };
}

/** An agent's provider and reasons (`primary_dead`, `primary_degraded`) as the daemon would show them. */
async function providerOf(
  config: PitConfig,
  agent: { name: string; matrix: ProviderMatrixFile | undefined; cell?: { uuid: string } },
): Promise<Pick<AgentStatus, 'provider' | 'reasons'>> {
  const declared = config.agents[agent.name];
  const primary = declared?.provider;
  if (!declared || primary === undefined) return {};
  const recorded = await readRecordedProvider(
    config.daemon.state_dir,
    agent.cell?.uuid,
    agent.name,
  );
  const current =
    recorded !== undefined && declared.fallback_providers.includes(recorded) ? recorded : primary;
  const status = agent.matrix?.providers.find((row) => row.provider === primary)?.status;
  return {
    provider: { primary, current, status: status ?? 'unknown' },
    reasons: status === 'dead' || status === 'degraded' ? [`primary_${status}`] : [],
  };
}
