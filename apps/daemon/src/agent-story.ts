/**
 * An agent's story as the event logs tell it: which logs to read (every cell's `events.jsonl`
 * across its rotations, and further logs such as the daemon's host log), every event about the
 * agent from them, oldest first, and its incidents (cut by ./incidents.ts). Read by `pit why` and
 * the MCP tool `pit_why`. It reads files only and never writes.
 */
import { cellPaths, discoverCells, readEventLog } from '@pit/cell-spec';
import { buildIncidents, type Incident, type StoryEvent } from './incidents.js';

/**
 * Reads every event about `agent` from the given logs, oldest first: its own events, and a
 * cell's `checkpoint_restored` (which names no agent) from the cells it is in.
 */
export async function collectAgentEvents(
  agent: string,
  logs: Array<{ path: string; cell?: string }>,
): Promise<{ events: StoryEvent[]; problems: string[] }> {
  const events: StoryEvent[] = [];
  const problems: string[] = [];
  for (const log of logs) {
    const cellEvents: StoryEvent[] = [];
    let inCell = false;
    for await (const entry of readEventLog(log.path)) {
      if (!entry.ok) {
        problems.push(`${entry.path}:${entry.line}: ${entry.reason}`);
        continue;
      }
      const event: StoryEvent = {
        ...(entry.event as StoryEvent),
        ...(log.cell ? { cell: log.cell } : {}),
      };
      if (event.agent === agent) {
        inCell = true;
        events.push(event);
      } else if (log.cell && entry.known && entry.event.event === 'checkpoint_restored')
        cellEvents.push(event);
    }
    if (inCell) events.push(...cellEvents);
  }
  events.sort((a, b) => a.ts.localeCompare(b.ts));
  return { events, problems };
}

/** An agent's story: its events, its incidents, and what could not be read. */
export interface AgentStory {
  /** Whether anything names the agent: a cell, the config (`configAgents`), or an event. */
  known: boolean;
  events: StoryEvent[];
  /** Every incident, oldest first. */
  incidents: Incident[];
  /** Lines of the logs that could not be read (`path:line: reason`). */
  problems: string[];
}

/**
 * Reads the story of `agent` from every cell's event log under `cellsRoot` and from
 * `extraLogs` (e.g. `<state_dir>/logs/events.jsonl` for agents outside cells).
 * @example
 * const story = await readAgentStory({ cellsRoot, agent: 'forge' });
 * story.incidents.at(-1)?.outcome; // 'revived'
 */
export async function readAgentStory(options: {
  cellsRoot: string;
  agent: string;
  extraLogs?: string[];
  /** Agent names of the config (an agent with no events yet is still known). */
  configAgents?: string[];
}): Promise<AgentStory> {
  const found = await discoverCells(options.cellsRoot);
  const cells = [...found.supervised, ...found.unsupervised];
  const logs: Array<{ path: string; cell?: string }> = [
    ...cells.map((cell) => ({ path: cellPaths(cell.dir).events, cell: cell.uuid })),
    ...(options.extraLogs ?? []).map((path) => ({ path })),
  ];
  const { events, problems } = await collectAgentEvents(options.agent, logs);
  const known =
    events.length > 0 ||
    (options.configAgents ?? []).includes(options.agent) ||
    cells.some((cell) => cell.manifest.agents.some((member) => member.name === options.agent));
  return { known, events, incidents: buildIncidents(events), problems };
}
