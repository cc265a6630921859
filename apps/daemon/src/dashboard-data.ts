/**
 * What the dashboard asks the daemon for besides the status and the live event stream: the
 * recent events of every supervised cell (`GET /api/recent-events`: the "last events" column
 * at load, and the restart timeline of deaths and revivals), and the tail of an agent's output
 * and error logs (`GET /api/agents/:agent/log`, behind the token: the same reader as `pit logs`). Both
 * bounded; files only, never written.
 */
import { cellPaths, discoverCells, readEventLog, type AnyCellEvent } from '@pit/cell-spec';
import { findAgentLog, readStreamTails } from './agent-log.js';

/** The most events `/api/recent-events` returns (the newest kept). */
export const RECENT_EVENTS_MAX = 2000;
/** The longest look back `/api/recent-events` takes (hours). */
export const RECENT_HOURS_MAX = 48;
/** The most lines, and bytes, of a log tail. */
export const LOG_TAIL_MAX_LINES = 500;
export const LOG_TAIL_MAX_BYTES = 64 * 1024;

/** One recent event, with its cell. */
export type RecentEvent = AnyCellEvent & { cell: string };

/**
 * Every event of the supervised cells at or after `sinceMs` (heartbeats left out), oldest first,
 * at most {@link RECENT_EVENTS_MAX} (the newest; `truncated` then). A cell whose log cannot be
 * read is named in `problems`.
 */
export async function readRecentEvents(options: {
  cellsRoot: string;
  sinceMs: number;
}): Promise<{ events: RecentEvent[]; truncated: boolean; problems: string[] }> {
  const events: RecentEvent[] = [];
  const problems: string[] = [];
  const { supervised } = await discoverCells(options.cellsRoot);
  for (const cell of supervised) {
    try {
      for await (const entry of readEventLog(cellPaths(cell.dir).events, { beneath: cell.dir })) {
        if (!entry.ok || entry.event.event === 'heartbeat') continue;
        const at = Date.parse(entry.event.ts);
        if (!(at >= options.sinceMs)) continue;
        events.push({ ...entry.event, cell: cell.uuid });
        if (events.length > 4 * RECENT_EVENTS_MAX) trim(events);
      }
    } catch (error) {
      problems.push(`${cell.uuid}: ${(error as Error).message}`);
    }
  }
  const truncated = events.length > RECENT_EVENTS_MAX;
  trim(events);
  return { events, truncated, problems };
}

/** Sorts by time and keeps the newest {@link RECENT_EVENTS_MAX}. */
function trim(events: RecentEvent[]): void {
  events.sort((a, b) => a.ts.localeCompare(b.ts));
  if (events.length > RECENT_EVENTS_MAX) events.splice(0, events.length - RECENT_EVENTS_MAX);
}

/**
 * The last `lines` lines of an agent's output logs (at most {@link LOG_TAIL_MAX_LINES} and
 * {@link LOG_TAIL_MAX_BYTES} each, the newest kept), as `pit logs -n` reads them: `lines` from
 * its stdout log, `stderr` from its stderr log (empty when it has none or stderr is merged).
 */
export async function readAgentLogTail(options: {
  cellsRoot: string;
  stateDir: string;
  ref: string;
  lines: number;
}): Promise<
  | { ok: true; agent: string; lines: string[]; stderr: string[]; truncated: boolean }
  | { ok: false; reason: 'not_found' | 'ambiguous'; message: string }
> {
  const found = await findAgentLog({
    cellsRoot: options.cellsRoot,
    stateDir: () => Promise.resolve(options.stateDir),
    // The dashboard names an agent outside cells `host/<name>`.
    ref: options.ref.startsWith('host/') ? options.ref.slice(5) : options.ref,
  });
  if (!found.ok) return { ok: false, reason: found.reason, message: found.message };
  const tails = await readStreamTails(found.log, {
    count: Math.max(1, Math.min(options.lines, LOG_TAIL_MAX_LINES)),
    maxBytes: LOG_TAIL_MAX_BYTES,
    streams: ['stdout', 'stderr'],
  });
  return {
    ok: true,
    agent: found.log.label,
    lines: tails.stdout ?? [],
    stderr: tails.stderr ?? [],
    truncated: tails.truncated,
  };
}
