import { discoverCells } from '@pit/cell-spec';
import {
  describePolicySource,
  formatDuration,
  resolvePolicy,
  type PolicySource,
} from '@pit/policy';
import {
  effectivePolicy,
  httpWarnings,
  movedDefaults,
  tokenProblem,
  type PitConfig,
} from '@pit/daemon';
import { EXIT } from '../exit-codes.js';
import type { CommandContext } from '../context.js';

/**
 * `pit config check [--json]`: loads and validates the config (every problem at once, with
 * line and column), then prints the resolved policy of every agent and where each value came from.
 */
export async function configCheck(
  context: CommandContext,
  options: { json?: boolean },
): Promise<number> {
  const loaded = await context.config();
  const policy = effectivePolicy(loaded.config);
  const cellsRoot = await context.cellsRoot();
  const discovery = await discoverCells(cellsRoot);
  const agents = new Map<string, { mission?: string; where: string }>();
  for (const name of Object.keys(loaded.config.agents))
    agents.set(name, {
      where:
        loaded.config.agents[name]?.cell && loaded.config.agents[name]?.cell !== 'none'
          ? `cell ${loaded.config.agents[name]?.cell}`
          : 'outside cells',
    });
  for (const cell of discovery.supervised)
    for (const agent of cell.manifest.agents)
      agents.set(agent.name, { mission: cell.manifest.mission, where: `cell ${cell.uuid}` });
  const resolved = [...agents.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([agent, info]) => ({
      where: info.where,
      ...resolvePolicy({
        config: policy,
        agent,
        ...(info.mission ? { mission: info.mission } : {}),
      }),
    }));
  const http = describeHttp(loaded.config.daemon.http, context.environment.env);
  if (options.json) {
    context.output.out(
      JSON.stringify(
        {
          file: loaded.path ?? null,
          source: loaded.source,
          notices: loaded.notices,
          warnings: loaded.warnings,
          http: { warnings: http.warnings, problems: http.problems },
          agents: resolved,
        },
        null,
        2,
      ),
    );
    return http.problems.length > 0 ? EXIT.usage : EXIT.ok;
  }
  context.output.out(`config: ${loaded.path ?? 'embedded default (no pit.toml found)'} — valid`);
  // Older keys still work; say which key to write instead.
  for (const notice of loaded.notices) context.output.err(`notice: ${notice}`);
  // Secret-looking values in agents' env or argv: valid, but they belong in env_from.
  for (const warning of loaded.warnings) context.output.err(`warning: ${warning}`);
  context.output.out(
    `cells root: ${cellsRoot} (${discovery.supervised.length} supervised cell(s)${discovery.problems.length ? `, ${discovery.problems.length} problem(s)` : ''})`,
  );
  context.output.out(`state dir: ${loaded.config.daemon.state_dir}`);
  for (const line of http.lines) context.output.out(line);
  for (const warning of http.warnings) context.output.err(`warning: ${warning}`);
  for (const problem of http.problems) context.output.err(`error: ${problem}`);
  if (resolved.length === 0)
    context.output.out(
      'no agents yet: add [agents.<name>] sections or create cells with `pit cell create`',
    );
  const moved = movedDefaults(loaded.config);
  for (const agent of resolved) {
    const source = (field: string) =>
      describeSource(agent.trace.fields[field] ?? 'builtin', field, moved);
    const duration = (value: unknown) =>
      typeof value === 'number' ? formatDuration(value) : String(value);
    context.output.out(
      `\n${agent.agent} (${agent.where}${agent.mission ? `, mission ${agent.mission}` : ''})`,
    );
    const rows: Array<[string, unknown, string]> = [
      ['mode', agent.mode, 'mode'],
      ['dead after', duration(agent.dead_after), 'dead_after'],
      ['substitutes', agent.substitutes.join(' → ') || '(none)', 'substitutes'],
      ['rollback before restart', agent.rollback_before_restart, 'rollback_before_restart'],
      ['max revive attempts', agent.max_revive_attempts, 'max_revive_attempts'],
      [
        'restart intensity',
        `${agent.restart_intensity.max_restarts} in ${duration(agent.restart_intensity.window)}`,
        'restart_intensity.max_restarts',
      ],
      [
        'backoff',
        `${duration(agent.backoff.initial)} ×${agent.backoff.factor} up to ${duration(agent.backoff.cap)}, reset after ${duration(agent.backoff.reset_after_stable)}`,
        'backoff.initial',
      ],
      [
        'approval',
        `${agent.approval.channels.join(', ') || '(no channel)'}; timeout ${duration(agent.approval.timeout)} then ${agent.approval.on_timeout}`,
        'approval.channels',
      ],
    ];
    for (const [label, value, field] of rows)
      context.output.out(`  ${label.padEnd(24)} ${String(value).padEnd(44)} from ${source(field)}`);
  }
  for (const problem of discovery.problems)
    context.output.err(`problem: ${problem.path}: ${problem.reason}`);
  return http.problems.length > 0 ? EXIT.usage : EXIT.ok;
}

/**
 * Where a value came from: `built-in default`, `[policy.defaults]`, `[policy.missions.<name>]`,
 * `[policy.agents.<name>]`, or the older `[cells]` key that supplied a `[policy.defaults]` value.
 */
function describeSource(
  source: PolicySource,
  field: string,
  moved: ReturnType<typeof movedDefaults>,
): string {
  if (source === 'defaults' && field === 'dead_after' && moved.dead_after !== undefined)
    return '[cells] resurrect_after_s (deprecated)';
  if (
    source === 'defaults' &&
    field === 'max_revive_attempts' &&
    moved.max_revive_attempts !== undefined
  )
    return '[cells] max_revive_attempts (deprecated)';
  return describePolicySource(source);
}

/**
 * `[daemon.http]` explained: where it listens and who may reach it, the Host check, the caps and
 * timeouts, and each token (whether its variable is set here and long enough).
 */
function describeHttp(
  http: PitConfig['daemon']['http'],
  env: Record<string, string | undefined>,
): { lines: string[]; warnings: string[]; problems: string[] } {
  if (!http.enabled)
    return { lines: ['HTTP: off (daemon.http.enabled = false)'], warnings: [], problems: [] };
  const problems: string[] = [];
  const token = (variable: string, who: string) => {
    const value = env[variable];
    if (!value) return `${variable} not set here (${who} cannot answer over HTTP)`;
    const problem = tokenProblem(value);
    if (problem) problems.push(`${variable} (the HTTP token of ${who}): ${problem}`);
    return `${variable} set${problem ? ' but refused' : ''}`;
  };
  const approvers = Object.entries(http.approvers);
  const lines = [
    `HTTP: ${http.listen}${http.allow_remote ? ' (allow_remote: reachable from other hosts)' : ' (loopback only)'}`,
    `  Host header must name ${/^(0\.0\.0\.0|\[::\]):/.test(http.listen) ? `the address it is reached on (IP:${http.listen.slice(http.listen.lastIndexOf(':') + 1)})` : http.listen}${http.allowed_hosts.length ? ` or ${http.allowed_hosts.join(', ')}` : ''} (allowed_hosts; others get 421: DNS rebinding)`,
    `  at most ${http.max_connections} connections (max_connections; more are closed at accept), ${http.max_event_streams} event streams (max_event_streams; more get 503)`,
    `  a connection must send its headers within ${http.header_timeout_s} s (header_timeout_s) and is closed after ${http.idle_timeout_s} s without traffic (idle_timeout_s)`,
    `  approvals: the operator's token in ${token(http.token_env, 'operator')}, recorded as "operator"`,
    ...approvers.map(
      ([name, approver]) =>
        `  approver ${name}: ${token(approver.token_env, name)}, recorded as "${name}"`,
    ),
  ];
  return { lines, warnings: httpWarnings(http), problems };
}
