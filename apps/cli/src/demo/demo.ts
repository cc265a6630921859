import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cellPaths, PitError, provisionCell, readEvents, type AnyCellEvent } from '@pit/cell-spec';
import { readDaemonLock, runDaemon, type DaemonHandle } from '@pit/daemon';
import { RefusedError } from '../errors.js';
import { narration } from './narration.js';
import { EXIT } from '../exit-codes.js';
import type { CommandContext } from '../context.js';

/** Options of `pit demo`. */
export interface DemoOptions {
  /** Where the demo lives. @default ./.pit/demo */
  dir?: string;
  /** The dashboard's address. @default 127.0.0.1:7420 */
  listen?: string;
  /** Stop (agents included) once the scripted scenario has played, instead of running until Ctrl-C. */
  exitWhenDone?: boolean;
}

const AGENTS = [
  { name: 'scout', role: 'lead', story: 'killed with SIGKILL: restarted' },
  {
    name: 'smith',
    role: 'write',
    story: 'config corrupted, crashes on start: rolled back and restarted',
  },
  { name: 'oracle', role: 'read', story: 'policy ask: stopped for good until a human approves' },
] as const;

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** `word` as one shell word: as it is when it holds nothing a shell treats specially, else single-quoted. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Where the built demo agent is (dist when built; the TypeScript source under tsx). */
function agentProgram(): string[] {
  const built = fileURLToPath(new URL('./demo-agent.js', import.meta.url));
  if (existsSync(built)) return [process.execPath, built];
  const source = fileURLToPath(new URL('./agent.ts', import.meta.url));
  return [
    process.execPath,
    '--conditions=@pit/source',
    '--import',
    import.meta.resolve('tsx'),
    source,
  ];
}

/**
 * `pit demo`: provisions a demo mission cell with three small real agents, starts the daemon
 * with its dashboard, then kills one agent (restarted), corrupts another's config so it crashes
 * on start (rolled back and restarted), and stops a third for good under policy `ask` (an
 * approval appears on the dashboard and in `pit approvals`), narrating from the event log.
 */
export async function demo(context: CommandContext, options: DemoOptions): Promise<number> {
  const out = (line: string) => context.output.out(line);
  const base = resolve(context.environment.cwd, options.dir ?? '.pit/demo');
  const stateDir = join(base, 'state');
  const holder = await readDaemonLock(stateDir).catch(() => undefined);
  if (holder)
    throw new RefusedError(
      `a demo daemon is already running (pid ${holder.pid}) in ${base}: stop it first`,
    );
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true, mode: 0o700 });

  const { dir: cellDir, manifest } = await provisionCell(join(base, 'missions'), {
    mission: 'demo',
    name: 'demo',
    created_by: context.actor,
    agents: AGENTS.map(({ name, role }) => ({ name, role })),
  });
  mkdirSync(join(cellDir, 'config'));
  const smithConfig = join(cellDir, 'config', 'smith.json');
  writeFileSync(
    smithConfig,
    `${JSON.stringify({ model: 'claude-sonnet', provider: 'anthropic', temperature: 0.2 }, null, 2)}\n`,
  );

  const program = agentProgram();
  const ports = { scout: await freePort(), smith: await freePort(), oracle: await freePort() };
  const toml = (value: unknown) => JSON.stringify(value);
  const agentSection = (name: keyof typeof ports, extra: string[] = [], config: string[] = []) => [
    `[agents.${name}]`,
    `argv = ${toml([...program, '--port', String(ports[name]), ...extra])}`,
    'startup_grace_s = 20',
    'stop_grace_s = 2',
    ...config,
    `[agents.${name}.probes]`,
    `health_url = ${toml(`http://127.0.0.1:${ports[name]}/health`)}`,
    'timeout_s = 1',
    'failure_threshold = 2',
  ];
  const configPath = join(base, 'pit.toml');
  writeFileSync(
    configPath,
    [
      '# Written by `pit demo`: a fleet of three demo agents with fast timings.',
      '[daemon]',
      'state_dir = "state"',
      'stop_agents_on_exit = true',
      '[daemon.http]',
      `listen = ${toml(options.listen ?? '127.0.0.1:7420')}`,
      '[cells]',
      'root = "missions"',
      'heartbeat_stale_s = 3',
      'poll_interval_s = 0.5',
      '[checkpoints]',
      'interval_s = 0',
      '[bus]',
      'enabled = false',
      '[policy.defaults]',
      'mode = "auto"',
      'dead_after = "0s"',
      'backoff = { initial = "1s", cap = "10s", jitter = 0 }',
      'approval = { channels = ["cli", "http"], timeout = "30m", on_timeout = "record_only" }',
      '# smith restarts as it is, so a corrupted config makes it crash on start (exit 78 = bad_config): then it is rolled back.',
      '[policy.agents.smith]',
      'rollback_before_restart = false',
      '[policy.agents.oracle]',
      'mode = "ask"',
      '[policy.classify.exit_codes]',
      '"78" = "bad_config"',
      ...agentSection('scout'),
      ...agentSection(
        'smith',
        ['--config', smithConfig],
        ['config_files = [{ path = "config/smith.json" }]'],
      ),
      ...agentSection('oracle'),
      '',
    ].join('\n'),
  );
  chmodSync(configPath, 0o600);

  const env = { ...context.environment.env };
  let token = env.PIT_HTTP_TOKEN;
  if (!token) {
    token = randomBytes(24).toString('hex');
    env.PIT_HTTP_TOKEN = token;
  }
  out(`The Pit demo: cell ${manifest.uuid} in ${join(base, 'missions')}`);
  for (const agent of AGENTS) out(`  ${agent.name.padEnd(7)} (${agent.role}): ${agent.story}`);

  // The daemon listens before it starts any agent: a busy port fails here with nothing to stop.
  const daemon: DaemonHandle = await runDaemon({
    configPath,
    env,
    cwd: base,
    logLevel: 'warn',
    stopAgentsOnExit: true,
  }).catch((error: unknown) => {
    if (PitError.is(error) && error.code === 'DAEMON_HTTP')
      throw new RefusedError(
        `${error.message} (another demo or program uses it?): stop it, or give --listen 127.0.0.1:0 for a free port`,
      );
    throw error;
  });
  // Under `pnpm demo` the command is `pnpm pit …`; installed, it is `pit …`.
  const pitCommand = context.environment.env.npm_lifecycle_event === 'demo' ? 'pnpm pit' : 'pit';
  const tokenMadeUp = env.PIT_HTTP_TOKEN !== context.environment.env.PIT_HTTP_TOKEN;
  // What the operator pastes: answering an approval goes through the daemon and needs its token,
  // so a token the demo made up is part of the printed command (the operator's own is in their env).
  const pitInvocation = `${tokenMadeUp ? `PIT_HTTP_TOKEN=${token} ` : ''}${pitCommand} --config ${shellWord(configPath)}`;
  out(
    `\ndaemon pid ${daemon.pid} is supervising. Dashboard: ${daemon.url}/  (token for approve/deny: ${tokenMadeUp ? token : '$PIT_HTTP_TOKEN'})`,
  );
  out(
    `Look around: ${pitCommand} --config ${shellWord(configPath)} status | why smith | approvals\n`,
  );

  // Narrate from the event log: the same story `pit why` tells.
  let offset = 0;
  let line = 1;
  const seen: AnyCellEvent[] = [];
  const narrate = async () => {
    for await (const entry of readEvents(cellPaths(cellDir).events, {
      fromOffset: offset,
      fromLine: line,
    })) {
      if (!entry.ok) break; // a line being written right now: read it next time
      offset = entry.offset + Buffer.byteLength(JSON.stringify(entry.event)) + 1;
      line = entry.line + 1;
      seen.push(entry.event);
      const e = entry.event as AnyCellEvent & Record<string, unknown>;
      const said = narration(e, { cellDir, pitInvocation });
      if (said && typeof e.agent === 'string')
        out(`${e.ts.slice(11, 23)}  ${e.agent.padEnd(7)} ${said}`);
    }
  };
  const status = async (name: string) =>
    (await daemon.supervisor.status()).agents.find((agent) => agent.agent === name);
  const until = async (
    what: string,
    check: () => Promise<boolean> | boolean,
    timeoutMs = 60_000,
  ) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await narrate();
      if (await check()) return;
      if (Date.now() > deadline)
        throw new RefusedError(
          `demo: ${what} did not happen within ${timeoutMs / 1000} s; see ${join(base, 'missions', manifest.uuid, 'logs')}`,
        );
      await new Promise((done) => setTimeout(done, 200));
    }
  };
  const killed = (name: string, pid: number | undefined) => {
    if (pid && pid > 1) process.kill(pid, 'SIGKILL');
    out(`\n>>> killed ${name} (pid ${pid}) with SIGKILL`);
  };

  try {
    await until('all three agents healthy', async () =>
      (await daemon.supervisor.status()).agents.every((agent) => agent.health === 'healthy'),
    );
    await until('a last-known-good snapshot of smith', () =>
      existsSync(join(stateDir, 'snapshots', 'smith', 'last-good.json')),
    );

    const scout = await status('scout');
    killed('scout', scout?.pid);
    await until('scout restarted', async () => {
      const now = await status('scout');
      return now?.health === 'healthy' && now.pid !== scout?.pid;
    });

    const smith = await status('smith');
    writeFileSync(smithConfig, '{"model": "gpt-9", "provider": '); // what a self-modifying agent leaves behind
    out(`\n>>> corrupted smith's config (${smithConfig}) and killed it: it will crash on start`);
    if (smith?.pid && smith.pid > 1) process.kill(smith.pid, 'SIGKILL');
    await until('smith rolled back and restarted', async () => {
      const now = await status('smith');
      return (
        now?.health === 'healthy' &&
        now.pid !== smith?.pid &&
        seen.some(
          (event) =>
            event.event === 'config_rolled_back' && (event as { agent?: string }).agent === 'smith',
        )
      );
    });

    const oracle = await status('oracle');
    killed('oracle', oracle?.pid);
    await until('an approval request for oracle', async () =>
      Boolean((await status('oracle'))?.pending_approval),
    );
    out(
      `\nThe scripted part is done. ${options.exitWhenDone ? 'Stopping.' : 'The fleet keeps running: Ctrl-C stops the daemon and the demo agents.'}`,
    );
  } catch (error) {
    await daemon.stop({ stopAgents: true });
    throw error;
  }
  if (options.exitWhenDone) {
    await daemon.stop({ stopAgents: true });
    return EXIT.ok;
  }
  // Telling the story must never take the demo (and its agents) down: a failed read is said and retried.
  const follow = setInterval(
    () =>
      void narrate().catch((error: unknown) =>
        context.output.err(`pit demo: cannot read the event log: ${String(error)}`),
      ),
    500,
  );
  await daemon.done;
  clearInterval(follow);
  return EXIT.ok;
}
