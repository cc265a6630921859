import { join } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_CELLS_ROOT } from '@pit/cell-spec';
import { mergesStderr } from '@pit/daemon';
import {
  createCell,
  joinCell,
  leaveCell,
  listCells,
  moveCell,
  removeCell,
  type CellsContext,
} from './commands/cells.js';
import { configCheck } from './commands/config-check.js';
import { daemon, sweep } from './commands/daemon.js';
import { heartbeat } from './commands/heartbeat.js';
import { checkpoint, listSnapshots, rollback } from './commands/snapshots.js';
import { decide, listApprovals } from './commands/approvals.js';
import { busTail } from './commands/bus.js';
import { control, reload } from './commands/controls.js';
import { status } from './commands/status.js';
import { logs, type LogsOptions } from './commands/logs.js';
import type { McpOptions } from './commands/mcp.js';
import { why } from './commands/why.js';
import { demo } from './demo/demo.js';
import { createContext, type CliEnvironment, type GlobalOptions } from './context.js';
import { EXIT_CODES_HELP } from './exit-codes.js';
import { cliVersion } from './version.js';

export type { CliEnvironment };

/** `--poll-interval`, `--dead-threshold` and `-v` (the first daemons' flags) on `pit daemon` and `pit sweep`. */
function addSeedFlags(command: Command): void {
  command
    .option(
      '--poll-interval <seconds>',
      "probe every S seconds: overrides the config's [cells] poll_interval_s",
      parseSeconds('--poll-interval', false),
    )
    .option(
      '--dead-threshold <seconds>',
      "act on an agent whose death is inferred (stale heartbeat, failing probes) once it has been dead S seconds: overrides the config's [policy.defaults] dead_after (missions and agents that set their own keep it)",
      parseSeconds('--dead-threshold', true),
    )
    .option('-v, --verbose', 'log at debug level (same as --log-level debug)');
}

/** A commander parser for a number of seconds (`--poll-interval 15`). */
function parseSeconds(flag: string, zeroAllowed: boolean): (value: string) => number {
  return (value) => {
    const seconds = Number(value);
    if (
      value.trim() === '' ||
      !Number.isFinite(seconds) ||
      seconds < 0 ||
      (!zeroAllowed && seconds === 0)
    )
      throw new InvalidArgumentError(
        `${flag} ${JSON.stringify(value)}: expected a number of seconds${zeroAllowed ? ' (0 or more)' : ' greater than 0'}`,
      );
    return seconds;
  };
}

/** Builds the `pit` program. Each action resolves to an exit code stored in `result.code`. */
export function buildProgram(environment: CliEnvironment, result: { code: number }): Command {
  const program = new Command('pit')
    .description(
      'The Pit: supervise long-running AI agents in mission cells, revive them, and show it.',
    )
    .addOption(
      new Option(
        '-c, --config <file>',
        'config file (TOML or JSON); else $PIT_CONFIG, ./pit.toml, ~/.config/pit/pit.toml, /etc/pit/pit.toml',
      ).env('PIT_CONFIG'),
    )
    .addOption(
      new Option(
        '--cells-root <dir>',
        `mission cells root (overrides the config's cells.root; default ${DEFAULT_CELLS_ROOT})`,
      ).env('PIT_CELLS_ROOT'),
    )
    .version(cliVersion(), '-V, --version', "print pit's version")
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => environment.output.out(text),
      writeErr: (text) => environment.output.err(text),
    });

  const context = createContext(environment, () => program.opts<GlobalOptions>());
  const cellsContext = async (): Promise<CellsContext> => ({
    cellsRoot: await context.cellsRoot(),
    output: context.output,
    actor: context.actor,
    stateDir: async () => (await context.config()).config.daemon.state_dir,
  });
  const run = (work: () => Promise<number>) => async () => {
    result.code = await work();
  };

  program
    .command('daemon')
    .description(
      'run the supervision loop in the foreground (logs to stderr: JSON lines, pretty on a TTY); SIGHUP reloads the config, SIGTERM or SIGINT stops it at once and leaves the agents running (named with their pids on exit)',
    )
    .option('--dry-run', 'decide and record, but start, stop and roll back nothing')
    .option('--stop-agents-on-exit', 'stop every agent when the daemon stops')
    .option('--listen <host:port>', 'override [daemon.http].listen')
    .option('--log-level <level>', 'debug, info, warn or error')
    .action(
      (options: {
        dryRun?: boolean;
        stopAgentsOnExit?: boolean;
        listen?: string;
        logLevel?: string;
        pollInterval?: number;
        deadThreshold?: number;
        verbose?: boolean;
      }) => run(() => daemon(context, options))(),
    );
  addSeedFlags(program.commands.at(-1)!);

  program
    .command('sweep')
    .description(
      'one full check of every agent and the actions it calls for, then exit (for cron; an agent it starts keeps running, detached, and the next run adopts it); exit 0 when every agent is healthy, 1 otherwise',
    )
    .option('--once', 'required: run one sweep')
    .option('--dry-run', 'decide and record, but start, stop and roll back nothing')
    .option('--json', 'print the sweep report as JSON')
    .action(
      (options: {
        once?: boolean;
        dryRun?: boolean;
        json?: boolean;
        pollInterval?: number;
        deadThreshold?: number;
        verbose?: boolean;
      }) => run(() => sweep(context, options))(),
    );
  addSeedFlags(program.commands.at(-1)!);

  program
    .command('status')
    .description(
      'cells and agents: health, heartbeat age, restarts, backoff, pending approval, and the model providers (from persisted state when no daemon runs: a matrix left by a stopped daemon shows its age); exit 1 when an agent is dead',
    )
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) => run(() => status(context, options))());

  const config = program.command('config').description('inspect the configuration');
  config
    .command('check')
    .description(
      'validate the config (every problem at once) and print the resolved policy of every agent, with where each value came from',
    )
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) => run(() => configCheck(context, options))());
  config
    .command('import')
    .description(
      "convert an older fleet's config (lazarus-pit.toml, either resurrection_pool.json, lazarus-registry.yaml) into a commented pit.toml that pit config check accepts; keys with no equivalent are listed on stderr and as comments in the file",
    )
    .argument('<file>', 'the older config (.toml, .json, .yaml or .yml)')
    .option('-o, --output <file>', 'write the pit.toml there (mode 0600) instead of printing it')
    .option('--force', 'replace the output file if it exists')
    .action((file: string, options: { output?: string; force?: boolean }) =>
      // Loaded on use: the YAML parser stays out of every other command and the daemon.
      run(async () =>
        (await import('./commands/config-import.js')).configImport(context, file, options),
      )(),
    );

  program
    .command('cells')
    .description('list mission cells')
    .command('list')
    .description(
      'list the supervised (active and frozen) cells, and every problem found under the root',
    )
    .option('--all', 'include provisioning and archived cells')
    .option('--json', 'print JSON')
    .option(
      '--verbose',
      'also list, per cell, the fields a seed-format cell.json left out and the Pit defaulted (created_at, created_by, agents[].role, agents[].joined_at)',
    )
    .action((options: { all?: boolean; json?: boolean; verbose?: boolean }) =>
      run(async () => listCells(await cellsContext(), options))(),
    );

  const cell = program
    .command('cell')
    .description('create and move mission cells through their lifecycle');
  cell
    .command('create')
    .description('provision a new mission cell (created active)')
    .requiredOption('--mission <text>', 'what the mission is for')
    .option(
      '--agent <name[:role]>',
      'an agent of the cell (repeatable); role lead|write|read|audit, default lead for the first, write after',
      collect,
      [],
    )
    .option('--name <name>', 'a short name for the cell')
    .option('--isolation <level>', 'isolation level 1, 2 or 3')
    .option('--json', 'print JSON')
    .action(
      (options: {
        mission: string;
        agent?: string[];
        name?: string;
        isolation?: string;
        json?: boolean;
      }) => run(async () => createCell(await cellsContext(), options))(),
    );
  for (const [action, summary] of [
    ['freeze', 'freeze an active cell (still supervised, agents not revived)'],
    ['resume', 'make a frozen cell active again'],
    ['archive', 'archive an active or frozen cell (no longer supervised)'],
  ] as const) {
    cell
      .command(action)
      .description(summary)
      .argument('<uuid>', 'the cell: its uuid or a unique prefix of it (as `pit status` prints it)')
      .option('--reason <text>', 'recorded in the event log')
      .action((uuid: string, options: { reason?: string }) =>
        run(async () => moveCell(await cellsContext(), action, uuid, options))(),
      );
  }
  cell
    .command('join')
    .description(
      'let an agent run in a cell: recorded in the daemon state directory (members.json) and added to cell.json',
    )
    .argument('<uuid>', 'the cell: its uuid or a unique prefix of it (as `pit status` prints it)')
    .argument('<agent>', 'the agent (configured under [agents.<name>] for the daemon to start it)')
    .option('--role <role>', 'its role in the cell (lead|write|read|audit)', 'write')
    .action((uuid: string, agent: string, options: { role: string }) =>
      run(async () => joinCell(await cellsContext(), uuid, agent, options))(),
    );
  cell
    .command('leave')
    .description(
      'withdraw an agent from a cell: its grant removed and its entry taken out of cell.json (a running process is no longer supervised)',
    )
    .argument('<uuid>', 'the cell: its uuid or a unique prefix of it (as `pit status` prints it)')
    .argument('<agent>', 'the agent')
    .action((uuid: string, agent: string) =>
      run(async () => leaveCell(await cellsContext(), uuid, agent))(),
    );
  cell
    .command('destroy')
    .description('delete an archived cell and everything inside it (never anything outside)')
    .argument('<uuid>', 'the cell')
    .option('--force', 'destroy a cell that is not archived')
    .action((uuid: string, options: { force?: boolean }) =>
      run(async () => removeCell(await cellsContext(), uuid, options))(),
    );

  const AGENT_HELP =
    'the agent: its name, or CELL/NAME (a cell uuid or unique prefix, or a mission) when the name is in several cells';
  const CONTROL_AFTER =
    '\nWith a daemon running this goes through its HTTP API (set the token variable [daemon.http].token_env names, default PIT_HTTP_TOKEN); with none, it is recorded in the state directory and the next `pit sweep --once` or daemon start carries it out. Every control is an agent_control event: `pit why AGENT` shows it.';
  for (const [action, summary] of [
    [
      'restart',
      'stop the agent and start it again now, whatever its policy (not counted in its restart budget)',
    ],
    [
      'stop',
      'stop the agent and keep it stopped, across daemon restarts, until `pit start` (not revived, not counted as dead)',
    ],
    [
      'start',
      'start an agent that is stopped or dead (how an operator brings back an agent under policy never, or after a denial)',
    ],
    [
      'reset',
      "clear the agent's backoff, restart budget and escalation (a pending approval is withdrawn); a dead agent is then decided afresh",
    ],
  ] as const) {
    program
      .command(action)
      .description(summary)
      .argument('<agent>', AGENT_HELP)
      .option('--reason <text>', 'recorded in the event log')
      .option('--json', 'print JSON')
      .addHelpText('after', CONTROL_AFTER)
      .action((agent: string, options: { reason?: string; json?: boolean }) =>
        run(() => control(context, action, agent, options))(),
      );
  }

  program
    .command('reload')
    .description(
      'make the running daemon re-read its config (what SIGHUP does): a config that does not check is refused and the old one stays',
    )
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      "\nGoes through the daemon's HTTP API with the token [daemon.http].token_env names (default PIT_HTTP_TOKEN); recorded as a config_reloaded event in <state_dir>/logs/events.jsonl.",
    )
    .action((options: { json?: boolean }) => run(() => reload(context, options))());

  program
    .command('heartbeat')
    .description("write an agent's heartbeat (for agents written in shell)")
    .requiredOption('--cell <uuid>', 'the cell')
    .requiredOption('--agent <name>', 'the agent')
    .option('--status <status>', 'free-form status', 'ok')
    .option('--cycle <n>', 'work cycle counter (default: previous + 1)')
    .option('--pid <pid>', "the agent's pid (default: the calling shell's)")
    .option('--model <model>', 'the model the agent is using')
    .action(
      (options: {
        cell: string;
        agent: string;
        status?: string;
        cycle?: string;
        pid?: string;
        model?: string;
      }) => run(async () => heartbeat(await cellsContext(), options))(),
    );

  program
    .command('approvals')
    .description('approval requests waiting for a human (pending ones unless --all)')
    .option('--all', 'include decided and expired requests')
    .option('--json', 'print JSON')
    .action((options: { all?: boolean; json?: boolean }) =>
      run(() => listApprovals(context, options))(),
    );
  for (const decision of ['approve', 'deny'] as const) {
    program
      .command(decision)
      .description(
        `${decision} a pending request (single use). With a daemon running it goes through its HTTP API with the token in $PIT_HTTP_TOKEN ([daemon.http].token_env); otherwise the next sweep carries it out`,
      )
      .argument('<id>', 'the request id (see pit approvals)')
      .option('--reason <text>', 'recorded with the decision')
      .option(
        '--as <approver>',
        'answer as a named approver ([daemon.http.approvers.<name>]): its token is read from the variable its token_env names, and the decision is recorded under that name',
      )
      .option('--json', 'print JSON')
      .action((id: string, options: { reason?: string; json?: boolean; as?: string }) =>
        run(() => decide(context, decision, id, options))(),
      );
  }

  program
    .command('bus')
    .description("a mission's event bus")
    .command('tail')
    .description(
      "print a cell's bus stream (messages, checkpoints, handoffs) from its log; works while the daemon serves the bus",
    )
    .argument('<cell>', 'the cell: its uuid or a unique prefix of it (as `pit status` prints it)')
    .option('--from <seq>', 'start at this sequence number', '1')
    .option('--follow', 'keep printing new events until interrupted')
    .option('--json', 'one JSON event per line')
    .action((uuid: string, options: { from?: string; follow?: boolean; json?: boolean }) =>
      run(() => busTail(context, uuid, options))(),
    );

  program
    .command('snapshot')
    .description("an agent's last-known-good config snapshots")
    .command('list')
    .description(
      'the retained snapshot sets of an agent, newest first (store: <state_dir>/snapshots/<agent>/)',
    )
    .argument('<agent>', 'the agent')
    .option('--json', 'print JSON')
    .action((agent: string, options: { json?: boolean }) =>
      run(() => listSnapshots(context, agent, options))(),
    );

  program
    .command('rollback')
    .description(
      "restore an agent's config files to last known good (or to the canonical version in git when no snapshot exists); the hashes are logged",
    )
    .argument('<agent>', 'the agent')
    .option('--to <set>', 'roll back to this retained set (a prefix of its sha256) instead')
    .option('--reason <text>', 'recorded in the event log')
    .option('--restart', 'then restart the agent to use it (as `pit restart AGENT` does)')
    .option('--json', 'print JSON')
    .action(
      (
        agent: string,
        options: { to?: string; reason?: string; json?: boolean; restart?: boolean },
      ) => run(() => rollback(context, agent, options))(),
    );

  const checkpoints = program
    .command('checkpoint')
    .description("a cell's workspace checkpoints (checkpoints/<ts>.tar.gz)");
  for (const [action, summary] of [
    ['create', 'archive the workspace now'],
    ['list', 'list the checkpoints, newest first'],
    [
      'restore',
      'verify and restore a checkpoint (the newest unless --name), swapping it in for workspace/',
    ],
  ] as const) {
    const sub = checkpoints
      .command(action)
      .description(summary)
      .argument('<cell>', 'the cell: its uuid or a unique prefix of it (as `pit status` prints it)')
      .option('--json', 'print JSON');
    if (action !== 'list')
      sub.option(
        '--reason <text>',
        action === 'create'
          ? "recorded in the checkpoint's manifest and the event log"
          : 'recorded in the event log',
      );
    if (action === 'restore') sub.option('--name <name>', 'the checkpoint to restore');
    sub.action((uuid: string, options: { name?: string; reason?: string; json?: boolean }) =>
      run(() => checkpoint(context, action, uuid, options))(),
    );
  }

  program
    .command('why')
    .description(
      "the story of an agent's last incidents from the event logs: probe results, the policy rule that fired, approvals and who gave them, rollback hashes, restart outcomes",
    )
    .argument('<agent>', 'the agent')
    .option('--last <n>', 'how many incidents', '3')
    .option('--json', 'print JSON')
    .action((agent: string, options: { json?: boolean; last?: string }) =>
      run(async () =>
        why(
          {
            ...(await cellsContext()),
            extraLogs: [
              join((await context.config()).config.daemon.state_dir, 'logs', 'events.jsonl'),
            ],
            configAgents: Object.keys((await context.config()).config.agents),
          },
          agent,
          options,
        ),
      )(),
    );

  program
    .command('logs')
    .description(
      "an agent's output across its rotated files, oldest first: the last lines of its stdout (logs/<agent>.log) on stdout, then of its stderr (logs/<agent>.err.log) on stderr; works without a daemon",
    )
    .argument(
      '<agent>',
      'the agent: NAME, or CELL/NAME (a cell uuid or its prefix) when several cells have it',
    )
    .option('-n, --lines <n>', 'how many of the last lines of each stream (0: all)', '100')
    .option(
      '-f, --follow',
      'keep printing new output of both streams, also across a rotation (Ctrl-C stops)',
    )
    .option(
      '--since <time>',
      "a duration (90s, 10m, 2h, 1d) or an ISO-8601 time: from the run going at that time (output has no timestamps; the daemon's start headers do)",
    )
    .option(
      '--stderr',
      'only the agent’s stderr (with -f too); exits 2 for an agent with merge_stderr = true (its stderr is in logs/<agent>.log)',
    )
    .addHelpText(
      'after',
      '\nThe agent’s stdout lines go to stdout and its stderr lines to stderr: `pit logs forge 2>/dev/null` hides its stderr.\nWith merge_stderr = true ([agents.<name>] or [logs]) both are in logs/<agent>.log, in the order written, and go to stdout.',
    )
    .action((agent: string, options: LogsOptions) =>
      run(async () => {
        const cells = await cellsContext();
        return logs(
          {
            ...cells,
            mergesStderr: async (name) => mergesStderr((await context.config()).config, name),
          },
          agent,
          options,
        );
      })(),
    );

  program
    .command('mcp')
    .description(
      'serve the Pit over MCP on stdin/stdout, for an agent harness that spawns it: read-only tools (pit_status, pit_dead_agents, pit_approvals, pit_why, pit_logs, pit_bus_tail) and resources; with [mcp] actions = true and --as, pit_approve, pit_deny, pit_restart, pit_stop through the running daemon',
    )
    .option(
      '--as <approver>',
      'act as this [daemon.http.approvers.<name>]: its token is read from the variable its token_env names, and the daemon checks it on every action',
    )
    .addHelpText(
      'after',
      "\nThe caller's own agent (LAZARUS_AGENT, LAZARUS_CELL_UUID) is never approved, restarted or stopped: such a request is refused and logged on stderr.\nThe daemon also serves MCP over Streamable HTTP at http://<daemon.http.listen>/mcp (Authorization: Bearer <token>).",
    )
    // Loaded only here: the MCP SDK costs every other command (and the daemon) ~17 MB of memory.
    .action((options: McpOptions) =>
      run(async () => (await import('./commands/mcp.js')).mcp(context, options))(),
    );

  program
    .command('demo')
    .description(
      "provision a demo mission cell under ./.pit/demo with three real agents, start the daemon with its dashboard, then kill one (restarted), corrupt another's config (rolled back and restarted) and stop a third under policy ask (an approval appears); runs until Ctrl-C",
    )
    .option('--dir <dir>', 'where the demo lives', '.pit/demo')
    .option('--listen <host:port>', "the dashboard's address", '127.0.0.1:7420')
    .option('--exit-when-done', 'stop (with the agents) once the scripted part has played')
    .action((options: { dir?: string; listen?: string; exitWhenDone?: boolean }) =>
      run(() => demo(context, options))(),
    );

  return program;
}

/** Collects a repeatable option into a list. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export { CommanderError };
