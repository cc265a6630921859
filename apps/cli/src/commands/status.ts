import { readFleetStatus } from '@pit/daemon';
import { checkExit } from '../exit-codes.js';
import type { CommandContext } from '../context.js';
import { formatAge, renderTable } from '../output.js';

/** `pit status [--json]`: cells and agents from the persisted state (works with no daemon running). Exit 1 when an agent is dead, else 3 when there is a problem. */
export async function status(
  context: CommandContext,
  options: { json?: boolean },
): Promise<number> {
  const { config } = await context.config();
  const cellsRoot = await context.cellsRoot();
  const now = Date.now();
  const { status: fleet, daemon } = await readFleetStatus(
    { ...config, cells: { ...config.cells, root: cellsRoot } },
    now,
  );
  const dead = fleet.agents.filter((agent) => agent.health === 'dead');
  const code = checkExit(dead.length > 0, fleet.problems.length > 0);
  if (options.json) {
    // Every time in it an ISO-8601 string (the lock's start_time is clock ticks, an identity mark: left out).
    const shown = daemon
      ? {
          pid: daemon.pid,
          started_at: daemon.started_at,
          ...(daemon.hostname ? { hostname: daemon.hostname } : {}),
        }
      : null;
    context.output.out(JSON.stringify({ daemon: shown, ...fleet }, null, 2));
    return code;
  }
  context.output.out(
    daemon
      ? `daemon: running as pid ${daemon.pid}`
      : 'daemon: not running (state as last persisted)',
  );
  if (fleet.agents.length === 0) {
    context.output.out(
      `no agents: no supervised cells under ${cellsRoot} and no agents in the config`,
    );
  } else {
    const secondsUntil = (iso?: string) => (iso ? (Date.parse(iso) - now) / 1000 : undefined);
    context.output.out(
      renderTable(
        [
          'CELL',
          'AGENT',
          'HEALTH',
          'FOR',
          'HEARTBEAT',
          'PID',
          'RESTARTS',
          'BACKOFF',
          'APPROVAL',
          'LAST DECISION',
        ],
        fleet.agents.map((agent) => {
          const backoff = secondsUntil(agent.backoff_until);
          return [
            agent.cell ? agent.cell.slice(0, 8) : `(${agent.host})`,
            agent.agent,
            agent.health,
            agent.since ? formatAge((now - Date.parse(agent.since)) / 1000) : undefined,
            agent.heartbeat_age_s === undefined
              ? undefined
              : `${formatAge(agent.heartbeat_age_s)} ago`,
            agent.pid,
            agent.restarts,
            backoff !== undefined && backoff > 0 ? formatAge(backoff) : undefined,
            agent.pending_approval,
            agent.last_decision
              ? `${agent.last_decision.action}: ${agent.last_decision.reason}`.slice(0, 60)
              : undefined,
          ];
        }),
      ),
    );
  }
  if (fleet.approvals.length)
    context.output.out(`\n${fleet.approvals.length} approval(s) pending: see \`pit approvals\``);
  for (const problem of fleet.problems) context.output.err(`problem: ${problem}`);
  return code;
}
