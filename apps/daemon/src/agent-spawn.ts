/**
 * The fork itself: how one agent process is created, once the executor has decided its command,
 * working directory, environment and log. Owns the spawn contract that both ways of spawning
 * keep (directly from the daemon here, or through the agent launcher in launcher-client.ts):
 * the agent in its own session and process group (`detached`), stdout appended to its log and
 * stderr to its error log, or both to the one log when stderr is merged (each opened by the
 * spawning process `O_APPEND|O_NOFOLLOW`, the directory created only when missing: the agent
 * holds its own fds and writes on with the daemon gone), the header line written first to each, its `/proc/<pid>/stat` read before it can be reaped, and its exit reported with
 * the real wait(2) status. Never decides what runs or when.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { openFileBeneathSync } from '@pit/cell-spec';
import { DaemonError } from './errors.js';
import { readProcessStatSync, type ProcessStat } from './proc.js';

/** One agent process to create (composed by the executor). */
export interface SpawnRequest {
  /** The agent's name, for messages. */
  agent: string;
  /** The cell's uuid, or `undefined` outside cells (how a lost answer is found again by its marks). */
  cell: string | undefined;
  /** What to run: the agent's argv, or a level-2/3 wrapper around it. */
  command: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Where stdout is appended (and stderr, without `errorLogPath`). */
  logPath: string;
  /** Where stderr is appended; omitted: to `logPath` (`merge_stderr`). */
  errorLogPath?: string;
  /** The cell the logs lie in: every component below it is opened without following a link. */
  logRoot?: string;
  /** Written to each log before the process starts. */
  header: string;
  /**
   * The `cgroup.procs` of the agent's cgroup (agent-cgroups.ts): the agent is in it from its
   * first instruction, so everything it forks is too. The launcher moves itself into the group
   * for the fork and back after it (the child inherits the group, no extra exec); a direct spawn
   * wraps the command in a shell that joins the group and execs it.
   */
  cgroup?: string;
}

/** The shell of the wrapper that joins the agent's cgroup before exec'ing it (direct spawns). */
export const JOIN_SHELL = '/bin/sh';
/** The wrapper's script: argv is passed as positional parameters, never interpolated. */
const JOIN_SCRIPT = 'echo $$ > "$0" && exec "$@"';

/** `command`, wrapped so that the child joins `cgroupProcs` before it execs (a direct spawn). */
export const joiningCgroup = (command: string[], cgroupProcs: string): string[] => [
  JOIN_SHELL,
  '-c',
  JOIN_SCRIPT,
  cgroupProcs,
  ...command,
];

/** How a spawned agent ended, as far as its watcher knows. */
export interface SpawnedExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** `waited`: from wait(2); `zombie`/`vanished`: from `/proc` (see `AgentExit`). */
  how: 'waited' | 'zombie' | 'vanished';
  /**
   * The process a standing order started the moment this one exited (launcher-client.ts), with
   * the request it was started from: the daemon keeps it or kills it (executor.ts).
   */
  respawned?: { request: StandingRequest; spawned: Promise<Spawned> };
}

/**
 * A start made ahead of time: the launcher makes it the moment the running agent exits
 * (launcher-client.ts). Its header is `headerAt[0]` + the time of that start + `headerAt[1]`;
 * `cgroupKill` (the agent group's `cgroup.kill`) kills what the exited agent left in its group
 * just before the new process joins it.
 */
export interface StandingRequest extends Omit<SpawnRequest, 'header'> {
  headerAt: [string, string];
  cgroupKill?: string;
}

/** A start's log header from its two parts, with the time of the start now between them. */
export const headerAtNow = (headerAt: readonly [string, string]): string =>
  `${headerAt[0]}${new Date().toISOString()}${headerAt[1]}`;

/** A created agent process. */
export interface Spawned {
  pid: number;
  /** Its `/proc/<pid>/stat` right after the fork. */
  stat: ProcessStat;
  /** Settles once it exited (never rejects). */
  exited: Promise<SpawnedExit>;
  /** Who created it. */
  via: 'launcher' | 'direct';
  /** `true` once its exit can only be polled in `/proc` (it is no child of ours any more). */
  polled(): boolean;
}

const LOG_FLAGS =
  constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;

/**
 * Opens an agent's log for appending. On a restart its directory exists: one open(2), and the
 * directory is created (then the open retried) only when the open says it is missing.
 * (launcher-program.mjs opens logs the same way.)
 */
export function openLog(logPath: string, logRoot?: string): number {
  if (logRoot !== undefined)
    return openFileBeneathSync(logRoot, logPath, {
      flags: LOG_FLAGS,
      mode: 0o640,
      createParents: true,
    });
  try {
    return openSync(logPath, LOG_FLAGS, 0o640);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dirname(logPath), { recursive: true });
  return openSync(logPath, LOG_FLAGS, 0o640);
}

/** The error for a log that cannot be opened or written (`path`: which one; @default the stdout log). */
export const logError = (
  request: SpawnRequest,
  message: string,
  cause?: unknown,
  path = request.logPath,
) =>
  new DaemonError(
    'DAEMON_SPAWN_FAILED',
    `agent ${request.agent}: cannot open log ${path}: ${message}`,
    cause === undefined ? {} : { cause },
  );

/**
 * Opens the stdout log and, unless merged, the stderr log, each with the header written.
 * @returns the fds for the agent's stdout and stderr (the same fd when merged).
 * @throws {DaemonError} DAEMON_SPAWN_FAILED naming the log that failed (nothing is left open).
 */
function openLogs(request: SpawnRequest): { out: number; err: number } {
  const opened: number[] = [];
  let path = request.logPath;
  try {
    const out = openLog(path, request.logRoot);
    opened.push(out);
    writeSync(out, request.header);
    if (request.errorLogPath === undefined) return { out, err: out };
    path = request.errorLogPath;
    const err = openLog(path, request.logRoot);
    opened.push(err);
    writeSync(err, request.header);
    return { out, err };
  } catch (error) {
    for (const fd of opened) closeSync(fd);
    throw logError(request, (error as Error).message, error, path);
  }
}

/** The error for a command that could not be started. */
export const startError = (
  request: Pick<SpawnRequest, 'agent' | 'command' | 'cwd'>,
  reason: string,
  cause?: unknown,
) =>
  new DaemonError(
    'DAEMON_SPAWN_FAILED',
    `agent ${request.agent}: cannot start ${JSON.stringify(request.command[0])} in ${request.cwd}: ${reason}`,
    cause === undefined ? {} : { cause },
  );

/**
 * Spawns the agent from this process (the daemon).
 * @throws {DaemonError} DAEMON_SPAWN_FAILED when the log cannot be opened or the command not started.
 */
export async function spawnDirect(request: SpawnRequest): Promise<Spawned> {
  const fds = openLogs(request);
  const command =
    request.cgroup === undefined ? request.command : joiningCgroup(request.command, request.cgroup);
  let child: ChildProcess;
  try {
    child = spawn(command[0]!, command.slice(1), {
      cwd: request.cwd,
      env: request.env,
      detached: true,
      stdio: ['ignore', fds.out, fds.err],
    });
  } catch (error) {
    throw new DaemonError(
      'DAEMON_SPAWN_FAILED',
      `agent ${request.agent}: cannot spawn ${command[0]}: ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    closeSync(fds.out);
    if (fds.err !== fds.out) closeSync(fds.err);
  }
  // Fully detached: nothing of the agent's keeps this process's event loop alive, so a one-shot
  // sweep exits once it has reported and a stopping daemon exits with its agents left running.
  // Its exit is still reported (wait(2)) for as long as this process runs.
  child.unref();
  // Read the start time now, synchronously: the child cannot have been reaped before the event loop runs.
  const pid = child.pid;
  const stat = pid === undefined ? undefined : readProcessStatSync(pid);
  const exited = new Promise<SpawnedExit>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, how: 'waited' })),
  );
  const spawned = await new Promise<{ ok: true } | { ok: false; error: Error }>((resolve) => {
    child.once('spawn', () => resolve({ ok: true }));
    child.once('error', (error) => resolve({ ok: false, error }));
  });
  if (!spawned.ok) throw startError(request, spawned.error.message, spawned.error);
  if (pid === undefined || !stat)
    throw startError(request, 'the process vanished before it could be recorded');
  return { pid, stat, exited, via: 'direct', polled: () => false };
}
