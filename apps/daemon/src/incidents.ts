/**
 * An agent's incidents, told from its event log (read by `pit why` and the MCP tool `pit_why`): which kinds of the one list of event kinds
 * (`CELL_EVENT_KINDS` of @pit/cell-spec) belong to an incident's story, how each reads as a
 * line, and how a story is cut into incidents. Pure: no files, no output. A kind this version
 * does not know (an agent's own, or a newer writer's) is shown with its fields, never dropped.
 */
import {
  isCellEventKind,
  parseCellEvent,
  type AnyCellEvent,
  type CellEventKind,
  type CellEventOf,
} from '@pit/cell-spec';

/** One event of an agent's story, with the cell whose log it came from. */
export type StoryEvent = AnyCellEvent & { cell?: string };

/** One incident of an agent: from a death (or a decision) to its outcome. */
export interface Incident {
  cell?: string;
  started: string;
  events: StoryEvent[];
  outcome:
    | 'revived'
    | 'recovered'
    | 'substituted'
    | 'denied'
    | 'pending'
    | 'open'
    | 'stopped'
    | 'started'
    | 'restarted'
    | 'reset';
}

type Describe<K extends CellEventKind> = (event: CellEventOf<K>) => string;

const short = (sha: string | null) => (sha === null ? '(absent)' : sha.slice(0, 12));
const optional = (label: string, value: string | number | undefined) =>
  value === undefined ? '' : `${label}${value}`;

/**
 * How each kind reads in a story; `null`: not part of an agent's incident story. Exhaustive
 * over the list of kinds, so a new kind fails to compile until it is decided here.
 */
const STORY: { [K in CellEventKind]: Describe<K> | null } = {
  cell_created: null,
  cell_activated: null,
  cell_frozen: null,
  cell_archived: null,
  cell_destroyed: null,
  agent_joined: null,
  agent_left: (e) => `left the cell${optional(': ', e.reason)}`,
  heartbeat: null,
  agent_started: null,
  agent_adopted: (e) => `adopted running pid ${e.pid}: ${e.reason}`,
  agent_healthy: () => 'healthy again',
  agent_degraded: (e) => `degraded: ${e.reason}`,
  agent_dead: (e) =>
    `dead: ${e.reason}${e.failing.length > 0 ? ` [failing probes: ${e.failing.join(', ')}]` : ''}`,
  decision: (e) =>
    `decided ${e.action}: ${e.reason} [rule ${e.rule}]${optional(', approval ', e.approval_id)}`,
  revive_requested: (e) =>
    `approval requested (${e.approval_id}) to ${e.proposed}: ${e.reason}; expires ${e.expires_at}`,
  revive_approved: (e) =>
    `approved by ${e.by ?? 'unknown'} via ${e.channel ?? 'unknown channel'}${optional(': ', e.reason)}`,
  revive_denied: (e) =>
    `denied by ${e.by ?? 'unknown'} via ${e.channel ?? 'unknown channel'}${optional(': ', e.reason)}`,
  agent_revived: (e) =>
    `restarted as pid ${e.pid} (attempt ${e.attempt}): ${e.reason}${optional(', taken over from host ', e.taken_over_from)}`,
  revive_failed: (e) => `restart failed: ${e.reason}`,
  start_refused: (e) =>
    `not started here: ${e.message}${e.owner_host ? ` (owner ${e.owner_host}, epoch ${e.owner_epoch ?? '?'})` : ''}`,
  config_rolled_back: (e) =>
    `config rolled back: ${
      e.files.map((f) => `${f.path} ${short(f.old_sha256)} → ${short(f.new_sha256)}`).join(', ') ||
      'no files changed'
    } (from ${e.source === 'git' ? 'git' : `snapshot ${short(e.set ?? null)}`})`,
  rollback_failed: (e) => `config rollback failed: ${e.reason}`,
  provider_wait: (e) =>
    `not restarted: provider ${e.provider} ${e.status}; waiting until ${e.until} (not counted as a restart): ${e.reason}`,
  provider_switched: (e) =>
    `${e.direction === 'fallback' ? `switched to fallback provider ${e.to}` : `switched back to provider ${e.to}`} (from ${e.from}): ${
      e.files.map((f) => `${f.path} ${short(f.old_sha256)} → ${short(f.new_sha256)}`).join(', ') ||
      'no files changed'
    }; ${e.reason}`,
  agent_substituted: (e) =>
    `work handed to substitute ${e.substitute} (${e.role}): ${e.reason}${optional(', handoff ', e.handoff)}${optional(', resume packet ', e.resume_packet)}`,
  checkpoint_created: null,
  checkpoint_restored: (e) =>
    `workspace restored from checkpoint ${e.checkpoint}${optional(': ', e.reason)}`,
  manifest_refused: (e) => `cell.json ${e.field} refused: ${e.reason}`,
  agent_control: (e) =>
    `${e.action} by ${e.by} via ${e.via}${optional(': ', e.reason)}${e.pending ? ' (recorded while no daemon ran: carried out by the next sweep or daemon start)' : ''}`,
  agent_recovered: (e) => `recovered${optional(' as pid ', e.pid)}: ${e.reason}`,
  config_reloaded: null,
};

/** Outcomes that close (or mark) an incident. */
const OUTCOMES: Partial<Record<CellEventKind, Incident['outcome']>> = {
  agent_revived: 'revived',
  agent_healthy: 'recovered',
  agent_recovered: 'recovered',
  agent_substituted: 'substituted',
  revive_denied: 'denied',
  revive_requested: 'pending',
};

/**
 * What an operator's control makes of an incident: a stop, start or restart ends it; a reset
 * ends only the story it opened (in a death's story the revive that follows tells the outcome).
 */
function controlOutcome(
  event: CellEventOf<'agent_control'>,
  opened: boolean,
): Incident['outcome'] | undefined {
  if (event.pending) return opened ? 'pending' : undefined;
  if (event.action === 'stop') return 'stopped';
  if (event.action === 'start') return 'started';
  if (event.action === 'restart') return 'restarted';
  return opened ? 'reset' : undefined;
}

/** Whether an event belongs in a story: a known kind the story tells, or any unknown kind. */
export function isStoryEvent(event: AnyCellEvent): boolean {
  const parsed = parseCellEvent(event);
  return parsed.ok && (!parsed.known || STORY[parsed.event.event] !== null);
}

/** In a cluster, the host and epoch of the incarnation an event is about. */
function actedBy(event: { epoch?: number; host?: string }): string {
  if (event.epoch === undefined) return '';
  return ` [host ${event.host ?? '?'}, epoch ${event.epoch}]`;
}

/** Renders one event of a story as a line a person reads. */
export function describeEvent(event: AnyCellEvent): string {
  const parsed = parseCellEvent(event);
  if (parsed.ok && parsed.known) {
    const describe = STORY[parsed.event.event] as Describe<CellEventKind> | null;
    if (describe)
      return `${describe(parsed.event)}${actedBy(parsed.event as { epoch?: number; host?: string })}`;
  }
  const { ts: _ts, event: kind, agent: _agent, cell: _cell, ...fields } = event;
  const shown = Object.entries(fields)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(', ');
  return `${kind}${shown ? `: ${shown}` : ''}`;
}

/**
 * Splits an agent's events into incidents: each starts at `agent_dead` and runs until it is
 * revived, recovers, is substituted or denied. Events outside an incident are left out.
 */
export function buildIncidents(events: StoryEvent[]): Incident[] {
  const incidents: Incident[] = [];
  let current: Incident | undefined;
  for (const event of events) {
    if (!isStoryEvent(event)) continue;
    if (event.event === 'agent_dead' || !current) {
      // Healthy with no incident open: nothing to tell. A kind this version does not know
      // is told inside an incident, never opens one.
      if (event.event === 'agent_healthy' || !isCellEventKind(event.event)) continue;
      current = {
        ...(event.cell ? { cell: event.cell } : {}),
        started: event.ts,
        events: [],
        outcome: 'open',
      };
      incidents.push(current);
    }
    current.events.push(event);
    const outcome =
      event.event === 'agent_control'
        ? controlOutcome(event as CellEventOf<'agent_control'>, current.events.length === 1)
        : OUTCOMES[event.event as CellEventKind];
    if (outcome) {
      current.outcome = outcome;
      if (outcome !== 'denied' && outcome !== 'pending') current = undefined;
    }
  }
  return incidents;
}
