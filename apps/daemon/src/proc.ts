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
/**
 * The environment variable that marks one start of an agent with a random nonce (32 hex
 * characters), recorded in the daemon's own state before the start: the agent and whatever it
 * forks carry it, no other start of any agent does.
 */
export const SPAWN_ENV = 'PIT_SPAWN';

/** The marks of an agent's process: {@link ProcessMarks} with its name. */
export type AgentMarks = ProcessMarks & { agent: string };

/** The marks a daemon put in a process's environment, read from `/proc/<pid>/environ`. */
export interface ProcessMarks {
  /** `PIT_INSTANCE`: the daemon that started it. */
  instance: string | undefined;
  /** `LAZARUS_AGENT`. */
  agent: string | undefined;
  /** `LAZARUS_CELL_UUID`, or `undefined` for an agent outside cells. */
  cell: string | undefined;
  /** `PIT_SPAWN`, or `undefined` for a process started by an older daemon. */
  nonce: string | undefined;
}

/** An agent process found by the marks in its environment. */
export interface MarkedProcess {
  pid: number;
  /** Clock ticks since boot (`/proc/<pid>/stat` field 22). */
  startTime: number;
  /** Its session: a process the executor started leads its own (`sid === pid`). */
  sid: number;
  agent: string;
  /** `LAZARUS_CELL_UUID`, or `undefined` for an agent outside cells. */
  cell: string | undefined;
  /** `PIT_SPAWN`, or `undefined` (started by an older daemon). */
  nonce: string | undefined;
}

/** The key {@link findMarkedProcesses} files a process under. */
export const markedKey = (cell: string | undefined, agent: string): string =>
  `${cell ?? ''}/${agent}`;

/** The marks in an environment block (NUL-separated `NAME=value`); a variable is matched whole. */
export function parseMarks(environ: Buffer): ProcessMarks {
  const marks: ProcessMarks = {
    instance: undefined,
    agent: undefined,
    cell: undefined,
    nonce: undefined,
  };
  const names: Record<string, keyof ProcessMarks> = {
    [INSTANCE_ENV]: 'instance',
    LAZARUS_AGENT: 'agent',
    LAZARUS_CELL_UUID: 'cell',
    [SPAWN_ENV]: 'nonce',
  };
  for (const variable of environ.toString('utf8').split('\0')) {
    const equals = variable.indexOf('=');
    const field = equals > 0 ? names[variable.slice(0, equals)] : undefined;
    if (field) marks[field] = variable.slice(equals + 1);
  }
  return marks;
}

/**
 * The marks in the environment `pid` was started with, or `undefined` when it cannot be read
 * (gone, another user's, a kernel thread). This reads the environment block given at exec(2),
 * which lives in the process's own memory: a child exec'd with a copied environment carries the
 * same marks (hence the start time and the nonce), and a process may overwrite its block (so a
 * missing mark proves nothing; a present one is checked against the nonce and start time).
 */
export async function readProcessMarks(pid: number): Promise<ProcessMarks | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    return parseMarks(await fs.readFile(`/proc/${pid}/environ`));
  } catch {
    return undefined;
  }
}

/**
 * Every live process marked with the daemon instance `instance` (`PIT_INSTANCE=<instance>` and
 * `LAZARUS_AGENT` in its environment): the agents it started and everything they forked, which
 * inherits their environment (including children that left the agent's process group or
 * session). Zombies and processes whose environment cannot be read are skipped.
 *
 * With `memo` (kept by the caller between scans), what was read of a process is reused while it
 * keeps its pid and start time: a periodic scan then reads the environment only of processes that
 * are new since the last one, instead of every process on the host every time (a thousand agents
 * were a thousand reads a second, 64 descriptors open at any instant). A process found without
 * the marks is read once more on the next scan before that answer is kept: read between its
 * fork and its exec(2) it still has its parent's environment (the daemon's own, unmarked) and
 * gets the marks only at the exec. Marks, once read, are kept (a process that later overwrites
 * its environment is still what it was started as). Each process's stat is read first,
 * synchronously (no descriptor held).
 */
export async function scanMarkedProcesses(
  instance: string,
  options: { memo?: MarksMemo } = {},
): Promise<MarkedProcess[]> {
  const found: MarkedProcess[] = [];
  const needle = Buffer.from(`${INSTANCE_ENV}=${instance}\0`);
  const { memo } = options;
  let pids: number[];
  try {
    pids = await listProcessIds();
  } catch {
    return found;
  }
  if (memo) {
    const live = new Set(pids);
    for (const pid of memo.keys()) if (!live.has(pid)) memo.delete(pid);
  }
  const readMarks = async (pid: number): Promise<AgentMarks | undefined | null> => {
    let environ: Buffer;
    try {
      environ = await fs.readFile(`/proc/${pid}/environ`);
    } catch {
      return null;
    }
    // Environments are compared as a whole variable: NUL-terminated, and at the start or after a NUL.
    const at = environ.indexOf(needle);
    if (at === -1 || (at > 0 && environ[at - 1] !== 0)) return undefined;
    const marks = parseMarks(environ);
    return marks.agent && marks.instance === instance
      ? { ...marks, agent: marks.agent }
      : undefined;
  };
  const inspect = async (pid: number) => {
    let marks: AgentMarks | undefined | null;
    let stat: ProcessStat | undefined;
    if (memo) {
      const before = await readStatOrUndefined(pid).catch(() => undefined);
      if (!before) return;
      const known = memo.get(pid);
      const same = known?.startTime === before.startTime;
      if (same && known!.confirmed) marks = known!.marks;
      else {
        marks = await readMarks(pid);
        if (marks === null) return;
        memo.set(pid, {
          startTime: before.startTime,
          marks,
          confirmed: marks !== undefined || (same && known!.marks === undefined),
        });
      }
      // A marked process's stat is read again below only when its marks were just read (the pid
      // could have changed hands in between); a remembered one is judged on this stat.
      if (marks && same && known!.confirmed) stat = before;
    } else marks = await readMarks(pid);
    if (!marks?.agent) return;
    stat ??= await readStatOrUndefined(pid);
    if (!stat || stat.state === 'Z' || stat.state === 'X') return;
    if (memo && memo.get(pid)?.startTime !== stat.startTime) return;
    const { agent, cell, nonce } = marks;
    found.push({ pid, startTime: stat.startTime, sid: stat.sid, agent, cell, nonce });
  };
  // A bounded number of files open at once.
  for (let index = 0; index < pids.length; index += 64)
    await Promise.all(pids.slice(index, index + 64).map(inspect));
  return found;
}

/**
 * What {@link scanMarkedProcesses} read of each process, by pid: the start time it saw, the marks
 * (`undefined`: none of the instance's), and whether that answer is kept (marks at once; no
 * marks only once seen twice).
 */
export type MarksMemo = Map<
  number,
  { startTime: number; marks: AgentMarks | undefined; confirmed: boolean }
>;

/**
 * The live agent processes that the daemon instance `instance` started, keyed by
 * {@link markedKey}: session leaders (the executor starts every agent in its own session) with
 * the instance's marks. Of several leaders with the same marks (an agent that started a
 * detached child), the earliest started wins: a child always starts after its parent. With
 * `nonce`, only processes of that one start are considered.
 *
 * This is how a daemon recovers an agent it started but did not get to record: the nonce is
 * recorded before the start, its pid only after, and a daemon killed in between would otherwise
 * start it twice.
 */
export async function findMarkedProcesses(
  instance: string,
  options: { nonce?: string } = {},
): Promise<Map<string, MarkedProcess>> {
  const found = new Map<string, MarkedProcess>();
  for (const candidate of await scanMarkedProcesses(instance)) {
    if (candidate.sid !== candidate.pid) continue;
    if (options.nonce !== undefined && candidate.nonce !== options.nonce) continue;
    const key = markedKey(candidate.cell, candidate.agent);
    const other = found.get(key);
    if (!other || candidate.startTime < other.startTime) found.set(key, candidate);
  }
  return found;
}
