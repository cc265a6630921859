import { existsSync } from 'node:fs';
import {
  assertAgentName,
  cellPaths,
  discoverCells,
  readEvents,
  type AnyCellEvent,
} from '@pit/cell-spec';
import { EXIT } from '../exit-codes.js';
import type { Output } from '../output.js';

/** One incident of an agent: from a death (or a decision) to its outcome. */
export interface Incident {
  cell?: string;
  started: string;
  events: AnyCellEvent[];
  outcome: 'revived' | 'recovered' | 'substituted' | 'denied' | 'pending' | 'open';
}

const OUTCOMES: Record<string, Incident['outcome']> = {
  agent_revived: 'revived',
  agent_healthy: 'recovered',
  agent_substituted: 'substituted',
  revive_denied: 'denied',
};

/** Event kinds that belong to an agent's incident story (heartbeats do not). */
const STORY = new Set([
  'agent_dead',
  'agent_degraded',
  'decision',
  'revive_requested',
  'revive_approved',
  'revive_denied',
  'config_rolled_back',
  'agent_revived',
  'revive_failed',
  'agent_substituted',
  'agent_healthy',
  'checkpoint_restored',
  'issue_opened',
  'issue_closed',
  'alert_sent',
]);

/**
 * Splits an agent's events into incidents: each starts at `agent_dead` and runs until it is
 * revived, recovers, is substituted or denied. Pure: the log is the only source.
 */
export function buildIncidents(events: Array<AnyCellEvent & { cell?: string }>): Incident[] {
  const incidents: Incident[] = [];
  let current: Incident | undefined;
  for (const event of events) {
    if (!STORY.has(event.event)) continue;
    if (event.event === 'agent_dead' || !current) {
      if (event.event === 'agent_healthy' && !current) continue; // healthy with no incident open: nothing to tell
      current = {
        ...(event.cell ? { cell: event.cell } : {}),
        started: event.ts,
        events: [],
        outcome: 'open',
      };
      incidents.push(current);
    }
    current.events.push(event);
    if (event.event === 'revive_requested') current.outcome = 'pending';
    const outcome = OUTCOMES[event.event];
    if (outcome) {
      current.outcome = outcome;
      if (outcome !== 'denied') current = undefined;
    }
  }
  return incidents;
}

/** Renders one event of a story as a line a person reads. */
export function describeEvent(event: AnyCellEvent): string {
  const e = event as AnyCellEvent & Record<string, unknown>;
  const str = (key: string) =>
    typeof e[key] === 'string' || typeof e[key] === 'number' ? String(e[key]) : undefined;
  switch (event.event) {
    case 'agent_dead': {
      const probes = Array.isArray(e.probes)
        ? ` [${(e.probes as Array<Record<string, unknown>>).map((p) => `${String(p.kind ?? p.name ?? 'probe')}: ${p.ok ? 'ok' : 'FAIL'}${p.detail ? ` (${String(p.detail)})` : ''}`).join('; ')}]`
        : '';
      return `dead: ${str('reason') ?? 'unknown reason'}${str('failure_class') ? ` (class ${str('failure_class')})` : ''}${probes}`;
    }
    case 'agent_degraded':
      return `degraded: ${str('reason') ?? ''}`;
    case 'decision':
      return `decided ${str('action')}: ${str('reason')}${str('rule') ? ` [rule ${str('rule')}]` : ''}`;
    case 'revive_requested':
      return `approval requested${str('approval_id') ? ` (${str('approval_id')})` : ''}${str('expires_at') ? `, expires ${str('expires_at')}` : ''}`;
    case 'revive_approved':
      return `approved by ${str('by') ?? 'unknown'} via ${str('channel') ?? 'unknown channel'}`;
    case 'revive_denied':
      return `denied by ${str('by') ?? 'unknown'} via ${str('channel') ?? 'unknown channel'}${str('reason') ? `: ${str('reason')}` : ''}`;
    case 'config_rolled_back': {
      const files = Array.isArray(e.files)
        ? (e.files as Array<{ path: string; old_sha256: string | null; new_sha256: string }>)
        : [];
      return `config rolled back: ${files.map((f) => `${f.path} ${f.old_sha256?.slice(0, 12) ?? '(absent)'} → ${f.new_sha256.slice(0, 12)}`).join(', ') || 'no files changed'}`;
    }
    case 'agent_revived':
      return `restarted${str('pid') ? ` as pid ${str('pid')}` : ''}${str('attempt') ? ` (attempt ${str('attempt')})` : ''}`;
    case 'revive_failed':
      return `restart failed: ${str('reason')}`;
    case 'agent_substituted':
      return `work handed to substitute ${str('substitute')}`;
    case 'agent_healthy':
      return 'healthy again';
    case 'checkpoint_restored':
      return `workspace restored from checkpoint ${str('checkpoint')}`;
    default:
      return `${event.event}${str('reason') ? `: ${str('reason')}` : ''}`;
  }
}

/** Reads every event about `agent` from the given logs, oldest first. */
export async function collectAgentEvents(
  agent: string,
  logs: Array<{ path: string; cell?: string }>,
): Promise<{ events: Array<AnyCellEvent & { cell?: string }>; problems: string[] }> {
  const events: Array<AnyCellEvent & { cell?: string }> = [];
  const problems: string[] = [];
  for (const log of logs) {
    if (!existsSync(log.path)) continue;
    for await (const entry of readEvents(log.path)) {
      if (!entry.ok) {
        problems.push(`${log.path}:${entry.line}: ${entry.reason}`);
        continue;
      }
      if ((entry.event as { agent?: unknown }).agent === agent)
        events.push({ ...entry.event, ...(log.cell ? { cell: log.cell } : {}) });
    }
  }
  events.sort((a, b) => a.ts.localeCompare(b.ts));
  return { events, problems };
}

/** `pit why AGENT [--json] [--all]`: the story of the agent's last incidents, from the event logs. */
export async function why(
  context: { cellsRoot: string; output: Output; extraLogs?: string[] },
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
