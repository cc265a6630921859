import { randomBytes } from 'node:crypto';
import { accessSync, constants, lstatSync, promises as fs, statSync, type Stats } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import {
  assertAgentName,
  cellPaths,
  ensureCellSubdir,
  rotateLogFiles,
  type IsolationProfile,
  type LogRotationLimits,
} from '@pit/cell-spec';
import type { AgentCgroups } from './agent-cgroups.js';
import {
  headerAtNow,
  spawnDirect,
  startError,
  type SpawnRequest,
  type Spawned,
  type SpawnedExit,
} from './agent-spawn.js';
import { DaemonError } from './errors.js';
import { pollExit } from './exit-poll.js';
import { createLauncher, type AgentSpawner } from './launcher-client.js';
import type { Logger } from './logger.js';
import { createPodman, type Podman } from './podman.js';
import {
  checkProcess,
  INSTANCE_ENV,
  readProcessMarks,
  signalGroup,
  signalProcess,
  SPAWN_ENV,
} from './proc.js';
import { handOverCell } from './sandbox-owner.js';
import { sandboxArgv, type SandboxUser } from './sandbox.js';

/** How an agent's process ended. */
export interface AgentExit {
  /** Exit code, or `null` when killed by a signal or unknown. At levels 2 and 3 a signal death is reported as 128+N. */
  code: number | null;
  signal: NodeJS.Signals | null;
  at: Date;
  /**
   * `waited`: the daemon's own child, status from wait(2). `zombie`: an adopted process found
   * exited-but-unreaped, status read from `/proc/<pid>/stat`. `vanished`: an adopted process
   * that is gone (status unknown) or whose pid now belongs to another process.
   */
  how: 'waited' | 'zombie' | 'vanished';
  /**
   * The nonce of the process a standing order started the moment this one exited (see
   * {@link Executor.standRestart}): the next start with this nonce keeps it.
   */
  prestarted?: string;
}

/** A running agent process, started or adopted by the executor. */
export interface AgentProcess {
  agent: string;
  /** The cell's uuid, or `undefined` for an agent outside cells. */
  cell: string | undefined;
  /**
   * The pid the daemon tracks and signals: the leader of the agent's process group. At level 1
   * it is the agent itself; at level 2 the `unshare` holding the sandbox (it exits exactly when
   * the agent does); at level 3 the attached `podman run` client.
   */
  pid: number;
  /** Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22). */
  startTime: number;
  startedAt: Date;
  level: 1 | 2 | 3;
  /** Level 3: the container's name. */
  container: string | undefined;
  /** The `PIT_SPAWN` nonce of its start; `undefined` for a process an older daemon started. */
  nonce: string | undefined;
  /** `true` when found running after a daemon restart rather than started by this daemon. */
  adopted: boolean;
  /** Who forked it: the agent launcher, the daemon itself, or neither (`adopted`). */
  via: 'launcher' | 'direct' | 'adopted';
  /** Settles once the process has exited (never rejects). */
  exited: Promise<AgentExit>;
  /** The exit once it happened. */
  readonly exit: AgentExit | undefined;
}

/** How to start an agent. */
export interface StartAgentOptions {
  /** The agent's name (`^[a-z0-9][a-z0-9._-]{0,63}$`). */
  agent: string;
  /** The command; argv[0] is looked up in the agent's PATH. */
  argv: string[];
  /** The agent's whole environment (the caller composes it). LAZARUS_CELL_UUID, LAZARUS_AGENT, PIT_INSTANCE and PIT_SPAWN are added. */
  env: Record<string, string>;
  /**
   * The `PIT_SPAWN` mark of this start (32 lower-case hex characters), for a caller that records
   * it before the start. @default a new random nonce ({@link newSpawnNonce})
   */
  nonce?: string;
  /**
   * Settles once the caller's record of this start (its nonce) is on disk: the fork waits for it,
   * while everything before the fork (directories, logs, the agent's cgroup) is done meanwhile.
   */
  recorded?: Promise<unknown>;
  /** The cell the agent runs in; omit for an agent outside cells. */
  cell?: { uuid: string; dir: string };
  /** Working directory. @default the cell's `workspace/` (required outside cells) */
  cwd?: string;
  /** Where stdout is appended (and stderr with `mergeStderr`). @default the cell's `logs/<agent>.log` (required outside cells) */
  logPath?: string;
  /**
   * Where stderr is appended, unless `mergeStderr`. @default the cell's `logs/<agent>.err.log`
   * (outside cells: `errorLogPath`, or merged into `logPath` when it is not given)
   */
  errorLogPath?: string;
  /** stdout and stderr to the one log `logPath`, in the order written (`merge_stderr`). @default false */
  mergeStderr?: boolean;
  /** @default { level: 1 } */
  isolation?: IsolationProfile;
  /** Level 2: directories to hide (other agents' homes). */
  hiddenPaths?: string[];
  /** Level 2: the agent's own home (`home` in `cell.json`), kept visible read-only. */
  home?: string;
  /**
   * Level 2 with `sandboxUser`: hand the whole workspace tree to that uid before the start, not
   * only when its top directory is not the uid's (the caller rewrote files in it: a config
   * rollback). @default false
   */
  reownWorkspace?: boolean;
  /**
   * Level 2 with `sandboxUser`: files (relative to the cell's `workspace/`) handed to that uid at
   * every start, wherever they are (config and provider files a rollback or switch rewrote).
   */
  workspaceFiles?: string[];
}

/** Options of {@link createExecutor}. */
export interface ExecutorOptions {
  logger?: Logger;
  /** Time between SIGTERM and SIGKILL when stopping. @default 10000 (ms) */
  stopGraceMs?: number;
  /**
   * How often an adopted process (not the daemon's child, so no exit event) is checked in
   * `/proc`. @default 1000 (ms)
   */
  adoptPollMs?: number;
  /** The daemon's environment, for finding `unshare` and running podman. @default {} */
  env?: NodeJS.ProcessEnv;
  /** Level 3: where containers.conf is written. Required for level-3 agents. */
  podmanConfigDir?: string;
  /** Level 3: the podman binary. @default 'podman' */
  podmanBinary?: string;
  /**
   * Level 2: run agents as this host uid/gid (the daemon sets `[sandbox] uid`/`gid` when it runs
   * as root, whose user namespaces would make them root to the file system). A cell's
   * `workspace/` and `.lazarus/heartbeats/` are handed to it before each start (sandbox-owner.ts).
   * @default the daemon's own user
   */
  sandboxUser?: SandboxUser;
  /** Kill what is left of an agent's process group when its leader exits. @default true */
  killGroupOnExit?: boolean;
  /**
   * Marks every agent process with `PIT_INSTANCE=<instance>` in its environment, so that a
   * restarted daemon can find an agent it started but did not get to record
   * (`findMarkedProcesses`), and adopts only processes with this mark. The daemon uses a hash of
   * its state directory. @default a random id (this executor only)
   */
  instance?: string;
  /**
   * Rotate an agent's logs (`<agent>.log` → `<agent>.log.1` …, `<agent>.err.log` the same)
   * before a start, each when it is at or over `maxBytes`. A running agent's log is rotated by agent-log-rotator.ts (with its cgroup
   * frozen), where agent cgroups are on. @default no rotation
   */
  logRotation?: LogRotationLimits;
  /** Called once for every exit of a started or adopted agent. */
  onExit?: (process: AgentProcess, exit: AgentExit) => void;
  /**
   * Fork agents from a small long-lived launcher process (launcher-client.ts) instead of from
   * this process, whose size every fork would otherwise copy. A start waits for a launcher that
   * is still starting (up to 2 s after its start); while none is ready after that (it died and is
   * being replaced, or cannot run) agents are spawned directly. Agents are marked
   * with PIT_INSTANCE either way (a random instance when `instance` is not given).
   * @default false
   */
  launcher?: boolean;
  /**
   * Put every level-1 and level-2 start into its own cgroup (agent-cgroups.ts): the whole group
   * is killed before the agent's next start and once it has exited (with `killGroupOnExit`).
   * @default none (descendants are found by their marks only)
   */
  cgroups?: AgentCgroups;
}

/** Starts, stops and watches agent processes. */
export interface Executor {
  /**
   * Starts an agent in its own process group with stdout and stderr appended to its logs.
   * Resolves once the process exists (not once it is healthy).
   * @throws {DaemonError} DAEMON_SPAWN_FAILED (argv[0] not found, bad cwd), DAEMON_ISOLATION_UNAVAILABLE.
   */
  start(options: StartAgentOptions): Promise<AgentProcess>;
  /**
   * Takes over an agent that outlived a daemon restart, only on proof: `pid` must still be the
   * process started at `startTime`, lead its own session, and carry in its environment this
   * executor's instance, the agent's name and cell, and exactly the recorded `nonce` (none for a
   * process an older daemon started). Resolves `undefined` otherwise (dead, zombie, a recycled
   * pid, a foreign process, another start's or another agent's process).
   * Adopted processes are watched by polling `/proc` every `adoptPollMs`.
   */
  adopt(options: AdoptAgentOptions): Promise<AgentProcess | undefined>;
  /**
   * SIGTERM to the agent's process group, SIGKILL after the grace period; resolves with the exit.
   * @throws {DaemonError} DAEMON_UNSAFE_SIGNAL never for a tracked process (its pid is > 1).
   */
  stop(process: AgentProcess, options?: { graceMs?: number }): Promise<AgentExit>;
  /**
   * Leaves a standing order with the agent launcher (standing restarts): the moment `running`
   * exits, the start `spec` describes is made at once, its group's leftovers killed first. That
   * exit then names the process (`AgentExit.prestarted`, its nonce): a later {@link start} with
   * the same nonce and the same command, directory, environment and logs keeps it instead of
   * forking; {@link discardPrestarted} kills it. Only for level-1 agents forked by a ready
   * launcher, with agent cgroups killed by `cgroup.kill` or none. Resolves once the order stands.
   * @returns whether it stands.
   */
  standRestart(spec: StartAgentOptions, running: AgentProcess): Promise<boolean>;
  /**
   * Kills the process a standing order started (see {@link standRestart}) unless a start kept it;
   * then what it left in its cgroup, when no other process of the agent runs.
   */
  discardPrestarted(nonce: string, why: string): Promise<void>;
  /** The processes currently tracked. */
  running(): AgentProcess[];
  /** The agent launcher's pid while it is ready (with `launcher: true`), else `undefined`. */
  launcherPid(): number | undefined;
  /** Stops watching adopted processes and stops the launcher. Leaves every agent running. */
  close(): Promise<void>;
}

/** What {@link Executor.adopt} needs (from the daemon's record of the agent). */
export interface AdoptAgentOptions {
  agent: string;
  cell?: string;
  pid: number;
  startTime: number;
  /** The recorded `PIT_SPAWN` nonce; `undefined` for a process an older daemon started. */
  nonce?: string;
  level?: 1 | 2 | 3;
  container?: string;
  /**
   * A process started outside the Pit (by hand, `LAZARUS_CELL_UUID` and `LAZARUS_AGENT` set) that
   * the agent's heartbeat names: proved by {@link handStartRefusal} instead of the start's marks.
   */
  byHand?: boolean;
}

/** What the executor's functions share: its options and what it tracks. */
interface ExecutorState {
  options: ExecutorOptions;
  tracked: Set<AgentProcess>;
  pollers: Set<NodeJS.Timeout>;
  /** Whether a started process's exit is now polled (its launcher died): signalled like an adopted one. */
  polledAt: WeakMap<AgentProcess, () => boolean>;
  daemonEnv: NodeJS.ProcessEnv;
  graceDefault: number;
  pollMs: number;
  instance: string;
  launcher: AgentSpawner | undefined;
  podman: Podman | undefined;
  /** Processes standing orders started at an exit, not yet kept or killed, by their nonce. */
  prestarted: Map<string, NonNullable<SpawnedExit['respawned']>>;
  /** Starts in progress, by `<cell>/<agent>`. */
  starting: Map<string, number>;
  /** Processes a stop was asked for: no standing order is left for them any more. */
  stopping: WeakSet<AgentProcess>;
}

/**
 * Creates the executor: the part of the daemon that runs agent processes.
 * @example
 * const executor = createExecutor({ logger });
 * const forge = await executor.start({ agent: 'forge', argv: ['node', 'agent.js'], env: { PATH: process.env.PATH! }, cell: { uuid, dir } });
 * const exit = await forge.exited;
 */
export function createExecutor(options: ExecutorOptions = {}): Executor {
  const pollMs = options.adoptPollMs ?? 1000;
  const instance = options.instance ?? randomBytes(8).toString('hex');
  const launcher: AgentSpawner | undefined = options.launcher
    ? createLauncher({
        instance,
        pollMs,
        ...(options.logger ? { logger: options.logger } : {}),
      })
    : undefined;
  const state: ExecutorState = {
    options,
    tracked: new Set<AgentProcess>(),
    pollers: new Set<NodeJS.Timeout>(),
    polledAt: new WeakMap<AgentProcess, () => boolean>(),
    daemonEnv: options.env ?? {},
    graceDefault: options.stopGraceMs ?? 10_000,
    pollMs,
    instance,
    launcher,
    podman: undefined,
    prestarted: new Map(),
    starting: new Map(),
    stopping: new WeakSet(),
  };

  return {
    start: async (spec) => {
      const key = `${spec.cell?.uuid ?? ''}/${spec.agent}`;
      state.starting.set(key, (state.starting.get(key) ?? 0) + 1);
      try {
        return await startAgent(state, spec);
      } finally {
        const left = (state.starting.get(key) ?? 1) - 1;
        if (left === 0) state.starting.delete(key);
        else state.starting.set(key, left);
      }
    },
    adopt: (spec) => adoptAgent(state, spec),
    stop: (agentProcess, stopOptions) => stopAgent(state, agentProcess, stopOptions),
    standRestart: (spec, running) => standRestart(state, spec, running),
    discardPrestarted: (nonce, why) => discardPrestarted(state, nonce, why),
    running: () => [...state.tracked],
    launcherPid: () => launcher?.launcherPid(),
    async close() {
      for (const timer of state.pollers) clearInterval(timer);
      state.pollers.clear();
      await launcher?.close();
      await options.cgroups?.close();
    },
  };
}

/** The podman runner, created on first use (level 3). */
function getPodman(state: ExecutorState): Podman {
  const { options } = state;
  if (!options.podmanConfigDir) {
    throw new DaemonError(
      'DAEMON_ISOLATION_UNAVAILABLE',
      'isolation level 3: the executor has no podmanConfigDir (the daemon sets it to <state_dir>/podman)',
    );
  }
  state.podman ??= createPodman({
    configDir: options.podmanConfigDir,
    env: state.daemonEnv,
    ...(options.podmanBinary ? { binary: options.podmanBinary } : {}),
  });
  return state.podman;
}

/** Records an exit: untracks the process, settles `exited`, logs it and calls onExit. */
function finish(
  state: ExecutorState,
  agentProcess: AgentProcess,
  settle: (exit: AgentExit) => void,
  exit: AgentExit,
): void {
  const { options } = state;
  state.tracked.delete(agentProcess);
  settle(exit);
  // At debug: the supervisor logs the exit of the agent's current process once, as a warning.
  options.logger?.debug('agent exited', {
    agent: agentProcess.agent,
    cell: agentProcess.cell,
    pid: agentProcess.pid,
    code: exit.code,
    signal: exit.signal,
    how: exit.how,
  });
  try {
    options.onExit?.(agentProcess, exit);
  } catch (error) {
    options.logger?.error('onExit handler threw', {
      agent: agentProcess.agent,
      error: String(error),
    });
  }
}

/** An AgentProcess with its `exited` promise and the function that settles it. */
function makeProcess(fields: Omit<AgentProcess, 'exited' | 'exit'>): {
  agentProcess: AgentProcess;
  settle: (exit: AgentExit) => void;
} {
  let settle!: (exit: AgentExit) => void;
  let exit: AgentExit | undefined;
  const exited = new Promise<AgentExit>((resolve) => {
    settle = (value) => {
      exit = value;
      resolve(value);
    };
  });
  const agentProcess: AgentProcess = {
    ...fields,
    exited,
    get exit() {
      return exit;
    },
  };
  return { agentProcess, settle };
}

/** What {@link wrap} needs besides the state and the start options. */
interface WrapInput {
  agent: string;
  profile: IsolationProfile;
  env: Record<string, string>;
  cwd: string;
}

/** The command that runs the agent at its isolation level (level 2: in unshare; level 3: podman run). */
async function wrap(
  state: ExecutorState,
  spec: StartAgentOptions,
  { agent, profile, env, cwd }: WrapInput,
): Promise<{ command: string[]; spawnEnv: NodeJS.ProcessEnv; container?: string }> {
  if (profile.level === 1) return { command: spec.argv, spawnEnv: env };
  const { writable, readonly } = await sandboxMounts(spec, profile, cwd);
  if (profile.level === 2) {
    const unshare = findInPath('unshare', state.daemonEnv.PATH ?? '/usr/bin:/bin');
    if (!unshare)
      throw new DaemonError(
        'DAEMON_ISOLATION_UNAVAILABLE',
        `agent ${agent}: isolation level 2 needs unshare (util-linux) in PATH`,
      );
    const user = state.options.sandboxUser;
    if (user && spec.cell) await handOverWritable(state, spec, user);
    const command = sandboxArgv({
      unshare,
      workdir: cwd,
      writable,
      hidden: (spec.hiddenPaths ?? []).filter((path) => path !== spec.home),
      readonly: [...readonly, ...(spec.home ? [spec.home] : [])],
      network: profile.network ?? 'host',
      ...(user ? { user } : {}),
      argv: spec.argv,
    });
    return { command, spawnEnv: env };
  }
  const engine = getPodman(state);
  await engine.prepare(profile.image);
  const container = `pit-${agent}-${spec.cell ? spec.cell.uuid.slice(0, 8) : 'host'}`;
  await engine.remove(container);
  const command = engine.runArgv({
    name: container,
    ...(profile.image ? { image: profile.image } : {}),
    writable,
    readonly,
    workdir: cwd,
    envNames: Object.keys(env),
    network: profile.network ?? 'none',
    argv: spec.argv,
  });
  return { command, spawnEnv: { ...engine.env, ...env }, container };
}

/**
 * What a sandbox (levels 2 and 3) binds. In a cell: the cell read-only, then its `workspace/`
 * and `.lazarus/heartbeats/` read-write; the daemon's own files in the cell (`cell.json`,
 * `logs/`, `.lazarus/state.json`, `checkpoints/`, `bus/`) stay read-only. Both writable
 * directories must be real directories of the cell (no symlink at any step below it), else the
 * start is refused. Outside cells: the working directory read-write.
 */
async function sandboxMounts(
  spec: StartAgentOptions,
  profile: IsolationProfile,
  cwd: string,
): Promise<{ writable: string[]; readonly: string[] }> {
  const extra = profile.readonly_paths ?? [];
  if (!spec.cell) return { writable: [cwd], readonly: extra };
  const paths = cellPaths(spec.cell.dir);
  for (const dir of [paths.workspace, paths.lazarus, paths.heartbeats]) {
    // In order, each one's parent checked before it: a missing one is made, never through a link.
    const stat = await fs.lstat(dir).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
      await fs.mkdir(dir, { mode: 0o755 });
      return fs.lstat(dir);
    });
    if (!stat.isDirectory())
      throw new DaemonError(
        'DAEMON_SPAWN_FAILED',
        `agent ${spec.agent}: ${dir} is not a directory (a symlink?): refusing to bind it writable`,
      );
  }
  return { writable: [paths.workspace, paths.heartbeats], readonly: [spec.cell.dir, ...extra] };
}

/**
 * Hands a cell's `workspace/` and `.lazarus/heartbeats/` to the uid a level-2 agent runs as
 * (sandbox-owner.ts): what the daemon or a restore wrote there as root stays writable to it.
 * @throws {DaemonError} DAEMON_SPAWN_FAILED naming the cell when they cannot be handed over.
 */
async function handOverWritable(
  state: ExecutorState,
  spec: StartAgentOptions,
  user: SandboxUser,
): Promise<void> {
  const cell = spec.cell!;
  try {
    const handed = await handOverCell(cell.dir, user, {
      deep: spec.reownWorkspace === true,
      files: spec.workspaceFiles ?? [],
    });
    if (handed.changed > 0)
      state.options.logger?.info('cell workspace handed to the sandbox uid', {
        agent: spec.agent,
        cell: cell.uuid,
        uid: user.uid,
        gid: user.gid,
        changed: handed.changed,
      });
    if (handed.skipped.length > 0)
      state.options.logger?.warn(
        'cell workspace: files left to their owner (more than one hard link, or nested too deep): read-only to the agent',
        { agent: spec.agent, cell: cell.uuid, uid: user.uid, files: handed.skipped },
      );
  } catch (error) {
    throw new DaemonError(
      'DAEMON_SPAWN_FAILED',
      `agent ${spec.agent}: cannot hand the workspace and heartbeats of cell ${cell.uuid} (${cell.dir}) to uid ${user.uid}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** {@link Executor.start}. */
/** A start composed by {@link composeStart}: its spawn request (header in two parts) and what tracking it needs. */
interface ComposedStart {
  agent: string;
  cwd: string;
  env: Record<string, string>;
  profile: IsolationProfile;
  nonce: string;
  container: string | undefined;
  request: Omit<SpawnRequest, 'header'>;
  /** The log header, before and after the start's time. */
  headerAt: [string, string];
}

/** Everything a start decides before the fork: checks, working directory, environment, wrapper, logs. */
async function composeStart(state: ExecutorState, spec: StartAgentOptions): Promise<ComposedStart> {
  const agent = assertAgentName(spec.agent, 'agent');
  if (spec.argv.length === 0 || spec.argv[0] === '')
    throw new DaemonError('DAEMON_SPAWN_FAILED', `agent ${agent}: argv is empty`);
  const paths = spec.cell ? cellPaths(spec.cell.dir) : undefined;
  const cwd = spec.cwd ?? paths?.workspace;
  const logPath = spec.logPath ?? paths?.agentLog(agent);
  const errorLogPath = spec.mergeStderr
    ? undefined
    : (spec.errorLogPath ?? (spec.logPath === undefined ? paths?.agentErrorLog(agent) : undefined));
  if (!cwd || !isAbsolute(cwd))
    throw new DaemonError(
      'DAEMON_SPAWN_FAILED',
      `agent ${agent}: working directory ${String(cwd)} must be an absolute path (agents outside cells need cwd)`,
    );
  if (!logPath)
    throw new DaemonError(
      'DAEMON_SPAWN_FAILED',
      `agent ${agent}: no log path (agents outside cells need logPath)`,
    );
  await ensureWorkingDirectory(state, spec, { agent, cwd });
  const profile = spec.isolation ?? { level: 1 };
  const env: Record<string, string> = { ...spec.env, LAZARUS_AGENT: agent };
  if (spec.cell) env.LAZARUS_CELL_UUID = spec.cell.uuid;
  else delete env.LAZARUS_CELL_UUID;
  env[INSTANCE_ENV] = state.instance;
  const nonce = spec.nonce ?? newSpawnNonce();
  if (!NONCE_PATTERN.test(nonce))
    throw new DaemonError('DAEMON_SPAWN_FAILED', `agent ${agent}: nonce must be 32 hex characters`);
  env[SPAWN_ENV] = nonce;
  const { command, spawnEnv, container } = await wrap(state, spec, { agent, profile, env, cwd });
  const request: ComposedStart['request'] = {
    agent,
    cell: spec.cell?.uuid,
    command,
    cwd,
    env: spawnEnv,
    logPath,
    ...(errorLogPath !== undefined ? { errorLogPath } : {}),
    // A log in the cell is reached from the cell without following a link an agent planted.
    ...(spec.cell && spec.logPath === undefined ? { logRoot: spec.cell.dir } : {}),
  };
  const headerAt: [string, string] = [
    `--- pit: starting ${agent} at level ${profile.level} (`,
    `): ${JSON.stringify(spec.argv)}\n`,
  ];
  return { agent, cwd, env, profile, nonce, container, request, headerAt };
}

async function startAgent(state: ExecutorState, spec: StartAgentOptions): Promise<AgentProcess> {
  const start = await composeStart(state, spec);
  const { agent, cwd, env, profile, nonce, container, headerAt } = start;
  const fields = { agent, cell: spec.cell?.uuid, level: profile.level, container, nonce };
  // Started already, the moment the last process exited (a standing order): kept if it is this start.
  const ahead = await takePrestarted(state, start.request);
  if (ahead) return track(state, ahead, { ...fields, ahead: true });
  const request: SpawnRequest = {
    ...start.request,
    header: headerAtNow(headerAt),
  };
  await rotateFullLog(state, request, request.logPath);
  if (request.errorLogPath !== undefined) await rotateFullLog(state, request, request.errorLogPath);
  const spawned = await spawnInCgroup(
    state,
    { agent, cwd, env, profile, recorded: spec.recorded },
    request,
  );
  return track(state, spawned, fields);
}

async function spawnInCgroup(
  state: ExecutorState,
  start: {
    agent: string;
    cwd: string;
    env: Record<string, string>;
    profile: IsolationProfile;
    recorded: Promise<unknown> | undefined;
  },
  request: SpawnRequest,
): Promise<Spawned> {
  const { launcher } = state;
  const spawn = async (what: SpawnRequest) => {
    await start.recorded;
    return launcher ? launcher.spawn(what) : spawnDirect(what);
  };
  const { cgroups } = state.options;
  if (!cgroups || start.profile.level === 3) return spawn(request);
  const program = request.command[0]!;
  const lookup = program.includes('/') ? resolve(start.cwd, program) : program;
  if (findInPath(lookup, start.env.PATH ?? '/usr/bin:/bin') === undefined)
    throw startError(
      { agent: start.agent, command: request.command, cwd: start.cwd },
      `spawn ${program} ENOENT`,
    );
  return cgroups.startIn(request.cell, start.agent, (cgroup) => spawn({ ...request, cgroup }));
}

/**
 * Makes sure the agent's working directory exists before the spawn, which would otherwise fail
 * as `spawn <program> ENOENT`, blaming the program. A cell's missing `workspace/` (a cell from an
 * older fleet, or one whose workspace was removed) is created as provisioning creates it: a real
 * directory of the cell (never through a link), mode 0755, owned by the daemon's user; it is
 * logged as a warning naming the cell. Any other working directory that is missing or not a
 * directory is refused, naming it.
 * @throws {DaemonError} DAEMON_SPAWN_FAILED.
 */
async function ensureWorkingDirectory(
  state: ExecutorState,
  spec: StartAgentOptions,
  where: { agent: string; cwd: string },
): Promise<void> {
  const { agent, cwd } = where;
  const workspace = spec.cell && spec.cwd === undefined ? spec.cell : undefined;
  if (workspace) {
    let missing = false;
    try {
      lstatSync(cwd);
    } catch (error) {
      missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    }
    if (missing) {
      try {
        await ensureCellSubdir(workspace.dir, ['workspace'], { create: true });
      } catch (error) {
        throw new DaemonError(
          'DAEMON_SPAWN_FAILED',
          `agent ${agent}: cell ${workspace.uuid} has no workspace/ and it cannot be created: ${(error as Error).message}`,
          { cause: error },
        );
      }
      state.options.logger?.warn('cell workspace created', {
        agent,
        cell: workspace.uuid,
        workspace: cwd,
        reason:
          "the cell had no workspace/ (the agents' working directory): created empty, mode 0755",
      });
    }
  }
  const stat = statOrUndefined(cwd);
  if (!stat?.isDirectory())
    throw new DaemonError(
      'DAEMON_SPAWN_FAILED',
      `agent ${agent}: working directory ${cwd} ${stat ? 'is not a directory' : 'does not exist (or is a link to nothing)'}: the agent cannot start in it${workspace ? ` (the workspace of cell ${workspace.uuid})` : ''}`,
    );
}

/**
 * Rotates one of the agent's logs (`path`: its stdout or stderr log) before its start when it has
 * reached `[logs] max_bytes` (nothing of the agent has it open then, so no line is lost or
 * split). A log that cannot be rotated is logged and appended to as before.
 */
async function rotateFullLog(
  state: ExecutorState,
  request: SpawnRequest,
  path: string,
): Promise<void> {
  const limits = state.options.logRotation;
  if (!limits) return;
  const stat = statOrUndefined(path, false);
  if (!stat?.isFile() || stat.size < limits.maxBytes) return;
  await rotateLogFiles(path, {
    keep: limits.keep,
    naming: 'suffix',
    ...(request.logRoot !== undefined ? { beneath: request.logRoot } : {}),
  }).catch((error: unknown) =>
    state.options.logger?.warn('cannot rotate the agent log', {
      agent: request.agent,
      path,
      error: String(error),
    }),
  );
}

/*
 * The checks just before a start (its working directory, its logs' sizes) are synchronous: a
 * stat of a local path takes microseconds, while an awaited one waits its turn in libuv's thread
 * pool behind the state and event writes the death just queued (0.3 to 3 ms measured in the
 * restart-latency bench's trace), and the restart waits with it.
 */
function statOrUndefined(path: string, follow = true): Stats | undefined {
  try {
    return (follow ? statSync : lstatSync)(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

const NONCE_PATTERN = /^[0-9a-f]{32}$/;

/** A new `PIT_SPAWN` nonce: 128 random bits as 32 lower-case hex characters. */
export function newSpawnNonce(): string {
  return randomBytes(16).toString('hex');
}

/** Tracks a process just spawned, until its exit (then its group is killed and onExit called). */
function track(
  state: ExecutorState,
  spawned: Spawned,
  {
    ahead,
    ...fields
  }: Pick<AgentProcess, 'agent' | 'cell' | 'level' | 'container' | 'nonce'> & {
    ahead?: boolean;
  },
): AgentProcess {
  const { options } = state;
  const { pid, stat } = spawned;
  const { agentProcess, settle } = makeProcess({
    ...fields,
    pid,
    startTime: stat.startTime,
    startedAt: new Date(),
    adopted: false,
    via: spawned.via,
  });
  state.polledAt.set(agentProcess, spawned.polled);
  state.tracked.add(agentProcess);
  void spawned.exited.then(({ code, signal, how, respawned }) => {
    // What is left of its group dies with it (not after 'vanished': the pid may be another's now).
    if ((options.killGroupOnExit ?? true) && how !== 'vanished') signalGroup(pid, 'SIGKILL');
    // A standing order started the next one in the agent's cgroup (after killing what was left).
    const prestarted = respawned?.request.env[SPAWN_ENV];
    if (respawned && prestarted) state.prestarted.set(prestarted, respawned);
    else releaseCgroup(state, agentProcess);
    const exit: AgentExit = { code, signal, at: new Date(), how };
    finish(state, agentProcess, settle, prestarted ? { ...exit, prestarted } : exit);
    if (fields.container) void state.podman?.remove(fields.container);
  });
  options.logger?.info('agent started', {
    agent: fields.agent,
    cell: fields.cell,
    pid,
    isolation: fields.level,
    via: spawned.via,
    ...(ahead ? { standing_order: true } : {}),
  });
  return agentProcess;
}

/**
 * An agent has exited: what is left in its cgroup (descendants in sessions of their own, with a
 * cleaned environment or not) is killed and the group removed. Asked for before the exit is
 * reported, so it runs before the next start's {@link AgentCgroups.prepare}.
 */
function releaseCgroup(state: ExecutorState, agentProcess: AgentProcess): void {
  const { cgroups, killGroupOnExit, logger } = state.options;
  if (!cgroups || agentProcess.level === 3 || killGroupOnExit === false) return;
  cgroups.release(agentProcess.cell, agentProcess.agent).catch((error: unknown) =>
    logger?.warn('cannot kill an agent cgroup', {
      agent: agentProcess.agent,
      cell: agentProcess.cell,
      error: String(error),
    }),
  );
}

/** {@link Executor.standRestart}. */
async function standRestart(
  state: ExecutorState,
  spec: StartAgentOptions,
  running: AgentProcess,
): Promise<boolean> {
  const { launcher, options } = state;
  const { cgroups } = options;
  if (
    !launcher ||
    running.via !== 'launcher' ||
    running.exit ||
    state.stopping.has(running) ||
    state.polledAt.get(running)?.()
  )
    return false;
  if ((spec.isolation?.level ?? 1) !== 1 || options.killGroupOnExit === false) return false;
  if (cgroups && cgroups.killBy !== 'cgroup.kill') return false;
  const { request, headerAt, agent } = await composeStart(state, spec);
  const program = request.command[0]!;
  if (
    findInPath(
      program.includes('/') ? resolve(request.cwd, program) : program,
      request.env.PATH ?? '/usr/bin:/bin',
    ) === undefined
  )
    return false;
  const group = cgroups?.pathOf(request.cell, agent);
  await spec.recorded;
  // A stop asked for meanwhile withdrew no order (none stood yet): none is left after it.
  if (running.exit || state.stopping.has(running)) return false;
  return launcher.stand(running.pid, {
    ...request,
    headerAt,
    ...(group
      ? { cgroup: join(group, 'cgroup.procs'), cgroupKill: join(group, 'cgroup.kill') }
      : {}),
  });
}

/** Same command, directory, environment and logs: a process started from `a` is the start `b` asks for. */
function sameStart(a: Omit<SpawnRequest, 'header'>, b: Omit<SpawnRequest, 'header'>): boolean {
  const key = (request: Omit<SpawnRequest, 'header'>) =>
    JSON.stringify([
      request.cell ?? null,
      request.command,
      request.cwd,
      Object.entries(request.env).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
      request.logPath,
      request.errorLogPath ?? null,
      request.logRoot ?? null,
    ]);
  return key(a) === key(b);
}

/** The process a standing order started for this start (same nonce and same start), else `undefined` (one that differs is killed). */
async function takePrestarted(
  state: ExecutorState,
  request: Omit<SpawnRequest, 'header'>,
): Promise<Spawned | undefined> {
  const nonce = request.env[SPAWN_ENV];
  const ahead = nonce === undefined ? undefined : state.prestarted.get(nonce);
  if (!ahead || nonce === undefined) return undefined;
  state.prestarted.delete(nonce);
  if (sameStart(ahead.request, request)) return ahead.spawned;
  await killPrestarted(state, ahead, 'its config changed after the order was left');
  return undefined;
}

/** {@link Executor.discardPrestarted}. */
async function discardPrestarted(state: ExecutorState, nonce: string, why: string): Promise<void> {
  const ahead = state.prestarted.get(nonce);
  if (!ahead) return;
  state.prestarted.delete(nonce);
  await killPrestarted(state, ahead, why);
}

/** Kills a process a standing order started (its process group), then its cgroup's leftovers unless the agent runs again. */
async function killPrestarted(
  state: ExecutorState,
  ahead: NonNullable<SpawnedExit['respawned']>,
  why: string,
): Promise<void> {
  const spawned = await ahead.spawned.catch(() => undefined);
  const { agent, cell } = ahead.request;
  if (spawned) {
    state.options.logger?.warn('killed the restart a standing order made', {
      agent,
      cell,
      pid: spawned.pid,
      reason: why,
    });
    signalGroup(spawned.pid, 'SIGKILL');
    await spawned.exited;
  }
  const runs =
    state.starting.has(`${cell ?? ''}/${agent}`) ||
    [...state.tracked].some((each) => each.agent === agent && each.cell === cell);
  if (!runs && state.options.cgroups)
    await state.options.cgroups.release(cell, agent).catch(() => 0);
}

/** {@link Executor.adopt}. */
async function adoptAgent(
  state: ExecutorState,
  spec: AdoptAgentOptions,
): Promise<AgentProcess | undefined> {
  const refusal = spec.byHand ? await handStartRefusal(spec) : await adoptionRefusal(state, spec);
  if (refusal !== undefined) {
    state.options.logger?.info('not adopted', {
      agent: spec.agent,
      cell: spec.cell,
      pid: spec.pid,
      reason: refusal,
    });
    return undefined;
  }
  const { agentProcess, settle } = makeProcess({
    agent: assertAgentName(spec.agent, 'agent'),
    cell: spec.cell,
    nonce: spec.nonce,
    pid: spec.pid,
    startTime: spec.startTime,
    startedAt: new Date(),
    level: spec.level ?? 1,
    container: spec.container,
    adopted: true,
    via: 'adopted',
  });
  state.tracked.add(agentProcess);
  void pollExit({
    pid: spec.pid,
    startTime: spec.startTime,
    intervalMs: state.pollMs,
    timers: state.pollers,
  }).then((exit) => {
    if (agentProcess.exit) return;
    releaseCgroup(state, agentProcess);
    finish(state, agentProcess, settle, { ...exit, at: new Date() });
  });
  state.options.logger?.info('agent adopted', {
    agent: spec.agent,
    cell: spec.cell,
    pid: spec.pid,
  });
  return agentProcess;
}

/**
 * Why `spec.pid` is not the agent's process (see {@link Executor.adopt}), or `undefined` when it
 * is: the start time, the session, and the marks of its environment are checked.
 */
export async function adoptionRefusal(
  state: Pick<ExecutorState, 'instance'>,
  spec: AdoptAgentOptions,
): Promise<string | undefined> {
  const liveness = await checkProcess(spec.pid, spec.startTime);
  if (!liveness.alive) return `pid ${spec.pid}: ${liveness.reason}`;
  if (liveness.stat.sid !== spec.pid) return `pid ${spec.pid} does not lead its own session`;
  const marks = await readProcessMarks(spec.pid);
  if (!marks) return `pid ${spec.pid}: its environment cannot be read`;
  const mismatch =
    marks.instance !== state.instance
      ? 'is not marked by this daemon'
      : marks.agent !== spec.agent || marks.cell !== spec.cell
        ? 'is marked as another agent'
        : marks.nonce !== spec.nonce
          ? 'carries another start nonce'
          : undefined;
  return mismatch === undefined ? undefined : `pid ${spec.pid} ${mismatch}`;
}

/**
 * Why a process an agent's heartbeat names cannot be taken for an agent started by hand, or
 * `undefined` when it can. A heartbeat is the agent's own word, so the pid is a hint: the process
 * must be alive with the start time read for it, not the daemon or init, run by the daemon's
 * user, and carry the agent's cell and name in the environment it was exec'd with (no other
 * program on the machine has them). It need not lead a session (a shell's job does not); it is
 * then signalled alone, never a group it does not lead.
 */
export async function handStartRefusal(spec: AdoptAgentOptions): Promise<string | undefined> {
  if (spec.pid <= 1 || spec.pid === process.pid) return `pid ${spec.pid} is not an agent's`;
  const liveness = await checkProcess(spec.pid, spec.startTime);
  if (!liveness.alive) return `pid ${spec.pid}: ${liveness.reason}`;
  const owner = await fs.stat(`/proc/${spec.pid}`).catch(() => undefined);
  const uid = process.getuid?.();
  if (!owner || (uid !== undefined && owner.uid !== uid))
    return `pid ${spec.pid} is not run by the daemon's user`;
  const marks = await readProcessMarks(spec.pid);
  if (!marks) return `pid ${spec.pid}: its environment cannot be read`;
  if (marks.agent !== spec.agent || marks.cell !== spec.cell)
    return `pid ${spec.pid} does not carry LAZARUS_AGENT=${spec.agent} and LAZARUS_CELL_UUID=${spec.cell ?? ''} in its environment`;
  return undefined;
}

/** Signals a tracked agent; an adopted pid is signalled only while it is still the process recorded. */
async function sendSignal(
  state: ExecutorState,
  agentProcess: AgentProcess,
  signal: NodeJS.Signals,
): Promise<void> {
  if (agentProcess.exit) return;
  // Not our child (adopted, or its launcher died): it may be a zombie or its pid recycled.
  if (agentProcess.adopted || state.polledAt.get(agentProcess)?.()) {
    const now = await checkProcess(agentProcess.pid, agentProcess.startTime);
    if (!now.alive) return;
    if (now.stat.pgrp === agentProcess.pid) signalGroup(agentProcess.pid, signal);
    else signalProcess(agentProcess.pid, signal);
  } else {
    signalGroup(agentProcess.pid, signal);
  }
}

/** {@link Executor.stop}. */
async function stopAgent(
  state: ExecutorState,
  agentProcess: AgentProcess,
  stopOptions: { graceMs?: number } = {},
): Promise<AgentExit> {
  if (agentProcess.exit) return agentProcess.exit;
  // Stopped on purpose: not restarted by a standing order (withdrawn before the signal).
  state.stopping.add(agentProcess);
  await state.launcher?.cancel(agentProcess.pid);
  const { logger } = state.options;
  const graceMs = stopOptions.graceMs ?? state.graceDefault;
  logger?.info('stopping agent', {
    agent: agentProcess.agent,
    cell: agentProcess.cell,
    pid: agentProcess.pid,
    graceMs,
  });
  await sendSignal(state, agentProcess, 'SIGTERM');
  // A stopped process (SIGSTOP, state T) handles SIGTERM only once continued: continue it, or
  // the whole stop grace passes before the SIGKILL.
  await sendSignal(state, agentProcess, 'SIGCONT');
  const timedOut = Symbol('timeout');
  let timer: NodeJS.Timeout | undefined;
  const first = await Promise.race([
    agentProcess.exited,
    new Promise<typeof timedOut>(
      (resolve) => (timer = setTimeout(() => resolve(timedOut), graceMs)),
    ),
  ]);
  clearTimeout(timer);
  if (first !== timedOut) return first;
  logger?.warn('agent ignored SIGTERM; sending SIGKILL', {
    agent: agentProcess.agent,
    pid: agentProcess.pid,
    graceMs,
  });
  if (agentProcess.container && state.podman)
    await state.podman
      .run(['kill', '--signal', 'KILL', agentProcess.container])
      .catch(() => undefined);
  await sendSignal(state, agentProcess, 'SIGKILL');
  return agentProcess.exited;
}

/** Looks a command up in a PATH string; absolute paths are returned when executable. */
export function findInPath(command: string, pathVariable: string): string | undefined {
  const candidates = command.includes('/')
    ? [command]
    : pathVariable
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  return undefined;
}
