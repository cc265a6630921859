/**
 * `pit why AGENT`: reads the agent's events from every cell's log and the daemon's host log
 * (each across its rotations: `events.N.jsonl` … `events.jsonl`, oldest first), and prints its last incidents (cut and told by `../incidents.ts`).
 */
import { assertAgentName, cellPaths, discoverCells, readEventLog } from '@pit/cell-spec';
import { EXIT } from '../exit-codes.js';
import { buildIncidents, describeEvent, type StoryEvent } from '../incidents.js';
import type { Output } from '../output.js';

export { buildIncidents, describeEvent, type Incident } from '../incidents.js';

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

/** `pit why AGENT [--json] [--all]`: the story of the agent's last incidents, from the event logs. */
export async function why(
  context: { cellsRoot: string; output: Output; extraLogs?: string[]; configAgents?: string[] },
  agent: string,
  options: { json?: boolean; last?: string },
): Promise<number> {
  assertAgentName(agent, 'AGENT');
  const found = await discoverCells(context.cellsRoot);
  const logs: Array<{ path: string; cell?: string }> = [
    ...[...found.supervised, ...found.unsupervised].map((cell) => ({
      path: cellPaths(cell.dir).events,
      cell: cell.uuid,
    })),
    ...(context.extraLogs ?? []).map((path) => ({ path })),
  ];
  const { events, problems } = await collectAgentEvents(agent, logs);
  const known =
    events.length > 0 ||
    (context.configAgents ?? []).includes(agent) ||
    [...found.supervised, ...found.unsupervised].some((cell) =>
      cell.manifest.agents.some((member) => member.name === agent),
    );
  if (!known) {
    context.output.err(
      `pit: why: no agent named ${agent}: it is in no cell under ${context.cellsRoot}, not in the config, and no event log names it (pit status lists the agents)`,
    );
    return EXIT.usage;
  }
  const last = options.last === undefined ? 3 : Number(options.last);
  const incidents = buildIncidents(events).slice(-Math.max(1, last));
  if (options.json) {
    context.output.out(JSON.stringify({ agent, incidents, problems }, null, 2));
    return EXIT.ok;
  }
  if (incidents.length === 0) {
    context.output.out(
      `${agent}: no incidents in the event logs${events.length ? ` (${events.length} events, none of them a death)` : ''}`,
    );
  }
  for (const incident of incidents) {
    context.output.out(
      `\n${agent}${incident.cell ? ` in cell ${incident.cell}` : ''}: incident at ${incident.started} — ${incident.outcome}`,
    );
    for (const event of incident.events)
      context.output.out(`  ${event.ts}  ${describeEvent(event)}`);
  }
  for (const problem of problems) context.output.err(`warning: ${problem}`);
  return EXIT.ok;
}
