/**
 * The daemon's own process mechanics, built on @pit/probes' `/proc` reader: whether a recorded
 * process (pid + start time) still runs, decoding a wait status, signalling an agent's process
 * group safely, and finding the agents a daemon instance started by the marks in their
 * environment. It never parses `/proc/<pid>/stat` itself.
 */
import { promises as fs } from 'node:fs';
import { constants } from 'node:os';
import { listProcessIds, readProcessStat, type ProcessStat } from '@pit/probes';
import { DaemonError } from './errors.js';

// Reading and parsing /proc is @pit/probes' (one ProcessStat for the whole Pit); re-exported
// here for the daemon's public entry.
export {
  readProcessStat,
  readProcessStatSync,
  readProcessStartTime,
  type ProcessStat,
} from '@pit/probes';

/** Liveness of a recorded process. */
export type ProcessLiveness =
  | { alive: true; stat: ProcessStat }
  /** `zombie`: exited but not reaped (its parent died; PID 1 here reaps nothing). `gone`: no such pid. `recycled`: the pid now belongs to another process. */
  | { alive: false; reason: 'gone' | 'zombie' | 'recycled'; stat?: ProcessStat };

/**
 * Whether the process recorded as `pid` + `startTime` is still running. A zombie counts as
 * dead, and so does a pid that now belongs to a process started at another time.
 * @throws the fs error when `/proc` could not be read for a transient reason (EMFILE, EIO…).
 */
export async function checkProcess(pid: number, startTime: number): Promise<ProcessLiveness> {
  const stat = await readStatOrUndefined(pid);
  if (!stat) return { alive: false, reason: 'gone' };
  if (stat.startTime !== startTime) return { alive: false, reason: 'recycled', stat };
  if (stat.state === 'Z' || stat.state === 'X') return { alive: false, reason: 'zombie', stat };
  return { alive: true, stat };
}

/**
 * The stat of `pid`, or `undefined` when it cannot be read (no such pid, not a pid, no /proc).
 * A transient failure (EMFILE, ENFILE, EAGAIN, EIO, ENOMEM) is thrown: it says nothing about the
 * process, and reading it as gone would revive an agent that still runs.
 */
async function readStatOrUndefined(pid: number): Promise<ProcessStat | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return readProcessStat(pid).catch((error: unknown) => {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code && ['EMFILE', 'ENFILE', 'EAGAIN', 'EIO', 'ENOMEM'].includes(code)) throw error;
    return undefined;
  });
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
export async function findMarkedProcesses(instance: string): Promise<Map<string, MarkedProcess>> {
  const found = new Map<string, MarkedProcess>();
  const needle = Buffer.from(`${INSTANCE_ENV}=${instance}\0`);
  let pids: number[];
  try {
    pids = await listProcessIds();
  } catch {
    return found;
  }
  const inspect = async (pid: number) => {
    let environ: Buffer;
    try {
      environ = await fs.readFile(`/proc/${pid}/environ`);
    } catch {
      return;
    }
    // Environments are compared as a whole variable: NUL-terminated, and at the start or after a NUL.
    const at = environ.indexOf(needle);
    if (at === -1 || (at > 0 && environ[at - 1] !== 0)) return;
    const stat = await readStatOrUndefined(pid);
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
  for (let index = 0; index < pids.length; index += 64)
    await Promise.all(pids.slice(index, index + 64).map(inspect));
  return found;
}
