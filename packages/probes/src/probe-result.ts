import { z } from 'zod';
import { formatIssues } from '@pit/cell-spec';
import { ProbeError } from './errors.js';

/** The probes this package ships; custom probes may use their own kind. */
export type ProbeKind = 'tcp' | 'http' | 'ws' | 'process' | 'heartbeat' | 'exec';

/**
 * Why a probe failed, machine-readable (the daemon and policy classify deaths by it).
 * - `timeout`: no answer within the timeout · `aborted`: the caller's signal fired
 * - `refused`: connection refused · `unreachable`: DNS, route or socket error
 * - `bad_status`: HTTP status not 2xx (or a redirect not followed), WebSocket upgrade refused
 * - `bad_body`: body not JSON, over its size cap, or rejected by the schema
 * - `not_running`: no such process, or a zombie · `pid_reused`: the pid now belongs to another process
 * - `missing`: no heartbeat / pid file · `invalid`: a heartbeat or pid file that breaks its contract
 * - `stale`: heartbeat older than its threshold · `stuck`: heartbeat fresh but its cycle stands still
 * - `exit_code`: the exec probe's command exited non-zero or by a signal · `error`: anything else
 */
export type ProbeFailure =
  | 'timeout'
  | 'aborted'
  | 'refused'
  | 'unreachable'
  | 'bad_status'
  | 'bad_body'
  | 'not_running'
  | 'pid_reused'
  | 'missing'
  | 'invalid'
  | 'stale'
  | 'stuck'
  | 'exit_code'
  | 'error';

/**
 * What every probe resolves to. A dead or hung target is a result with `ok: false`, never
 * a thrown error and never a hang.
 */
export interface ProbeResult {
  /** Which probe produced it (`tcp`, `http`, `ws`, `process`, `heartbeat`, `exec`, or a custom kind). */
  kind: ProbeKind | (string & {});
  /** Whether the target is healthy by this probe. */
  ok: boolean;
  /** Time the probe took, ms (monotonic clock). */
  latencyMs: number;
  /** One human-readable line: what was seen (`200 OK`, `connect ECONNREFUSED 127.0.0.1:4`, …). */
  detail: string;
  /** When the result was observed: milliseconds since the Unix epoch, from the injected clock. */
  observedAt: number;
  /** Why it failed; absent when `ok`. */
  failure?: ProbeFailure;
  /**
   * When this result stops being true if nothing else changes, ms since the Unix epoch (a
   * heartbeat's staleness or stuck deadline). The scheduler re-probes at that instant.
   */
  deadlineAt?: number;
  /**
   * When the evidence this result judges was produced, if not at `observedAt`: a heartbeat's
   * own timestamp, ms since the Unix epoch. The assessor refuses evidence older than the agent's
   * current incarnation (`TrackOptions.notBefore`).
   */
  evidenceAt?: number;
}

/** Options every probe accepts. */
export interface ProbeOptions {
  /** Give up after this long; the result is then `{ ok: false, failure: 'timeout' }`. ms. @default 5000 */
  timeoutMs?: number;
  /** Aborting ends the probe promptly with `{ ok: false, failure: 'aborted' }` (and frees its socket or process). */
  signal?: AbortSignal;
  /** The clock for `observedAt` and ages: ms since the Unix epoch. @default Date.now */
  now?: () => number;
}

/**
 * The options a scheduler passes to each run, whose `signal` is made on first use and then
 * kept by its holder for later runs of the same probe (an `AbortSignal` costs about 0.8 KB in
 * Node, a fleet runs one probe per agent, and most runs never look at the signal). Internal to
 * this package.
 */
export class RunOptions implements Required<ProbeOptions> {
  readonly #holder: SignalHolder;
  /** The holder's aborts when this run began: a later abort was this run's (or a later one's). */
  readonly #aborts: number;

  constructor(
    holder: SignalHolder,
    readonly timeoutMs: number,
    readonly now: () => number,
  ) {
    this.#holder = holder;
    this.#aborts = holder.aborts;
  }

  get signal(): AbortSignal {
    // Read after this run was aborted (abandoned, its probe removed): aborted, and no new
    // controller is left behind for the next run.
    if (this.#holder.aborts !== this.#aborts) return AbortSignal.abort();
    return (this.#holder.controller ??= new AbortController()).signal;
  }

  /** The signal if one was made, without making one: a run that never made it cannot be aborted. */
  get madeSignal(): AbortSignal | undefined {
    if (this.#holder.aborts !== this.#aborts) return AbortSignal.abort();
    return this.#holder.controller?.signal;
  }
}

/** Where a scheduler keeps a probe's controller, and how many times it aborted one. */
export interface SignalHolder {
  controller: AbortController | undefined;
  aborts: number;
}

/**
 * `options` as a probe sees them when an abort would free nothing (a file read, which cannot be
 * cancelled): a scheduler's lazy signal ({@link RunOptions}) is passed on only if a run already
 * made it, so a fleet's runs make none (about 0.8 KB per agent). A run that never made it cannot
 * be aborted, and ends by its own timeout. Other options are returned as they are.
 */
export function withoutLazySignal(options: ProbeOptions | undefined): ProbeOptions | undefined {
  if (!(options instanceof RunOptions)) return options;
  const signal = options.madeSignal;
  return { timeoutMs: options.timeoutMs, now: options.now, ...(signal ? { signal } : {}) };
}

/**
 * A probe that can answer at once (a heartbeat read from a file the kernel has cached): the
 * result {@link runProbe} would give, without its timer, abort listener and callbacks; or
 * `undefined` when `body` cannot answer now, or the options need {@link runProbe}'s checks
 * (unusual options, a signal already aborted). Never throws for a body that throws: that is
 * `failure: 'error'`, as with {@link runProbe}.
 */
export function probeNow<R extends ProbeResult>(
  kind: ProbeResult['kind'],
  options: ProbeOptions | undefined,
  body: (now: () => number) => Outcome<R> | undefined,
  describe: () => string,
): R | undefined {
  if (options instanceof RunOptions) {
    if (options.madeSignal?.aborted) return undefined;
  } else if (!plainOptions(options) || options?.signal?.aborted) return undefined;
  const now = options?.now ?? Date.now;
  const started = performance.now();
  let outcome: Outcome<R> | undefined;
  try {
    outcome = body(now);
  } catch (error) {
    outcome = {
      ok: false,
      failure: 'error',
      detail: `${describe()}: ${describeError(error)}`,
    } as Outcome<R>;
  }
  if (outcome === undefined) return undefined;
  const latencyMs = Math.round((performance.now() - started) * 1000) / 1000;
  const result = { kind, latencyMs, observedAt: now(), ...outcome } as R;
  return result.ok && 'failure' in result ? withoutFailure(result) : result;
}

/** A schema for a function-valued option. */
export function functionSchema<F>() {
  return z.custom<F>((value) => typeof value === 'function', { message: 'must be a function' });
}

/** The default probe timeout, ms. */
export const DEFAULT_PROBE_TIMEOUT_MS = 5000;

const ProbeOptionsSchema = z.strictObject({
  timeoutMs: z.number().positive().max(2_147_483_647).optional(),
  signal: z.instanceof(AbortSignal).optional(),
  now: functionSchema<() => number>().optional(),
});

/**
 * Whether `options` passes {@link ProbeOptionsSchema} for sure, checked without allocating (it
 * runs on every probe run); anything unusual goes to the schema, which names what is wrong.
 */
function plainOptions(options: ProbeOptions | undefined): boolean {
  if (options === undefined) return true;
  if (typeof options !== 'object' || options === null) return false;
  for (const key in options)
    if (key !== 'timeoutMs' && key !== 'signal' && key !== 'now') return false;
  const { timeoutMs, signal, now } = options;
  return (
    (timeoutMs === undefined ||
      (typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= 2_147_483_647)) &&
    (signal === undefined || signal instanceof AbortSignal) &&
    (now === undefined || typeof now === 'function')
  );
}

/** The fields a probe body reports; the helper adds `kind`, `latencyMs` and `observedAt`. */
export type Outcome<R extends ProbeResult> = Omit<R, 'kind' | 'latencyMs' | 'observedAt'>;

/** What {@link runProbe} hands the probe body. */
export interface Attempt<R extends ProbeResult> {
  /** Aborted when the probe times out, the caller aborts, or the probe has settled: release resources then. */
  signal: AbortSignal;
  /** The probe's timeout, ms. */
  timeoutMs: number;
  /** The clock (ms since the Unix epoch). */
  now: () => number;
  /** Settles the probe; later calls are ignored. */
  settle(outcome: Outcome<R>): void;
  /**
   * Runs `cleanup` once the probe has settled (answered, timed out or aborted by the caller), or
   * at once if it has: what {@link signal} gives, without an `AbortController` and an `AbortError`
   * per run (a fleet's probes run hundreds of times a second).
   */
  onSettled(cleanup: () => void): void;
  /** Whether the probe has settled (later events of the body are to be ignored). */
  readonly settled: boolean;
}

/** Internal options of {@link runProbe}. */
export interface RunProbeSpec {
  /** The result's kind. */
  kind: ProbeResult['kind'];
  /** Describes the target in timeout and abort details, e.g. `GET http://127.0.0.1:80/health`. */
  describe: string;
  /** Replaces the generic timeout text (`no answer within N ms`). */
  timeoutDetail?: (timeoutMs: number) => string;
}

/**
 * Runs a probe body under a timeout and an optional caller signal; guarantees exactly one
 * result, never a rejection (a body that throws becomes `failure: 'error'`).
 * @throws {ProbeError} PROBE_INVALID_OPTIONS for bad options (before anything is attempted).
 */
export function runProbe<R extends ProbeResult>(
  spec: RunProbeSpec,
  options: ProbeOptions | undefined,
  body: (attempt: Attempt<R>) => void | Promise<void>,
): Promise<R> {
  if (!plainOptions(options)) {
    const parsed = ProbeOptionsSchema.safeParse(options ?? {});
    if (!parsed.success) {
      return Promise.reject(
        new ProbeError(
          'PROBE_INVALID_OPTIONS',
          `${spec.kind} probe options: ${formatIssues(parsed.error)}`,
        ),
      );
    }
  }
  const timeoutMs = options?.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const now = options?.now ?? Date.now;
  const callerSignal = options?.signal;
  const started = performance.now();
  // Made on first use: a body that never looks at its signal (a heartbeat read) costs none.
  let controller: AbortController | undefined;
  let cleanups: (() => void) | Array<() => void> | undefined;

  return new Promise<R>((resolve) => {
    let settled = false;
    const finish = (outcome: Outcome<R>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onAbort);
      const latencyMs = Math.round((performance.now() - started) * 1000) / 1000;
      const result = { kind: spec.kind, latencyMs, observedAt: now(), ...outcome } as R;
      controller?.abort();
      runCleanups(cleanups);
      cleanups = undefined;
      resolve(result.ok && 'failure' in result ? withoutFailure(result) : result);
    };
    const onAbort = (): void => {
      finish({
        ok: false,
        failure: 'aborted',
        detail: `${spec.describe}: aborted by the caller`,
      } as Outcome<R>);
    };
    const timer = setTimeout(() => {
      finish({
        ok: false,
        failure: 'timeout',
        detail: `${spec.describe}: ${spec.timeoutDetail?.(timeoutMs) ?? `no answer within ${timeoutMs} ms`}`,
      } as Outcome<R>);
    }, timeoutMs);
    if (callerSignal?.aborted) {
      onAbort();
      return;
    }
    // Removed by finish(), which onAbort calls: no `once` options object per run.
    callerSignal?.addEventListener('abort', onAbort);
    try {
      const pending = body({
        get signal() {
          if (controller === undefined) {
            controller = new AbortController();
            if (settled) controller.abort();
          }
          return controller.signal;
        },
        timeoutMs,
        now,
        settle: finish,
        onSettled(cleanup) {
          if (settled) runCleanups(cleanup);
          else if (cleanups === undefined) cleanups = cleanup;
          else if (typeof cleanups === 'function') cleanups = [cleanups, cleanup];
          else cleanups.push(cleanup);
        },
        get settled() {
          return settled;
        },
      });
      if (pending) {
        pending.catch((error: unknown) => {
          finish({
            ok: false,
            failure: 'error',
            detail: `${spec.describe}: ${describeError(error)}`,
          } as Outcome<R>);
        });
      }
    } catch (error) {
      finish({
        ok: false,
        failure: 'error',
        detail: `${spec.describe}: ${describeError(error)}`,
      } as Outcome<R>);
    }
  });
}

/** Runs a probe's cleanups; one that throws does not stop the others (nor the result). */
function runCleanups(cleanups: (() => void) | Array<() => void> | undefined): void {
  if (cleanups === undefined) return;
  for (const cleanup of typeof cleanups === 'function' ? [cleanups] : cleanups) {
    try {
      cleanup();
    } catch {
      // Releasing a resource of a settled probe: nothing is left to report it to.
    }
  }
}

/** An ok result has no failure: dropped by a copy (a `delete` would make the result a dictionary). */
function withoutFailure<R extends ProbeResult>(result: R): R {
  const { failure, ...kept } = result;
  void failure;
  return kept as R;
}

/** A one-line description of an error: its code and message. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code !== undefined && !error.message.includes(code)
      ? `${code}: ${error.message}`
      : error.message;
  }
  return String(error);
}

/** Maps a socket error to a failure reason. */
export function classifySocketError(error: unknown): ProbeFailure {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ETIMEDOUT') return 'timeout';
  return 'unreachable';
}

/**
 * Parses a probe target with zod, naming the probe and every bad field.
 * @throws {ProbeError} PROBE_INVALID_TARGET.
 */
export function parseTarget<T extends z.ZodType>(
  kind: string,
  schema: T,
  target: unknown,
): z.infer<T> {
  const parsed = schema.safeParse(target);
  if (!parsed.success)
    throw new ProbeError(
      'PROBE_INVALID_TARGET',
      `${kind} probe target: ${formatIssues(parsed.error)}`,
    );
  return parsed.data;
}
