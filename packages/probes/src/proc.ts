/**
 * Reading `/proc`: the one place in the Pit that parses `/proc/<pid>/stat`, reads a process's
 * start time and scans the process table. Everyone else (the process probe, the daemon's
 * executor and adoption) calls these.
 */
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { ProbeError } from './errors.js';

/** One process as `/proc/<pid>/stat` describes it. */
export interface ProcessStat {
  pid: number;
  /** The executable's name (at most 15 characters, from the kernel). */
  comm: string;
  /** The state letter: `R` running, `S` sleeping, `D` disk wait, `T` stopped, `Z` zombie, `X` dead, … */
  state: string;
  /** Parent pid. */
  ppid: number;
  /** Process group id. */
  pgrp: number;
  /** Session id (field 6). */
  sid: number;
  /**
   * When the process started, in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
   * Together with the pid it identifies a process: a recycled pid has another start time.
   * This is the value @pit/cell-spec's `AgentState.pid_start_time` records.
   */
  startTime: number;
  /**
   * The exit status in waitpid(2) form (field 52), meaningful once the process is a zombie
   * (`state === 'Z'`); `undefined` when the kernel hides it (another user's process).
   */
  exitStatus: number | undefined;
}

/** A process from a `/proc` scan: its stat plus its command line. */
export interface ProcessInfo extends ProcessStat {
  /** argv, from `/proc/<pid>/cmdline` (empty for kernel threads and zombies). */
  cmdline: string[];
}

let procAvailable: boolean | undefined;

/** @throws {ProbeError} PROBE_UNSUPPORTED when there is no Linux `/proc`. */
export function assertProcAvailable(): void {
  procAvailable ??= existsSync('/proc/self/stat');
  if (!procAvailable)
    throw new ProbeError(
      'PROBE_UNSUPPORTED',
      '/proc/self/stat: not found; process probes need a Linux /proc',
    );
}

/**
 * Parses the text of `/proc/<pid>/stat`. The command name sits in parentheses and may itself
 * contain spaces and parentheses, so fields are counted from the last `)`.
 * Returns `undefined` for text that is not a stat line.
 */
export function parseProcessStat(text: string): ProcessStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const fields = text
    .slice(close + 2)
    .trim()
    .split(' ');
  // fields[0] is field 3 (state); field n is fields[n - 3].
  const state = fields[0];
  const ppid = Number(fields[1]);
  const pgrp = Number(fields[2]);
  const sid = Number(fields[3]);
  const startTime = Number(fields[19]);
  const exit = Number(fields[49] ?? Number.NaN);
  if (
    !Number.isInteger(pid) ||
    state === undefined ||
    !Number.isInteger(startTime) ||
    !Number.isInteger(ppid)
  )
    return undefined;
  return {
    pid,
    comm: text.slice(open + 1, close),
    state,
    ppid,
    pgrp,
    sid,
    startTime,
    exitStatus: Number.isInteger(exit) ? exit : undefined,
  };
}

/**
 * Reads `/proc/<pid>/stat`. Returns `undefined` when no such process exists (it has exited
 * and been reaped). A zombie is returned with `state: 'Z'`.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a pid that is not a positive integer; PROBE_UNSUPPORTED without /proc.
 */
export async function readProcessStat(pid: number): Promise<ProcessStat | undefined> {
  assertReadablePid(pid);
  let text: string;
  try {
    text = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    return missingProcess(error);
  }
  return parseProcessStat(text);
}

/**
 * The synchronous twin of {@link readProcessStat}, for the moment right after a spawn, before
 * the event loop turns and the child could be reaped. Same checks, same errors.
 */
export function readProcessStatSync(pid: number): ProcessStat | undefined {
  assertReadablePid(pid);
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    return missingProcess(error);
  }
  return parseProcessStat(text);
}

function assertReadablePid(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 0)
    throw new ProbeError('PROBE_INVALID_TARGET', `pid: ${pid} must be a positive integer`);
  assertProcAvailable();
}

/** `undefined` for a process that no longer exists; any other error is thrown. */
function missingProcess(error: unknown): undefined {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ESRCH') return undefined;
  throw error;
}

/**
 * A process's start time in clock ticks since boot (see {@link ProcessStat.startTime}), or
 * `undefined` when it no longer exists. Record it right after spawning an agent, and pass it
 * to {@link processProbe} so that a recycled pid is not mistaken for the agent.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a bad pid; PROBE_UNSUPPORTED without /proc.
 * @example
 * const child = spawn(command, args, { detached: true });
 * const startTime = await readProcessStartTime(child.pid!);
 */
export async function readProcessStartTime(pid: number): Promise<number | undefined> {
  return (await readProcessStat(pid))?.startTime;
}

let bootTimeMs: number | undefined;

/**
 * When a process started (ms since epoch), from its start time in clock ticks since boot (see
 * {@link ProcessStat.startTime}) and the boot time in `/proc/stat`; `undefined` when the boot
 * time cannot be read.
 */
export async function processStartedAtMs(startTime: number): Promise<number | undefined> {
  if (bootTimeMs === undefined) {
    const stat = await fs.readFile('/proc/stat', 'utf8').catch(() => '');
    const btime = /^btime (\d+)$/m.exec(stat)?.[1];
    if (!btime) return undefined;
    bootTimeMs = Number(btime) * 1000;
  }
  // Linux reports stat times in USER_HZ, 100 on every mainstream architecture.
  return bootTimeMs + (startTime / 100) * 1000;
}

/**
 * Lists every process in `/proc` with its stat and command line: one scan serves all
 * command-pattern probes of a sweep (instead of one `pgrep` per agent). Processes that exit
 * during the scan are left out.
 * @throws {ProbeError} PROBE_UNSUPPORTED without /proc.
 */
export async function scanProcesses(): Promise<ProcessInfo[]> {
  const pids = await listProcessIds();
  const infos = await Promise.all(pids.map(readProcessInfo));
  return infos.filter((info): info is ProcessInfo => info !== undefined);
}

/**
 * The pids in `/proc` at this moment (processes may exit before they are read).
 * @throws {ProbeError} PROBE_UNSUPPORTED without /proc.
 */
export async function listProcessIds(): Promise<number[]> {
  assertProcAvailable();
  const names = await fs.readdir('/proc');
  return names.filter((name) => /^\d+$/.test(name)).map(Number);
}

async function readProcessInfo(pid: number): Promise<ProcessInfo | undefined> {
  try {
    const [statText, cmdline] = await Promise.all([
      fs.readFile(`/proc/${pid}/stat`, 'utf8'),
      fs.readFile(`/proc/${pid}/cmdline`),
    ]);
    const stat = parseProcessStat(statText);
    if (!stat) return undefined;
    const args =
      cmdline.length === 0 ? [] : cmdline.toString('utf8').replace(/\0$/, '').split('\0');
    return { ...stat, cmdline: args };
  } catch {
    // Exited between readdir and read, or not ours to read.
    return undefined;
  }
}
