import { join } from 'node:path';
import { assertAgentName, assertCellUuid } from './agent-name.js';

/** The production cells root. */
export const PRODUCTION_CELLS_ROOT = '/var/missions';
/** The cells root used when none is configured, relative to the working directory. */
export const DEFAULT_CELLS_ROOT = '.pit/missions';

/** Every path of a cell's on-disk layout (ARCHITECTURE.md "The mission cell"). */
export interface CellPaths {
  dir: string;
  manifest: string;
  workspace: string;
  logs: string;
  events: string;
  checkpoints: string;
  bus: string;
  busInbox: string;
  lazarus: string;
  heartbeats: string;
  state: string;
  /** `logs/<agent>.log` (its stdout; stdout and stderr with `merge_stderr`). @throws {CellError} CELL_BAD_NAME for an invalid agent name. */
  agentLog(agent: string): string;
  /** `logs/<agent>.err.log` (its stderr, unless merged into `agentLog`). @throws {CellError} CELL_BAD_NAME for an invalid agent name. */
  agentErrorLog(agent: string): string;
  /** `.lazarus/heartbeats/<agent>.json`. @throws {CellError} CELL_BAD_NAME for an invalid agent name. */
  heartbeat(agent: string): string;
  /** `bus/inbox/<agent>/`. @throws {CellError} CELL_BAD_NAME for an invalid agent name. */
  inbox(agent: string): string;
}

/**
 * The layout of one cell directory. Pass the cell directory, or the cells root and a uuid.
 * @example
 * const paths = cellPaths('/var/missions', uuid);
 * await appendEvent(paths.events, { event: 'cell_frozen', from: 'active' });
 */
export function cellPaths(dirOrRoot: string, uuid?: string): CellPaths {
  const dir = uuid === undefined ? dirOrRoot : join(dirOrRoot, assertCellUuid(uuid));
  const lazarus = join(dir, '.lazarus');
  const heartbeats = join(lazarus, 'heartbeats');
  const logs = join(dir, 'logs');
  const busInbox = join(dir, 'bus', 'inbox');
  return {
    dir,
    manifest: join(dir, 'cell.json'),
    workspace: join(dir, 'workspace'),
    logs,
    events: join(logs, 'events.jsonl'),
    checkpoints: join(dir, 'checkpoints'),
    bus: join(dir, 'bus'),
    busInbox,
    lazarus,
    heartbeats,
    state: join(lazarus, 'state.json'),
    agentLog: (agent) => join(logs, `${assertAgentName(agent)}.log`),
    agentErrorLog: (agent) => join(logs, `${assertAgentName(agent)}.err.log`),
    heartbeat: (agent) => heartbeatPath(dir, agent),
    inbox: (agent) => join(busInbox, assertAgentName(agent)),
  };
}

/**
 * `.lazarus/heartbeats/<agent>.json` of the cell at `cellDir`: `cellPaths(cellDir).heartbeat(agent)`
 * without building the cell's other paths (a probe asks for it on every run).
 * @throws {CellError} CELL_BAD_NAME for an invalid agent name.
 */
export function heartbeatPath(cellDir: string, agent: string): string {
  return join(cellDir, '.lazarus', 'heartbeats', `${assertAgentName(agent)}.json`);
}
