import { readFleetStatus, type FleetStatus } from '@pit/daemon';
import { checkExit } from '../exit-codes.js';
import type { CommandContext } from '../context.js';
import { formatAge, renderTable } from '../output.js';

/**
 * `pit status [--json]`: cells, agents and the provider matrix from the persisted state (works with
 * no daemon running). Exit 1 when an agent is dead, else 3 when there is a problem.
 */
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
          'OWNER@EPOCH',
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
            agent.owner ? `${agent.owner.host}@${agent.owner.epoch}` : undefined,
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
  if (fleet.providers?.length) printProviders(context, fleet, now);
  if (fleet.cluster) printCluster(context, fleet.cluster);
  if (fleet.approvals.length)
    context.output.out(`\n${fleet.approvals.length} approval(s) pending: see \`pit approvals\``);
  for (const problem of fleet.problems) context.output.err(`problem: ${problem}`);
  return code;
}

/**
 * The provider matrix part of `pit status`. The daemon writes it when it changes; when the daemon
 * that wrote it no longer runs, the heading says how old it is, so nobody takes it for live.
 */
function printProviders(context: CommandContext, fleet: FleetStatus, now: number): void {
  const asOf = fleet.providers_as_of;
  const heading =
    asOf === undefined || asOf.live
      ? '\nproviders:'
      : `\nproviders: as last seen by a daemon no longer running, written ${formatAge((now - Date.parse(asOf.written_at)) / 1000)} ago (not live)`;
  context.output.out(heading);
  context.output.out(
    renderTable(
      ['PROVIDER', 'STATE', 'SINCE', 'EVIDENCE'],
      (fleet.providers ?? []).map((entry) => [
        entry.provider,
        entry.status,
        `${formatAge((now - Date.parse(entry.since)) / 1000)} ago`,
        entry.evidence.join('; ').slice(0, 100) || undefined,
      ]),
    ),
  );
}

/** The cluster part of `pit status`: live hosts with their lease age, and agents owned elsewhere. */
function printCluster(context: CommandContext, cluster: NonNullable<FleetStatus['cluster']>): void {
  context.output.out(
    `\ncluster: this host ${cluster.host}, lease ${cluster.lease_s} s, on_partition ${cluster.on_partition}${cluster.fenced ? ' — FENCED: lease lost, reviving nothing' : ''}`,
  );
  context.output.out(
    renderTable(
      ['HOST', 'PID', 'LEASE AGE'],
      cluster.hosts.map((host) => [
        host.host === cluster.host ? `${host.host} (this)` : host.host,
        host.pid,
        host.lease_age_s === null ? undefined : `${host.lease_age_s.toFixed(1)} s`,
      ]),
    ),
  );
  const remote = Object.entries(cluster.remote);
  if (remote.length > 0)
    context.output.out(
      `owned by other hosts: ${remote.map(([key, owner]) => `${key} → ${owner.host}@${owner.epoch}`).join(', ')}`,
    );
}
