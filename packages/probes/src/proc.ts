import { existsSync, promises as fs } from 'node:fs';
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
  /**
   * When the process started, in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
   * Together with the pid it identifies a process: a recycled pid has another start time.
   * This is the value @pit/cell-spec's `AgentState.pid_start_time` records.
   */
  startTime: number;
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
  const startTime = Number(fields[19]);
  if (
    !Number.isInteger(pid) ||
    state === undefined ||
    !Number.isInteger(startTime) ||
    !Number.isInteger(ppid)
  )
    return undefined;
  return { pid, comm: text.slice(open + 1, close), state, ppid, pgrp, startTime };
}

/**
 * Reads `/proc/<pid>/stat`. Returns `undefined` when no such process exists (it has exited
 * and been reaped). A zombie is returned with `state: 'Z'`.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a pid that is not a positive integer; PROBE_UNSUPPORTED without /proc.
 */
export async function readProcessStat(pid: number): Promise<ProcessStat | undefined> {
  if (!Number.isInteger(pid) || pid <= 0)
    throw new ProbeError('PROBE_INVALID_TARGET', `pid: ${pid} must be a positive integer`);
  assertProcAvailable();
  let text: string;
  try {
    text = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return undefined;
    throw error;
  }
  return parseProcessStat(text);
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

/**
 * Lists every process in `/proc` with its stat and command line: one scan serves all
 * command-pattern probes of a sweep (instead of one `pgrep` per agent). Processes that exit
 * during the scan are left out.
 * @throws {ProbeError} PROBE_UNSUPPORTED without /proc.
 */
export async function scanProcesses(): Promise<ProcessInfo[]> {
  assertProcAvailable();
  const names = await fs.readdir('/proc');
  const pids = names.filter((name) => /^\d+$/.test(name)).map(Number);
  const infos = await Promise.all(pids.map(readProcessInfo));
  return infos.filter((info): info is ProcessInfo => info !== undefined);
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
