import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { z } from 'zod';
import { formatIssues } from '@pit/cell-spec';
import { ProbeError } from './errors.js';
import { Fifo } from './fifo.js';
import { silentLogger, type Logger } from './logger.js';
import { createRandom } from './random.js';
import {
  DEFAULT_PROBE_TIMEOUT_MS,
  describeError,
  functionSchema,
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
   * Runs the probe. Pass `options` straight to a probe of this package, e.g.
   * `run: (options) => httpProbe(url, options)`. Should settle within `timeoutMs`.
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

interface Slot {
  agent: string;
  spec: ScheduledProbe;
  timer: NodeJS.Timeout | undefined;
  status: 'idle' | 'queued' | 'running';
  queuedReason: RunReason;
  /** Incremented on each enqueue; queue entries with an older token are stale. */
  token: number;
  urgentQueued: boolean;
  /** A trigger that arrived while running: run again right after. */
  rerun: RunReason | undefined;
  controller: AbortController | undefined;
  removed: boolean;
  /** Runs started (so a sweep waits for a run that began after it). */
  started: number;
  waiters: { after: number; resolve: (event: ProbeEvent | undefined) => void }[];
  watchKey: { dir: string; file: string } | undefined;
  firstInterval: boolean;
  /** How long the last run took, ms (sweeps start the slowest probes first). */
  lastLatencyMs: number;
}

interface QueueEntry {
  slot: Slot;
  token: number;
}

interface DirWatch {
  watcher: FSWatcher;
  files: Map<string, Set<Slot>>;
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
  const inFlight = new Set<Promise<void>>();
  let running = 0;
  let queued = 0;
  let runs = 0;
  let stopped = false;

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
    clearTimeout(slot.timer);
    slot.timer = undefined;
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
    const reason = slot.queuedReason;
    const controller = new AbortController();
    slot.controller = controller;
    const timeoutMs = slot.spec.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    const began = performance.now();
    let abandon: NodeJS.Timeout | undefined;
    const abandoned = new Promise<ProbeResult>((resolveAbandoned) => {
      abandon = setTimeout(() => {
        controller.abort();
        resolveAbandoned(
          failed(
            slot,
            timeoutMs + ABANDON_AFTER_MS,
            'timeout',
            `the probe did not settle within ${timeoutMs + ABANDON_AFTER_MS} ms; abandoned`,
          ),
        );
      }, timeoutMs + ABANDON_AFTER_MS);
    });
    let attempt: Promise<ProbeResult>;
    try {
      attempt = slot.spec.run(
        { signal: controller.signal, timeoutMs, now },
        { agent: slot.agent, probe: slot.spec.name, reason },
      );
    } catch (error) {
      attempt = Promise.reject(error);
    }
    const done = Promise.race([attempt, abandoned])
      .catch((error: unknown) => {
        logger.error('probe run threw instead of returning a result', {
          agent: slot.agent,
          probe: slot.spec.name,
          error: describeError(error),
        });
        return failed(slot, performance.now() - began, 'error', describeError(error));
      })
      .then((result) => {
        clearTimeout(abandon);
        finish(slot, reason, result);
      });
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
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

  const finish = (slot: Slot, reason: RunReason, result: ProbeResult): void => {
    running -= 1;
    runs += 1;
    slot.status = 'idle';
    slot.controller = undefined;
    slot.lastLatencyMs = result.latencyMs;
    if (!slot.removed && !stopped) {
      const event: ProbeEvent = { agent: slot.agent, probe: slot.spec.name, reason, result };
      try {
        onResult(event);
      } catch (error) {
        logger.error('onResult threw', {
          agent: slot.agent,
          probe: slot.spec.name,
          error: describeError(error),
        });
      }
      const ready = slot.waiters.filter((waiter) => waiter.after < slot.started);
      slot.waiters = slot.waiters.filter((waiter) => waiter.after >= slot.started);
      for (const waiter of ready) waiter.resolve(event);
      ensureWatch(slot);
      const rerun = slot.rerun;
      slot.rerun = undefined;
      if (rerun !== undefined) enqueue(slot, rerun);
      else plan(slot, result);
    }
    pump();
  };

  /** Arms the slot's one timer: the next interval, or the result's deadline if that comes first. */
  const plan = (slot: Slot, result: ProbeResult): void => {
    const interval = slot.spec.intervalMs;
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
    slot.timer = setTimeout(
      () => {
        slot.timer = undefined;
        enqueue(slot, reason);
      },
      Math.min(Math.ceil(delay), 2_147_483_647),
    );
  };

  const ensureWatch = (slot: Slot): void => {
    const path = slot.spec.watchPath;
    if (path === undefined || slot.watchKey || slot.removed || stopped) return;
    const absolute = resolve(path);
    const dir = dirname(absolute);
    const file = basename(absolute);
    let entry = watches.get(dir);
    if (!entry) {
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
        return;
      }
      watcher.on('error', (error) => {
        logger.warn('directory watch failed; polling only until the next run re-arms it', {
          dir,
          error: describeError(error),
        });
        dropWatch(dir);
      });
      entry = { watcher, files: new Map() };
      watches.set(dir, entry);
    }
    let slots = entry.files.get(file);
    if (!slots) {
      slots = new Set();
      entry.files.set(file, slots);
    }
    slots.add(slot);
    slot.watchKey = { dir, file };
  };

  const dropWatch = (dir: string): void => {
    const entry = watches.get(dir);
    if (!entry) return;
    watches.delete(dir);
    entry.watcher.close();
    for (const slots of entry.files.values()) for (const slot of slots) slot.watchKey = undefined;
  };

  const unwatch = (slot: Slot): void => {
    const key = slot.watchKey;
    if (!key) return;
    slot.watchKey = undefined;
    const entry = watches.get(key.dir);
    const slots = entry?.files.get(key.file);
    if (!entry || !slots) return;
    slots.delete(slot);
    if (slots.size === 0) entry.files.delete(key.file);
    if (entry.files.size === 0) {
      watches.delete(key.dir);
      entry.watcher.close();
    }
  };

  const onChange = (dir: string, file: string | undefined): void => {
    const entry = watches.get(dir);
    if (!entry || stopped) return;
    if (file === undefined) {
      // The platform did not say which file: re-run every probe watching this directory.
      for (const slots of entry.files.values()) for (const slot of slots) enqueue(slot, 'watch');
      return;
    }
    const slots = entry.files.get(file);
    if (slots) for (const slot of slots) enqueue(slot, 'watch');
  };

  const removeSlot = (slot: Slot): void => {
    slot.removed = true;
    clearTimeout(slot.timer);
    slot.timer = undefined;
    if (slot.status === 'queued') queued -= 1;
    slot.controller?.abort();
    unwatch(slot);
    for (const waiter of slot.waiters) waiter.resolve(undefined);
    slot.waiters = [];
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
      const slots = schedule.probes.map((spec): Slot => ({
        agent: schedule.agent,
        spec,
        timer: undefined,
        status: 'idle',
        queuedReason: 'start',
        token: 0,
        urgentQueued: false,
        rerun: undefined,
        controller: undefined,
        removed: false,
        started: 0,
        waiters: [],
        watchKey: undefined,
        firstInterval: true,
        lastLatencyMs: 0,
      }));
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
            slot.waiters.push({ after: slot.started, resolve: resolveWait }),
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
      await Promise.allSettled([...inFlight]);
    },
  };
}
