import { runDaemon, sweepOnce, type ConfigOverrides } from '@pit/daemon';
import { checkExit, EXIT } from '../exit-codes.js';
import type { CommandContext } from '../context.js';

/** The first daemons' flags (`--poll-interval`, `--dead-threshold`, `-v`), as parsed. */
export interface SeedFlags {
  pollInterval?: number;
  deadThreshold?: number;
  verbose?: boolean;
}

/** The config overrides the seed flags ask for (the command line wins over the file). */
function overridesOf(options: SeedFlags): ConfigOverrides {
  return {
    ...(options.pollInterval !== undefined ? { pollIntervalS: options.pollInterval } : {}),
    ...(options.deadThreshold !== undefined ? { deadThresholdS: options.deadThreshold } : {}),
  };
}

/** One line naming what the command line overrides, or nothing when it overrides nothing. */
function describeOverrides(options: SeedFlags, logLevel: string | undefined): string[] {
  const parts = [
    ...(options.pollInterval !== undefined
      ? [`[cells] poll_interval_s = ${options.pollInterval}`]
      : []),
    ...(options.deadThreshold !== undefined
      ? [`[policy.defaults] dead_after = ${options.deadThreshold} s`]
      : []),
    ...(logLevel !== undefined ? [`log level ${logLevel}`] : []),
  ];
  return parts.length > 0 ? [`command line overrides the config: ${parts.join(', ')}`] : [];
}

/** `pit daemon [--dry-run] [--stop-agents-on-exit] [--listen ADDR] [--poll-interval S] [--dead-threshold S] [-v]`: the supervision loop in the foreground. */
export async function daemon(
  context: CommandContext,
  options: {
    dryRun?: boolean;
    stopAgentsOnExit?: boolean;
    listen?: string;
    logLevel?: string;
  } & SeedFlags,
): Promise<number> {
  const logLevel = options.logLevel ?? (options.verbose ? 'debug' : undefined);
  const handle = await runDaemon({
    overrides: overridesOf(options),
    ...(context.globals.config ? { configPath: context.globals.config } : {}),
    env: context.environment.env,
    cwd: context.environment.cwd,
    dryRun: options.dryRun ?? false,
    ...(options.stopAgentsOnExit ? { stopAgentsOnExit: true } : {}),
    ...(options.listen ? { listen: options.listen } : {}),
    ...(logLevel ? { logLevel: logLevel as 'debug' | 'info' | 'warn' | 'error' } : {}),
  });
  const where = handle.loaded.path ?? 'the embedded default';
  for (const line of describeOverrides(options, logLevel))
    context.output.err(`pit daemon: ${line}`);
  context.output.err(
    `pit daemon ${handle.pid}: supervising with ${where}${options.dryRun ? ' (dry run: nothing is started, stopped or rolled back)' : ''}`,
  );
  if (handle.url) context.output.err(`dashboard: ${handle.url}/`);
  const outcome = await handle.done;
  // What outlives this process: the agents keep running, detached, until the next daemon adopts them.
  const named = (list: typeof outcome.stopped) =>
    list.map(({ agent, pid }) => `${agent} (pid ${pid})`).join(', ');
  if (outcome.stopped.length > 0)
    context.output.err(
      `pit daemon: stopped ${outcome.stopped.length} agent(s): ${named(outcome.stopped)}`,
    );
  context.output.err(
    outcome.leftRunning.length > 0
      ? `pit daemon: left ${outcome.leftRunning.length} agent(s) running: ${named(outcome.leftRunning)}`
      : 'pit daemon: no agent left running',
  );
  return EXIT.ok;
}

/** `pit sweep --once [--dry-run] [--json] [--poll-interval S] [--dead-threshold S] [-v]`: one full check and its actions, for cron. Exit 0 when every agent is healthy and nothing is wrong under the root, 1 when an agent is not, else 3 when there is a problem. */
export async function sweep(
  context: CommandContext,
  options: { once?: boolean; dryRun?: boolean; json?: boolean } & SeedFlags,
): Promise<number> {
  if (!options.once) {
    context.output.err('pit sweep: --once is required (the continuous loop is `pit daemon`)');
    return EXIT.usage;
  }
  for (const line of describeOverrides(options, options.verbose ? 'debug' : undefined))
    context.output.err(`pit sweep: ${line}`);
  const report = await sweepOnce({
    ...(context.globals.config ? { configPath: context.globals.config } : {}),
    env: context.environment.env,
    cwd: context.environment.cwd,
    dryRun: options.dryRun ?? false,
    overrides: overridesOf(options),
    ...(options.verbose
      ? { logLevel: 'debug' as const }
      : options.json
        ? { logLevel: 'warn' as const }
        : {}),
  });
  if (options.json) {
    context.output.out(JSON.stringify(report, null, 2));
  } else {
    for (const agent of report.agents) {
      const action =
        agent.action && agent.action !== 'none'
          ? ` → ${agent.action}${agent.reason ? `: ${agent.reason}` : ''}`
          : '';
      context.output.out(`${agent.key.padEnd(48)} ${agent.health}${action}`);
    }
    context.output.out(
      `${report.agents.length} agent(s) checked in ${Math.round(report.durationMs)} ms: ${report.healthy ? 'all healthy' : 'not all healthy'}${report.problems.length ? `, ${report.problems.length} problem(s)` : ''}${options.dryRun ? ' (dry run)' : ''}`,
    );
    for (const problem of report.problems) context.output.err(`problem: ${problem}`);
  }
  return checkExit(!report.healthy, report.problems.length > 0);
}
