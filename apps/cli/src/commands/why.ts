/**
 * `pit why AGENT`: reads the agent's events from every cell's log and the daemon's host log
 * (each across its rotations: `events.N.jsonl` … `events.jsonl`, oldest first), and prints its
 * last incidents (read by `readAgentStory()` of @pit/daemon, cut and told by its incidents.ts).
 */
import { assertAgentName } from '@pit/cell-spec';
import { describeEvent, readAgentStory } from '@pit/daemon';
import { EXIT } from '../exit-codes.js';
import type { Output } from '../output.js';

export { buildIncidents, collectAgentEvents, describeEvent, type Incident } from '@pit/daemon';

/** `pit why AGENT [--json] [--all]`: the story of the agent's last incidents, from the event logs. */
export async function why(
  context: { cellsRoot: string; output: Output; extraLogs?: string[]; configAgents?: string[] },
  agent: string,
  options: { json?: boolean; last?: string },
): Promise<number> {
  assertAgentName(agent, 'AGENT');
  const {
    known,
    events,
    incidents: all,
    problems,
  } = await readAgentStory({
    cellsRoot: context.cellsRoot,
    agent,
    ...(context.extraLogs ? { extraLogs: context.extraLogs } : {}),
    ...(context.configAgents ? { configAgents: context.configAgents } : {}),
  });
  if (!known) {
    context.output.err(
      `pit: why: no agent named ${agent}: it is in no cell under ${context.cellsRoot}, not in the config, and no event log names it (pit status lists the agents)`,
    );
    return EXIT.usage;
  }
  const last = options.last === undefined ? 3 : Number(options.last);
  const incidents = all.slice(-Math.max(1, last));
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
