import { z } from 'zod';
import { readFileSafe } from '@pit/cell-spec';
import { ProbeError } from './errors.js';
import { assertProcAvailable, readProcessStat, scanProcesses } from './proc.js';
import { toSnapshot, type ProcessTable } from './process-table.js';
import {
  describeError,
  parseTarget,
  runProbe,
  type ProbeOptions,
  type ProbeResult,
} from './probe-result.js';

/**
 * What {@link processProbe} looks for: a pid, a pid file, or (as a fallback) a command-line
 * pattern. With `startTime` (clock ticks since boot, from {@link readProcessStartTime} at
 * spawn) the process must also be the same one, so a recycled pid is not mistaken for the agent.
 */
export type ProcessTarget =
  | {
      /** The process id. */
      pid: number;
      /** Its start time recorded at spawn (clock ticks since boot); a different one means the pid was recycled. */
      startTime?: number;
    }
  | {
      /** A file holding the pid (decimal, optional trailing newline). */
      pidFile: string;
      /** As for `pid`: the start time recorded at spawn. */
      startTime?: number;
    }
  | {
      /** A RegExp, or a string taken as RegExp source, matched against argv joined by spaces (like `pgrep -f`). */
      pattern: RegExp | string;
      /** How many matching processes make it ok. @default 1 */
      minCount?: number;
    };

const ProcessTargetSchema = z.union([
  z.strictObject({
    pid: z.number().int().positive(),
    startTime: z.number().int().nonnegative().optional(),
  }),
  z.strictObject({
    pidFile: z.string().min(1),
    startTime: z.number().int().nonnegative().optional(),
  }),
  z.strictObject({
    pattern: z.union([z.instanceof(RegExp), z.string().min(1)]),
    minCount: z.number().int().positive().optional(),
  }),
]);

/** Options of {@link processProbe}. */
export interface ProcessProbeOptions extends ProbeOptions {
  /** A shared process table for pattern targets (one `/proc` scan per sweep); without it each pattern probe scans. */
  processTable?: ProcessTable;
}

/** The result of {@link processProbe}. */
export interface ProcessProbeResult extends ProbeResult {
  kind: 'process';
  /** The pid checked (pid and pid-file targets). */
  pid?: number;
  /** Its current start time, clock ticks since boot, when it exists. */
  startTime?: number;
  /** Its state letter from /proc (`S`, `R`, `Z`, …), when it exists. */
  state?: string;
  /** Matching pids (pattern targets). */
  pids?: number[];
}

/**
 * Checks that a process is alive (and, with `startTime`, that it is the same process),
 * reading `/proc`. A zombie counts as dead. Pattern targets scan `/proc` (shared through
 * `processTable`). Linux only.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a bad pid, path or pattern; PROBE_UNSUPPORTED without /proc; PROBE_INVALID_OPTIONS.
 * @example
 * const startTime = await readProcessStartTime(child.pid!);
 * const result = await processProbe({ pid: child.pid!, startTime });
 */
export async function processProbe(
  target: ProcessTarget,
  options?: ProcessProbeOptions,
): Promise<ProcessProbeResult> {
  const spec = parseTarget('process', ProcessTargetSchema, target);
  assertProcAvailable();
  const { processTable, ...probeOptions } = options ?? {};
  if ('pattern' in spec) {
    const pattern = toRegExp(spec.pattern);
    const minCount = spec.minCount ?? 1;
    return runProbe<ProcessProbeResult>(
      { kind: 'process', describe: `processes matching ${pattern}` },
      probeOptions,
      async (attempt) => {
        const snapshot = processTable
          ? await processTable.snapshot()
          : toSnapshot(await scanProcesses(), attempt.now());
        const pids = snapshot.match(pattern).map((info) => info.pid);
        const ok = pids.length >= minCount;
        const found =
          pids.length === 0
            ? 'no process matches'
            : `${pids.length} process${pids.length === 1 ? '' : 'es'} match (${pids.slice(0, 10).join(', ')}${pids.length > 10 ? ', …' : ''})`;
        attempt.settle({
          ok,
          pids,
          detail: `${pattern}: ${found}${ok || minCount === 1 ? '' : `, expected at least ${minCount}`}`,
          ...(ok ? {} : { failure: 'not_running' as const }),
        });
      },
    );
  }
  const describe = 'pid' in spec ? `pid ${spec.pid}` : `pid file ${spec.pidFile}`;
  return runProbe<ProcessProbeResult>(
    { kind: 'process', describe },
    probeOptions,
    async (attempt) => {
      let pid: number;
      if ('pid' in spec) {
        pid = spec.pid;
      } else {
        const read = await readPidFile(spec.pidFile);
        if (typeof read !== 'number') {
          attempt.settle(read);
          return;
        }
        pid = read;
      }
      const stat = await readProcessStat(pid);
      if (!stat) {
        attempt.settle({
          ok: false,
          failure: 'not_running',
          pid,
          detail: `${describe}: no such process`,
        });
        return;
      }
      const facts = { pid, startTime: stat.startTime, state: stat.state };
      if (stat.state === 'Z' || stat.state === 'X') {
        attempt.settle({
          ok: false,
          failure: 'not_running',
          ...facts,
          detail: `${describe}: exited (zombie, not yet reaped)`,
        });
        return;
      }
      if (spec.startTime !== undefined && stat.startTime !== spec.startTime) {
        attempt.settle({
          ok: false,
          failure: 'pid_reused',
          ...facts,
          detail: `${describe}: now belongs to another process (${stat.comm}, started at tick ${stat.startTime}, expected ${spec.startTime})`,
        });
        return;
      }
      const checked =
        spec.startTime === undefined ? ', start time not checked' : ', same start time';
      attempt.settle({
        ok: true,
        ...facts,
        detail: `${describe}: alive (${stat.comm}, state ${stat.state}${checked})`,
      });
    },
  );
}

async function readPidFile(
  path: string,
): Promise<number | Omit<ProcessProbeResult, 'kind' | 'latencyMs' | 'observedAt'>> {
  let text: string;
  try {
    text = (await readFileSafe(path, { maxBytes: 64 })).toString('utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'CELL_NOT_FOUND')
      return { ok: false, failure: 'missing', detail: `pid file ${path}: not found` };
    return {
      ok: false,
      failure: code === 'CELL_IO' ? 'error' : 'invalid',
      detail: `pid file ${path}: ${describeError(error)}`,
    };
  }
  const trimmed = text.trim();
  const pid = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(pid) || pid <= 0) {
    return {
      ok: false,
      failure: 'invalid',
      detail: `pid file ${path}: ${JSON.stringify(trimmed.slice(0, 20))} is not a pid`,
    };
  }
  return pid;
}

function toRegExp(pattern: RegExp | string): RegExp {
  if (pattern instanceof RegExp) return pattern;
  try {
    return new RegExp(pattern);
  } catch (error) {
    throw new ProbeError(
      'PROBE_INVALID_TARGET',
      `process probe target: pattern: ${JSON.stringify(pattern)} is not a valid regular expression: ${describeError(error)}`,
    );
  }
}
