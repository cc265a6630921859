import { runDaemon, sweepOnce } from '@pit/daemon';
import { checkExit, EXIT } from '../exit-codes.js';
import type { CommandContext } from '../context.js';

/** `pit daemon [--dry-run] [--stop-agents-on-exit] [--listen ADDR]`: the supervision loop in the foreground. */
export async function daemon(
  context: CommandContext,
  options: { dryRun?: boolean; stopAgentsOnExit?: boolean; listen?: string; logLevel?: string },
): Promise<number> {
  const handle = await runDaemon({
    ...(context.globals.config ? { configPath: context.globals.config } : {}),
    env: context.environment.env,
    cwd: context.environment.cwd,
    dryRun: options.dryRun ?? false,
    ...(options.stopAgentsOnExit ? { stopAgentsOnExit: true } : {}),
    ...(options.listen ? { listen: options.listen } : {}),
    ...(options.logLevel
      ? { logLevel: options.logLevel as 'debug' | 'info' | 'warn' | 'error' }
      : {}),
  });
  const where = handle.loaded.path ?? 'the embedded default';
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

/** `pit sweep --once [--dry-run] [--json]`: one full check and its actions, for cron. Exit 0 when every agent is healthy and nothing is wrong under the root, 1 when an agent is not, else 3 when there is a problem. */
export async function sweep(
  context: CommandContext,
  options: { once?: boolean; dryRun?: boolean; json?: boolean },
): Promise<number> {
  if (!options.once) {
    context.output.err('pit sweep: --once is required (the continuous loop is `pit daemon`)');
    return EXIT.usage;
  }
  const report = await sweepOnce({
    ...(context.globals.config ? { configPath: context.globals.config } : {}),
    env: context.environment.env,
    cwd: context.environment.cwd,
    dryRun: options.dryRun ?? false,
    ...(options.json ? { logLevel: 'warn' as const } : {}),
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
