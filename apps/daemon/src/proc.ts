import { promises as fs, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { DaemonError } from './errors.js';

/** What the daemon reads from `/proc/<pid>/stat`. */
export interface ProcessStat {
  pid: number;
  /** Single-letter state: R, S, D, Z (zombie), T, X, … */
  state: string;
  ppid: number;
  /** Process group id. */
  pgid: number;
  /** Session id. */
  sid: number;
  /** Start time in clock ticks since boot (field 22): with the pid, it identifies one process across pid reuse. */
  startTime: number;
  /**
   * The exit status in waitpid(2) form (field 52), meaningful once the process is a zombie
   * (`state === 'Z'`); `undefined` when the kernel hides it (another user's process).
   */
  exitStatus: number | undefined;
}

/** Parses the content of `/proc/<pid>/stat`; the command name may contain spaces and parentheses. */
export function parseProcStat(text: string): ProcessStat | undefined {
  const close = text.lastIndexOf(')');
  const open = text.indexOf('(');
  if (close < 0 || open < 0) return undefined;
  const pid = Number.parseInt(text.slice(0, open).trim(), 10);
  // Fields after the command name start at field 3 (state).
  const rest = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const field = (n: number) => rest[n - 3];
  const number = (n: number) => Number.parseInt(field(n) ?? '', 10);
  const state = field(3);
  const startTime = number(22);
  if (!Number.isInteger(pid) || state === undefined || !Number.isInteger(startTime))
    return undefined;
  const exit = number(52);
  return {
    pid,
    state,
    ppid: number(4),
    pgid: number(5),
    sid: number(6),
    startTime,
    exitStatus: Number.isInteger(exit) ? exit : undefined,
  };
}

/** Reads `/proc/<pid>/stat`; `undefined` when the process does not exist (or was reaped). */
export async function readProcessStat(pid: number): Promise<ProcessStat | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    return parseProcStat(await fs.readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Reads `/proc/<pid>/stat` synchronously: right after a fork, before the event loop could reap
 * the child. `undefined` when there is no such process.
 */
export function readProcessStatSync(pid: number): ProcessStat | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The start time of a process in clock ticks since boot (`/proc/<pid>/stat` field 22), or
 * `undefined` when there is no such process (from @pit/probes).
 */
export { readProcessStartTime } from '@pit/probes';

/** Liveness of a recorded process. */
export type ProcessLiveness =
  | { alive: true; stat: ProcessStat }
  /** `zombie`: exited but not reaped (its parent died; PID 1 here reaps nothing). `gone`: no such pid. `recycled`: the pid now belongs to another process. */
  | { alive: false; reason: 'gone' | 'zombie' | 'recycled'; stat?: ProcessStat };

/**
 * Whether the process recorded as `pid` + `startTime` is still running. A zombie counts as
 * dead, and so does a pid that now belongs to a process started at another time.
 */
export async function checkProcess(pid: number, startTime: number): Promise<ProcessLiveness> {
  const stat = await readProcessStat(pid);
  if (!stat) return { alive: false, reason: 'gone' };
  if (stat.startTime !== startTime) return { alive: false, reason: 'recycled', stat };
  if (stat.state === 'Z' || stat.state === 'X') return { alive: false, reason: 'zombie', stat };
  return { alive: true, stat };
}

/** Decodes a waitpid(2) status into an exit code or a signal name. */
export function decodeWaitStatus(status: number): {
  code: number | null;
  signal: NodeJS.Signals | null;
} {
  const signalNumber = status & 0x7f;
  if (signalNumber === 0) return { code: (status >> 8) & 0xff, signal: null };
  const name = Object.entries(signalNumbers()).find(
    ([, number]) => number === signalNumber,
  )?.[0] as NodeJS.Signals | undefined;
  return { code: null, signal: name ?? null };
}

function signalNumbers(): Record<string, number> {
  return constants.signals as unknown as Record<string, number>;
}

/**
 * Sends `signal` to the process group led by `pid` (`kill(-pid, signal)`).
 * @returns `false` when the group no longer exists.
 * @throws {DaemonError} DAEMON_UNSAFE_SIGNAL for a pid ≤ 1 (which would signal init or every process).
 */
export function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  assertSignallable(pid);
  try {
    process.kill(-pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/**
 * Sends `signal` to one process.
 * @returns `false` when it no longer exists.
 * @throws {DaemonError} DAEMON_UNSAFE_SIGNAL for a pid ≤ 1.
 */
export function signalProcess(pid: number, signal: NodeJS.Signals | 0): boolean {
  assertSignallable(pid);
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

function assertSignallable(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 1) {
    throw new DaemonError(
      'DAEMON_UNSAFE_SIGNAL',
      `refused to signal pid ${String(pid)}: only pids > 1 may be signalled`,
    );
  }
}

/** The environment variable that marks every agent process a daemon starts with the daemon's instance id. */
export const INSTANCE_ENV = 'PIT_INSTANCE';

/** An agent process found by the marks in its environment. */
export interface MarkedProcess {
  pid: number;
  /** Clock ticks since boot (`/proc/<pid>/stat` field 22). */
  startTime: number;
  agent: string;
  /** `LAZARUS_CELL_UUID`, or `undefined` for an agent outside cells. */
  cell: string | undefined;
}

/** The key {@link findMarkedProcesses} files a process under. */
export const markedKey = (cell: string | undefined, agent: string): string =>
  `${cell ?? ''}/${agent}`;

/**
 * The live agent processes that the daemon instance `instance` started, keyed by
 * {@link markedKey}: session leaders (the executor starts every agent in its own session)
 * whose environment holds `PIT_INSTANCE=<instance>` and `LAZARUS_AGENT` (and
 * `LAZARUS_CELL_UUID` in a cell). Of several leaders with the same marks (an agent that started
 * a detached child), the earliest started wins. Processes whose environment cannot be read
 * (another user's, zombies) are skipped.
 *
 * This is how a daemon recovers an agent it started but did not get to record: its pid is
 * persisted after the spawn, and a daemon killed in between would otherwise start it twice.
 */
export async function findMarkedProcesses(
  instance: string,
  procRoot = '/proc',
): Promise<Map<string, MarkedProcess>> {
  const found = new Map<string, MarkedProcess>();
  const needle = Buffer.from(`${INSTANCE_ENV}=${instance}\0`);
  let entries: string[];
  try {
    entries = (await fs.readdir(procRoot)).filter((name) => /^\d+$/.test(name));
  } catch {
    return found;
  }
  const inspect = async (name: string) => {
    const pid = Number(name);
    let environ: Buffer;
    try {
      environ = await fs.readFile(`${procRoot}/${name}/environ`);
    } catch {
      return;
    }
    // Environments are compared as a whole variable: NUL-terminated, and at the start or after a NUL.
    const at = environ.indexOf(needle);
    if (at === -1 || (at > 0 && environ[at - 1] !== 0)) return;
    const stat = await readProcessStat(pid);
    if (!stat || stat.sid !== pid || stat.state === 'Z' || stat.state === 'X') return;
    let agent: string | undefined;
    let cell: string | undefined;
    for (const variable of environ.toString('utf8').split('\0')) {
      if (variable.startsWith('LAZARUS_AGENT=')) agent = variable.slice('LAZARUS_AGENT='.length);
      else if (variable.startsWith('LAZARUS_CELL_UUID='))
        cell = variable.slice('LAZARUS_CELL_UUID='.length);
    }
    if (!agent) return;
    const key = markedKey(cell, agent);
    const other = found.get(key);
    if (!other || stat.startTime < other.startTime)
      found.set(key, { pid, startTime: stat.startTime, agent, cell });
  };
  // A bounded number of files open at once.
  for (let index = 0; index < entries.length; index += 64)
    await Promise.all(entries.slice(index, index + 64).map(inspect));
  return found;
}
