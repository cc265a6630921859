import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { z } from 'zod';
import { formatIssues } from '@pit/cell-spec';
import { ProbeError } from './errors.js';
import { Fifo } from './fifo.js';
import { silentLogger, type Logger } from './logger.js';
import { ownString } from './compact-string.js';
import { createRandom } from './random.js';
import { TimerHeap, type HeapEntry } from './timer-heap.js';
import {
  DEFAULT_PROBE_TIMEOUT_MS,
  describeError,
  functionSchema,
  RunOptions,
  type ProbeOptions,
  type ProbeResult,
} from './probe-result.js';

/**
 * Why a probe ran: `start` (just added), `interval` (its schedule), `deadline` (a result's
 * `deadlineAt` passed), `watch` (its watched file changed), `manual` (`trigger`/`sweep`).
 */
export type RunReason = 'start' | 'interval' | 'deadline' | 'watch' | 'manual';

/** What the scheduler tells a probe's `run` besides its {@link ProbeOptions}. */
export interface ProbeRunContext {
  agent: string;
  probe: string;
  reason: RunReason;
}

/** One probe of an agent's schedule. */
export interface ScheduledProbe {
  /** Unique within the agent; the assessor tracks probes by this name (e.g. `heartbeat`, `http`). */
  name: string;
  /** Time between the end of one run and the start of the next, before jitter. ms. */
  intervalMs: number;
  /** Passed to `run` as `timeoutMs`; a run that has not settled by timeoutMs + 1 s is abandoned as a timeout. ms. @default 5000 */
  timeoutMs?: number;
  /**
   * A file whose changes re-run the probe at once (its directory is watched with `fs.watch`,
   * one watcher per directory), e.g. the agent's heartbeat file: fresh heartbeats then cost
   * no polling, and `intervalMs` can be long.
   */
  watchPath?: string;
  /**
   * The interval while the watch on `watchPath` is armed and the last run passed: changes re-run
   * the probe at once and a result's `deadlineAt` is kept, so this only catches an event the
   * kernel dropped. ms. @default intervalMs
   */
  watchedIntervalMs?: number;
  /**
   * Runs the probe. Pass `options` straight to a probe of this package, e.g.
   * `run: (options) => httpProbe(url, options)`. Should settle within `timeoutMs`. The
   * `signal` is aborted when this run is abandoned or the probe removed; the runs of one probe
   * share it until then, so remove any listener you add to it when the run ends. It is made
   * when a run first reads it (a signal costs about 0.8 KB): a run that never does cannot be
   * aborted, and ends by its own timeout.
   */
  run(
    options: Required<Pick<ProbeOptions, 'signal' | 'timeoutMs' | 'now'>>,
    context: ProbeRunContext,
  ): Promise<ProbeResult>;
}

/** An agent and its probes. */
export interface AgentSchedule {
  /** A unique key, e.g. `<cell uuid>/<agent name>`. */
  agent: string;
  probes: ScheduledProbe[];
}

/** One probe result, as the scheduler reports it. */
export interface ProbeEvent {
  agent: string;
  probe: string;
  reason: RunReason;
  result: ProbeResult;
}

/** Options of {@link createProbeScheduler}. */
export interface ProbeSchedulerOptions {
  /** Called with every result, in order per probe. Exceptions are logged, not propagated. */
  onResult(event: ProbeEvent): void;
  /**
   * How many probes run at once. Deadline and manual runs jump the queue, so a backlog of
   * hung targets never delays a deadline check. @default 256
   */
  concurrency?: number;
  /** Each interval is scaled by a uniform factor in [1 − jitter, 1 + jitter]; the first one by [0, 1) to spread a fleet. @default 0.1 */
  jitter?: number;
  /** Seed of the jitter generator, for reproducible schedules. @default random */
  seed?: number;
  /** The clock, ms since the Unix epoch: passed to probes and used for deadlines. @default Date.now */
  now?: () => number;
  /** Where debug/warn/error messages go. @default silent */
  logger?: Logger;
}

/** Counters of a running scheduler. */
export interface SchedulerStats {
  agents: number;
  probes: number;
  running: number;
  queued: number;
  /** Directories watched with fs.watch. */
  watchedDirs: number;
  /** Runs completed since creation. */
  runs: number;
}

/** Runs every agent's probes on its own schedule. */
export interface ProbeScheduler {
  /**
   * Schedules an agent; each probe runs at once, then on its interval, at deadlines its
   * results announce, and when its watched file changes.
   * @throws {ProbeError} PROBE_AGENT_EXISTS; PROBE_INVALID_OPTIONS for a bad schedule; PROBE_STOPPED.
   */
  add(schedule: AgentSchedule): void;
  /** Unschedules an agent: timers cleared, running probes aborted, their results dropped. False if unknown. */
  remove(agent: string): boolean;
  /** Whether the agent is scheduled. */
  has(agent: string): boolean;
  /** Scheduled agent keys. */
  agents(): string[];
  /**
   * Runs an agent's probes (or one of them) now, ahead of the queue — e.g. right after the daemon restarted it.
   * @throws {ProbeError} PROBE_UNKNOWN_AGENT.
   */
  trigger(agent: string, probe?: string): void;
  /**
   * Runs every scheduled probe once now (bounded by `concurrency`, the slowest by their last
   * run first) and resolves with each result, e.g. for `pit sweep --once`. Probes removed
   * meanwhile are left out.
   */
  sweep(): Promise<ProbeEvent[]>;
  /** Counters. */
  stats(): SchedulerStats;
  /** Stops everything: timers, watchers, running probes (aborted). Resolves when no run is left. */
  stop(): Promise<void>;
}

const ScheduledProbeSchema = z.strictObject({
  name: z.string().min(1),
  intervalMs: z.number().positive().max(2_147_483_647),
  timeoutMs: z.number().positive().max(2_147_483_647).optional(),
  watchPath: z.string().min(1).optional(),
  watchedIntervalMs: z.number().positive().max(2_147_483_647).optional(),
  run: functionSchema<ScheduledProbe['run']>(),
});

const AgentScheduleSchema = z.strictObject({
  agent: z.string().min(1),
  probes: z
    .array(ScheduledProbeSchema)
    .min(1)
    .refine((probes) => new Set(probes.map((probe) => probe.name)).size === probes.length, {
      message: 'probe names must be unique',
    }),
});

const SchedulerOptionsSchema = z.strictObject({
  onResult: functionSchema<ProbeSchedulerOptions['onResult']>(),
  concurrency: z.number().int().positive().optional(),
  jitter: z.number().min(0).max(1).optional(),
  seed: z.number().int().optional(),
  now: functionSchema<() => number>().optional(),
  logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).optional(),
});

/** A run abandoned this long after its timeout is reported as a timeout (for `run`s that ignore their signal). ms. */
const ABANDON_AFTER_MS = 1000;

/**
 * What a slot keeps of its {@link ScheduledProbe}: all of it but `watchPath` (kept as the slot's
 * directory and file name), frozen. Slots given the same `run` with the same name and timing
 * share one (a fleet's heartbeat probes, one `run` for every agent, share one object), so
 * neither the caller's object nor its path is kept per agent.
 */
type ProbeSpec = Readonly<Omit<ScheduledProbe, 'watchPath'>>;

/** The {@link ProbeSpec} of a scheduled probe: the last one made for its `run`, when it matches. */
function createSpecs(): (probe: ScheduledProbe) => ProbeSpec {
  const byRun = new WeakMap<ScheduledProbe['run'], ProbeSpec>();
  return (probe) => {
    const known = byRun.get(probe.run);
    if (
      known !== undefined &&
      known.name === probe.name &&
      known.intervalMs === probe.intervalMs &&
      known.timeoutMs === probe.timeoutMs &&
      known.watchedIntervalMs === probe.watchedIntervalMs
    )
      return known;
    const spec: ProbeSpec = Object.freeze({
      name: probe.name,
      intervalMs: probe.intervalMs,
      ...(probe.timeoutMs === undefined ? {} : { timeoutMs: probe.timeoutMs }),
      ...(probe.watchedIntervalMs === undefined
        ? {}
        : { watchedIntervalMs: probe.watchedIntervalMs }),
      run: probe.run,
    });
    byRun.set(probe.run, spec);
    return spec;
  };
}

/**
 * The watched directories' names, one string per directory for all the slots watching a file in
 * it (a cell's 100 heartbeat files share one), held while a slot names it.
 */
function createDirNames(): { hold(dir: string): string; release(dir: string): void } {
  const names = new Map<string, { name: string; slots: number }>();
  return {
    hold(dir) {
      let held = names.get(dir);
      if (held === undefined) names.set(dir, (held = { name: ownString(dir), slots: 0 }));
      held.slots += 1;
      return held.name;
    },
    release(dir) {
      const held = names.get(dir);
      if (held !== undefined && --held.slots === 0) names.delete(dir);
    },
  };
}

/** One probe of one agent: a fixed-shape record, in the shared timer heap while it waits. */
class Slot implements HeapEntry {
  dueAt = Infinity;
  heapIndex = -1;
  /** What the heap entry is for: the next run (and why), or abandoning the current one. */
  dueReason: RunReason | 'abandon' = 'interval';
  status: 'idle' | 'queued' | 'running' = 'idle';
  queuedReason: RunReason = 'start';
  /** Incremented on each enqueue; queue entries with an older token are stale. */
  token = 0;
  urgentQueued = false;
  /** A trigger that arrived while running: run again right after. */
  rerun: RunReason | undefined = undefined;
  controller: AbortController | undefined = undefined;
  /** Runs aborted (abandoned, or the probe removed): a run's lazy signal read later is aborted. */
  aborts = 0;
  removed = false;
  /** Runs started (so a sweep waits for a run that began after it; a late result of an abandoned run is dropped). */
  started = 0;
  runReason: RunReason = 'start';
  runBegan = 0;
  waiters: { after: number; resolve: (event: ProbeEvent | undefined) => void }[] | undefined =
    undefined;
  /** The watched directory's entry, while watched. */
  watch: DirWatch | undefined = undefined;
  firstInterval = true;
  /** How long the last run took, ms (sweeps start the slowest probes first). */
  lastLatencyMs = 0;

  constructor(
    readonly agent: string,
    readonly spec: ProbeSpec,
    /** The directory of its `watchPath` (absolute), and the file's name in it; `undefined` and '' for none. */
    readonly watchDir: string | undefined,
    readonly watchFile: string,
  ) {}
}

interface QueueEntry {
  slot: Slot;
  token: number;
}

interface DirWatch {
  dir: string;
  watcher: FSWatcher;
  /** Watched file name → its slot (or slots, when several probes watch one file). */
  files: Map<string, Slot | Slot[]>;
}

const URGENT: ReadonlySet<RunReason> = new Set(['deadline', 'manual']);

/**
 * Creates a probe scheduler: per-agent schedules with jitter, bounded concurrency and
 * queue-jumping deadline timers, so a heartbeat's death is seen within milliseconds of its
 * deadline rather than at the next poll, and one hung target never delays another.
 * @throws {ProbeError} PROBE_INVALID_OPTIONS.
 * @example
 * const assessor = createAssessor({ probes: { heartbeat: { failureThreshold: 1 } } });
 * const scheduler = createProbeScheduler({
 *   onResult: ({ agent, probe, result }) => {
 *     const verdict = assessor.record(agent, probe, result);
 *     if (verdict.changed) daemon.onHealth(verdict);
 *   },
 * });
 * const heartbeat = createHeartbeatProbe({ cellDir, agent: 'forge', maxAgeMs: 30_000 });
 * scheduler.add({ agent: `${uuid}/forge`, probes: [
 *   { name: 'heartbeat', intervalMs: 60_000, watchPath: cellPaths(cellDir).heartbeat('forge'), run: heartbeat.run },
 *   { name: 'http', intervalMs: 15_000, timeoutMs: 2000, run: (options) => httpProbe('http://127.0.0.1:8642/health', options) },
 * ] });
 */
export function createProbeScheduler(options: ProbeSchedulerOptions): ProbeScheduler {
  const parsed = SchedulerOptionsSchema.safeParse(options);
  if (!parsed.success)
    throw new ProbeError(
      'PROBE_INVALID_OPTIONS',
      `probe scheduler options: ${formatIssues(parsed.error)}`,
    );
  const concurrency = options.concurrency ?? 256;
  const jitter = options.jitter ?? 0.1;
  const random = createRandom(options.seed);
  const now = options.now ?? Date.now;
  const logger = options.logger ?? silentLogger;
  const onResult = options.onResult;

  const agents = new Map<string, Slot[]>();
  const urgent = new Fifo<QueueEntry>();
  const normal = new Fifo<QueueEntry>();
  const watches = new Map<string, DirWatch>();
  const specOf = createSpecs();
  const dirNames = createDirNames();
  let running = 0;
  let queued = 0;
  let runs = 0;
  let stopped = false;
  /** Resolved when no run is left (stop() waits for it). */
  let drained: (() => void) | undefined;

  // One timer for the whole fleet: each slot is in the heap at most once, for its next run or,
  // while running, for abandoning a run that ignores its timeout.
  const timers = new TimerHeap<Slot>((slot) => {
    if (slot.dueReason === 'abandon') abandon(slot);
    else enqueue(slot, slot.dueReason);
  });

  const enqueue = (slot: Slot, reason: RunReason): void => {
    const isUrgent = URGENT.has(reason);
    if (slot.status === 'running') {
      if (slot.rerun === undefined || isUrgent) slot.rerun = reason;
      return;
    }
    if (slot.status === 'queued') {
      // Already waiting: an urgent trigger moves it to the front queue.
      if (isUrgent && !slot.urgentQueued) {
        slot.token += 1;
        slot.urgentQueued = true;
        slot.queuedReason = reason;
        urgent.push({ slot, token: slot.token });
      }
      return;
    }
    timers.cancel(slot);
    slot.status = 'queued';
    slot.queuedReason = reason;
    slot.token += 1;
    slot.urgentQueued = isUrgent;
    queued += 1;
    (isUrgent ? urgent : normal).push({ slot, token: slot.token });
    pump();
  };

  const pump = (): void => {
    while (running < concurrency) {
      const entry = urgent.shift() ?? normal.shift();
      if (!entry) return;
      const { slot, token } = entry;
      if (slot.removed || slot.status !== 'queued' || slot.token !== token) continue;
      queued -= 1;
      start(slot);
    }
  };

  const start = (slot: Slot): void => {
    slot.status = 'running';
    slot.started += 1;
    running += 1;
    const run = slot.started;
    const reason = slot.queuedReason;
    slot.runReason = reason;
    // One controller per probe, made when a run first asks for its signal and kept across runs
    // until a run is aborted (abandoned or removed): a run that is not aborted leaves it as it
    // found it, a fleet's runs allocate none, and a probe that never asks (a heartbeat read
    // answered at once) never holds one.
    const timeoutMs = slot.spec.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    slot.runBegan = performance.now();
    slot.dueReason = 'abandon';
    timers.schedule(slot, slot.runBegan + timeoutMs + ABANDON_AFTER_MS);
    let attempt: Promise<ProbeResult>;
    try {
      attempt = slot.spec.run(new RunOptions(slot, timeoutMs, now), {
        agent: slot.agent,
        probe: slot.spec.name,
        reason,
      });
    } catch (error) {
      attempt = Promise.reject(error);
    }
    attempt.then(
      (result) => settle(slot, run, result),
      (error: unknown) => {
        logger.error('probe run threw instead of returning a result', {
          agent: slot.agent,
          probe: slot.spec.name,
          error: describeError(error),
        });
        settle(
          slot,
          run,
          failed(slot, performance.now() - slot.runBegan, 'error', describeError(error)),
        );
      },
    );
  };

  /** The run did not settle within its timeout + ABANDON_AFTER_MS: aborted and reported as a timeout. */
  const abandon = (slot: Slot): void => {
    if (slot.status !== 'running') return;
    slot.controller?.abort();
    slot.controller = undefined;
    slot.aborts += 1;
    const timeoutMs = (slot.spec.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS) + ABANDON_AFTER_MS;
    const result = failed(
      slot,
      timeoutMs,
      'timeout',
      `the probe did not settle within ${timeoutMs} ms; abandoned`,
    );
    settle(slot, slot.started, result);
  };

  const failed = (
    slot: Slot,
    latencyMs: number,
    failure: 'timeout' | 'error',
    detail: string,
  ): ProbeResult => ({
    kind: slot.spec.name,
    ok: false,
    latencyMs,
    detail: `${slot.agent}/${slot.spec.name}: ${detail}`,
    observedAt: now(),
    failure,
  });

  /** The end of run number `run` of the slot (a late end of an abandoned run is dropped). */
  const settle = (slot: Slot, run: number, result: ProbeResult): void => {
    if (slot.status !== 'running' || slot.started !== run) return;
    if (slot.dueReason === 'abandon') timers.cancel(slot);
    running -= 1;
    runs += 1;
    slot.status = 'idle';
    slot.lastLatencyMs = result.latencyMs;
    if (!slot.removed && !stopped) report(slot, result);
    pump();
    if (running === 0) drained?.();
  };

  const report = (slot: Slot, result: ProbeResult): void => {
    const event: ProbeEvent = {
      agent: slot.agent,
      probe: slot.spec.name,
      reason: slot.runReason,
      result,
    };
    try {
      onResult(event);
    } catch (error) {
      logger.error('onResult threw', {
        agent: slot.agent,
        probe: slot.spec.name,
        error: describeError(error),
      });
    }
    if (slot.waiters) {
      const ready = slot.waiters.filter((waiter) => waiter.after < slot.started);
      const left = slot.waiters.filter((waiter) => waiter.after >= slot.started);
      slot.waiters = left.length > 0 ? left : undefined;
      for (const waiter of ready) waiter.resolve(event);
    }
    if (slot.removed) return; // onResult or a waiter may have removed the agent
    ensureWatch(slot);
    const rerun = slot.rerun;
    slot.rerun = undefined;
    if (rerun !== undefined) enqueue(slot, rerun);
    else plan(slot, result);
  };

  /** Puts the slot in the heap: the next interval, or the result's deadline if that comes first. */
  const plan = (slot: Slot, result: ProbeResult): void => {
    const watched = slot.watch !== undefined && result.ok;
    const interval = (watched ? slot.spec.watchedIntervalMs : undefined) ?? slot.spec.intervalMs;
    let delay = slot.firstInterval
      ? interval * random()
      : interval * (1 + jitter * (2 * random() - 1));
    slot.firstInterval = false;
    let reason: RunReason = 'interval';
    if (result.ok && result.deadlineAt !== undefined) {
      // +1 ms: at the deadline itself the target is still within its threshold.
      const untilDeadline = result.deadlineAt - now() + 1;
      if (untilDeadline < delay) {
        delay = Math.max(0, untilDeadline);
        reason = 'deadline';
      }
    }
    slot.dueReason = reason;
    timers.schedule(slot, performance.now() + Math.min(Math.ceil(delay), 2_147_483_647));
  };

  const newSlot = (agent: string, probe: ScheduledProbe): Slot => {
    if (probe.watchPath === undefined) return new Slot(agent, specOf(probe), undefined, '');
    const absolute = resolve(probe.watchPath);
    const dir = dirNames.hold(dirname(absolute));
    return new Slot(agent, specOf(probe), dir, ownString(basename(absolute)));
  };

  const ensureWatch = (slot: Slot): void => {
    const dir = slot.watchDir;
    if (dir === undefined || slot.watch || slot.removed || stopped) return;
    const entry = watches.get(dir) ?? watchDir(dir);
    if (!entry) return;
    const file = slot.watchFile;
    const others = entry.files.get(file);
    entry.files.set(
      file,
      others === undefined ? slot : Array.isArray(others) ? [...others, slot] : [others, slot],
    );
    slot.watch = entry;
  };

  const watchDir = (dir: string): DirWatch | undefined => {
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: false }, (_event, filename) =>
        onChange(dir, filename === null ? undefined : String(filename)),
      );
    } catch (error) {
      // The directory may not exist yet (no heartbeat written): retried after the next run.
      logger.debug('cannot watch directory yet; polling only', {
        dir,
        error: describeError(error),
      });
      return undefined;
    }
    watcher.on('error', (error) => {
      logger.warn('directory watch failed; polling only until the next run re-arms it', {
        dir,
        error: describeError(error),
      });
      dropWatch(dir);
    });
    const entry: DirWatch = { dir, watcher, files: new Map() };
    watches.set(dir, entry);
    return entry;
  };

  const dropWatch = (dir: string): void => {
    const entry = watches.get(dir);
    if (!entry) return;
    watches.delete(dir);
    entry.watcher.close();
    for (const slots of entry.files.values())
      for (const slot of Array.isArray(slots) ? slots : [slots]) slot.watch = undefined;
  };

  const unwatch = (slot: Slot): void => {
    const entry = slot.watch;
    if (!entry) return;
    slot.watch = undefined;
    const slots = entry.files.get(slot.watchFile);
    if (Array.isArray(slots)) {
      const left = slots.filter((other) => other !== slot);
      entry.files.set(slot.watchFile, left.length === 1 ? (left[0] as Slot) : left);
    } else if (slots === slot) entry.files.delete(slot.watchFile);
    if (entry.files.size === 0 && watches.get(entry.dir) === entry) {
      watches.delete(entry.dir);
      entry.watcher.close();
    }
  };

  const onChange = (dir: string, file: string | undefined): void => {
    const entry = watches.get(dir);
    if (!entry || stopped) return;
    // The platform may not say which file: then every probe watching this directory re-runs.
    const chosen = file === undefined ? [...entry.files.values()] : [entry.files.get(file)];
    for (const slots of chosen) {
      if (slots === undefined) continue;
      for (const slot of Array.isArray(slots) ? [...slots] : [slots]) enqueue(slot, 'watch');
    }
  };

  const removeSlot = (slot: Slot): void => {
    if (!slot.removed && slot.watchDir !== undefined) dirNames.release(slot.watchDir);
    slot.removed = true;
    if (slot.dueReason !== 'abandon') timers.cancel(slot);
    if (slot.status === 'queued') queued -= 1;
    slot.controller?.abort();
    slot.controller = undefined;
    slot.aborts += 1;
    unwatch(slot);
    for (const waiter of slot.waiters ?? []) waiter.resolve(undefined);
    slot.waiters = undefined;
  };

  const assertRunning = (what: string): void => {
    if (stopped) throw new ProbeError('PROBE_STOPPED', `probe scheduler: ${what} after stop()`);
  };

  return {
    add(schedule) {
      assertRunning('add');
      const check = AgentScheduleSchema.safeParse(schedule);
      if (!check.success)
        throw new ProbeError(
          'PROBE_INVALID_OPTIONS',
          `probe schedule ${JSON.stringify(schedule?.agent)}: ${formatIssues(check.error)}`,
        );
      if (agents.has(schedule.agent))
        throw new ProbeError(
          'PROBE_AGENT_EXISTS',
          `probe scheduler: agent ${JSON.stringify(schedule.agent)} is already scheduled; remove it first`,
        );
      const slots = schedule.probes.map((probe) => newSlot(schedule.agent, probe));
      agents.set(schedule.agent, slots);
      for (const slot of slots) {
        ensureWatch(slot);
        enqueue(slot, 'start');
      }
    },
    remove(agent) {
      const slots = agents.get(agent);
      if (!slots) return false;
      agents.delete(agent);
      for (const slot of slots) removeSlot(slot);
      return true;
    },
    has: (agent) => agents.has(agent),
    agents: () => [...agents.keys()],
    trigger(agent, probe) {
      assertRunning('trigger');
      const slots = agents.get(agent);
      if (!slots)
        throw new ProbeError(
          'PROBE_UNKNOWN_AGENT',
          `probe scheduler: agent ${JSON.stringify(agent)} is not scheduled`,
        );
      const chosen = probe === undefined ? slots : slots.filter((slot) => slot.spec.name === probe);
      if (chosen.length === 0)
        throw new ProbeError(
          'PROBE_UNKNOWN_AGENT',
          `probe scheduler: agent ${JSON.stringify(agent)} has no probe ${JSON.stringify(probe)}`,
        );
      for (const slot of chosen) enqueue(slot, 'manual');
    },
    async sweep() {
      assertRunning('sweep');
      // Slowest first (by their last run): targets that hung last time start at once, so their
      // timeouts overlap the quick probes instead of trailing them.
      const slots = [...agents.values()].flat().sort((a, b) => b.lastLatencyMs - a.lastLatencyMs);
      const waits = slots.map(
        (slot) =>
          new Promise<ProbeEvent | undefined>((resolveWait) =>
            (slot.waiters ??= []).push({ after: slot.started, resolve: resolveWait }),
          ),
      );
      for (const slot of slots) enqueue(slot, 'manual');
      const events = await Promise.all(waits);
      return events.filter((event): event is ProbeEvent => event !== undefined);
    },
    stats: () => ({
      agents: agents.size,
      probes: [...agents.values()].reduce((total, slots) => total + slots.length, 0),
      running,
      queued,
      watchedDirs: watches.size,
      runs,
    }),
    async stop() {
      if (stopped) return;
      for (const slots of agents.values()) for (const slot of slots) removeSlot(slot);
      stopped = true;
      agents.clear();
      urgent.clear();
      normal.clear();
      for (const dir of [...watches.keys()]) dropWatch(dir);
      // Runs were aborted; one that ignores its signal is abandoned by its heap entry, still armed.
      if (running > 0) await new Promise<void>((resolveDrained) => (drained = resolveDrained));
      timers.clear();
    },
  };
}
