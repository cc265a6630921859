import { z } from 'zod';
import { formatIssues } from '@pit/cell-spec';
import { ProbeError } from './errors.js';
import { scanProcesses, type ProcessInfo } from './proc.js';
import { functionSchema } from './probe-result.js';

/** One `/proc` scan. */
export interface ProcessSnapshot {
  /** When the scan finished, ms since the Unix epoch. */
  takenAt: number;
  /** Every process seen. */
  processes: ProcessInfo[];
  /**
   * Live processes (not zombies) whose command line (argv joined by spaces, like `pgrep -f`)
   * matches `pattern`; kernel threads (empty command line) never match.
   */
  match(pattern: RegExp): ProcessInfo[];
}

/** Options of {@link createProcessTable}. */
export interface ProcessTableOptions {
  /**
   * A snapshot younger than this is reused, so every pattern probe in one sweep shares one
   * `/proc` scan. ms. @default 1000
   */
  maxAgeMs?: number;
  /** The clock, ms since the Unix epoch. @default Date.now */
  now?: () => number;
}

/** A shared, cached view of `/proc` for command-pattern process probes. */
export interface ProcessTable {
  /** The current snapshot, scanning `/proc` only when the last one is older than `maxAgeMs`; concurrent callers share one scan. */
  snapshot(): Promise<ProcessSnapshot>;
  /** Scans `/proc` now (callers already waiting on a scan share it). */
  refresh(): Promise<ProcessSnapshot>;
  /** How many scans have run (for tests and metrics). */
  readonly scans: number;
}

const ProcessTableOptionsSchema = z.strictObject({
  maxAgeMs: z.number().nonnegative().optional(),
  now: functionSchema<() => number>().optional(),
});

/**
 * Creates a process table: pass it to {@link processProbe} as `processTable` so that all
 * command-pattern probes of a sweep share one `/proc` scan.
 * @throws {ProbeError} PROBE_INVALID_OPTIONS.
 * @example
 * const processTable = createProcessTable({ maxAgeMs: 1000 });
 * await processProbe({ pattern: 'hermes.*--agent forge' }, { processTable });
 */
export function createProcessTable(options: ProcessTableOptions = {}): ProcessTable {
  const parsed = ProcessTableOptionsSchema.safeParse(options);
  if (!parsed.success)
    throw new ProbeError(
      'PROBE_INVALID_OPTIONS',
      `process table options: ${formatIssues(parsed.error)}`,
    );
  const maxAgeMs = options.maxAgeMs ?? 1000;
  const now = options.now ?? Date.now;
  let current: ProcessSnapshot | undefined;
  let inFlight: Promise<ProcessSnapshot> | undefined;
  let scans = 0;

  const refresh = (): Promise<ProcessSnapshot> => {
    inFlight ??= scanProcesses()
      .then((processes) => {
        scans += 1;
        current = toSnapshot(processes, now());
        return current;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };

  return {
    snapshot: () =>
      current && now() - current.takenAt <= maxAgeMs ? Promise.resolve(current) : refresh(),
    refresh,
    get scans() {
      return scans;
    },
  };
}

/** Wraps a list of processes as a snapshot. */
export function toSnapshot(processes: ProcessInfo[], takenAt: number): ProcessSnapshot {
  return {
    takenAt,
    processes,
    match: (pattern) => {
      // A global or sticky RegExp keeps state between test() calls; use a stateless copy.
      const re =
        pattern.global || pattern.sticky
          ? new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''))
          : pattern;
      return processes.filter(
        (info) =>
          info.state !== 'Z' &&
          info.state !== 'X' &&
          info.cmdline.length > 0 &&
          re.test(info.cmdline.join(' ')),
      );
    },
  };
}
