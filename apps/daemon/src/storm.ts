/**
 * The storm detector: decides which deaths page people. A death storm (by the fleet brake's rule)
 * goes out as one grouped message, then follow-ups; a lone restarted death pages nobody.
 */
import type { AlertInput } from '@pit/notify';
import { formatDuration, isDeathStorm, type FleetBrake } from '@pit/policy';
import type { Logger } from './logger.js';

/** A death as the storm detector hears of it (the supervisor's `DeathSeen`). */
export interface StormDeath {
  agent: string;
  mission: string;
  cell?: string;
  reason: string;
  /** When the agent died (the alert's time, so a grouped message spans the real deaths). @default when seen */
  at?: Date;
  /** Agents supervised when it was seen; enables the brake's percentage rule. Without it only `max_deaths` counts. */
  fleetSize?: number;
}

/** Options of {@link createStormAlerts}. */
export interface StormAlertsOptions {
  /** The fleet brake's thresholds, used whether the brake is enabled or not (durations in ms). */
  brake: Pick<FleetBrake, 'max_deaths' | 'max_percent' | 'min_agents' | 'window'>;
  /**
   * A storm's first message waits until no death has been seen for this long (ms), so a burst
   * detected over a few seconds goes out whole. @default 1000
   */
  settleMs?: number;
  /** ... but never longer than this after the storm's onset (ms). @default 10000 */
  maxGatherMs?: number;
  /** Follow-ups for deaths seen later in the same storm go out at most this often (ms). @default brake.window */
  followUpMs?: number;
  /** Hands a batch to the alert dispatcher: every alert of one call goes out as one grouped message. */
  send(alerts: AlertInput[]): void;
  /** Milliseconds since epoch. @default Date.now */
  clock?: () => number;
  logger?: Logger;
}

/** Decides which deaths page people: a storm does, a lone restarted death does not. */
export interface StormAlerts {
  /** Every death, when first seen, whatever the decision. */
  seen(death: StormDeath): void;
  /**
   * An alert that goes to people on its own (a death that needs a human, an escalation).
   * Its agent is taken out of the storm's lists (it is not told twice); while a storm's first
   * message is being gathered the alert is held to go out in it (returns true), else the
   * caller sends it (returns false).
   */
  individual(alert: AlertInput & { agent: string }, cell?: string): boolean;
  /** Sends what is held now and stops the timers. */
  close(): void;
}

interface Recent {
  key: string;
  at: number;
  death: StormDeath;
  /** Alerted on its own (record_only, escalate, ask): never listed by the storm. */
  individual: boolean;
}

interface Storm {
  startedAt: number;
  lastDeathAt: number;
  /** Deaths in this storm, counted once per agent key. */
  total: number;
  /** True until the first message went out. */
  gathering: boolean;
  pending: Map<string, AlertInput>;
  held: AlertInput[];
  lastSentAt: number | undefined;
  timer: NodeJS.Timeout | undefined;
}

const keyOf = (agent: string, scope: string | undefined) => `${scope ?? ''}/${agent}`;

/** {@link StormAlertsOptions} with the defaults applied. */
interface StormConfig {
  brake: StormAlertsOptions['brake'];
  send: StormAlertsOptions['send'];
  clock: () => number;
  settleMs: number;
  maxGatherMs: number;
  followUpMs: number;
  logger: Logger | undefined;
}

/** What a storm detector remembers between calls. */
interface StormState {
  recent: Recent[];
  storm: Storm | undefined;
  closed: boolean;
}

/** A storm detector's configuration and state, passed to the functions that act on it. */
interface StormContext {
  config: StormConfig;
  state: StormState;
}

/** The alert listing `death` in a storm's message; `phase` says whether the storm is new. */
function deathAlert(death: StormDeath, phase: string): AlertInput {
  return {
    kind: 'death',
    agent: death.agent,
    mission: death.mission,
    ...(death.at ? { at: death.at } : {}),
    summary: `dead (${phase}): ${death.reason}`.slice(0, 300),
  };
}

/** Sends the storm's pending and held alerts as one batch, and stops its timer. */
function flushStorm(ctx: StormContext): void {
  const { storm } = ctx.state;
  const { logger } = ctx.config;
  if (!storm) return;
  clearTimeout(storm.timer);
  storm.timer = undefined;
  const first = storm.gathering;
  storm.gathering = false;
  const alerts = [...storm.pending.values(), ...storm.held];
  storm.pending.clear();
  storm.held = [];
  if (alerts.length === 0) return;
  const { clock, send } = ctx.config;
  storm.lastSentAt = clock();
  logger?.info(first ? 'storm alert sent' : 'storm follow-up sent', {
    alerts: alerts.length,
    deaths: storm.total,
  });
  try {
    send(alerts);
  } catch (error) {
    logger?.error('cannot send the storm alert', {
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

/** Flushes the storm after `delayMs`, unless a flush is already scheduled or the detector is closed. */
function scheduleFlush(ctx: StormContext, delayMs: number): void {
  const { storm } = ctx.state;
  if (!storm || storm.timer || ctx.state.closed) return;
  storm.timer = setTimeout(() => flushStorm(ctx), Math.max(0, delayMs));
  storm.timer.unref();
}

/** Adds a death seen during the storm `storm` and schedules its message. */
function continueStorm(ctx: StormContext, storm: Storm, entry: Recent): void {
  const now = entry.at;
  const { settleMs, maxGatherMs, followUpMs } = ctx.config;
  storm.lastDeathAt = now;
  storm.total += 1;
  storm.pending.set(
    entry.key,
    deathAlert(entry.death, storm.gathering ? 'storm' : 'storm continues'),
  );
  if (storm.gathering) {
    // Wait for the burst to settle, within the bound.
    clearTimeout(storm.timer);
    storm.timer = undefined;
    scheduleFlush(ctx, Math.min(now + settleMs, storm.startedAt + maxGatherMs) - now);
  } else scheduleFlush(ctx, (storm.lastSentAt ?? now) + followUpMs - now);
}

/** Starts a storm at `now` listing every recent death not alerted on its own. */
function startStorm(ctx: StormContext, now: number): void {
  const { recent } = ctx.state;
  const { brake, settleMs, maxGatherMs } = ctx.config;
  const storm: Storm = {
    startedAt: now,
    lastDeathAt: now,
    total: recent.length,
    gathering: true,
    pending: new Map(),
    held: [],
    lastSentAt: undefined,
    timer: undefined,
  };
  ctx.state.storm = storm;
  for (const earlier of recent)
    if (!earlier.individual) storm.pending.set(earlier.key, deathAlert(earlier.death, 'storm'));
  ctx.config.logger?.warn('death storm', {
    deaths: recent.length,
    window: formatDuration(brake.window),
  });
  scheduleFlush(ctx, Math.min(settleMs, maxGatherMs));
}

/** {@link StormAlerts.seen}: records the death, ends a storm past its window, continues or starts one. */
function seenDeath(ctx: StormContext, death: StormDeath): void {
  const { state } = ctx;
  const { brake } = ctx.config;
  if (state.closed) return;
  const { clock } = ctx.config;
  const now = clock();
  const key = keyOf(death.agent, death.cell ?? death.mission);
  state.recent = state.recent.filter(
    (entry) => now - entry.at <= brake.window && entry.key !== key,
  );
  const entry: Recent = { key, at: now, death, individual: false };
  state.recent.push(entry);
  if (state.storm && now - state.storm.lastDeathAt > brake.window) {
    flushStorm(ctx);
    state.storm = undefined;
  }
  if (state.storm) {
    continueStorm(ctx, state.storm, entry);
    return;
  }
  if (!isDeathStorm({ deaths: state.recent.length, fleetSize: death.fleetSize, brake })) return;
  startStorm(ctx, now);
}

/** {@link StormAlerts.individual}: takes the agent out of the storm's lists, holds the alert while gathering. */
function individualAlert(
  ctx: StormContext,
  alert: AlertInput & { agent: string },
  cell: string | undefined,
): boolean {
  const { state } = ctx;
  const key = keyOf(alert.agent, cell ?? alert.mission);
  const entry = state.recent.find((candidate) => candidate.key === key);
  if (entry) entry.individual = true;
  if (!state.storm || state.closed) return false;
  state.storm.pending.delete(key);
  if (!state.storm.gathering) return false;
  state.storm.held.push(alert);
  return true;
}

/**
 * Creates the storm detector. A storm is on when the deaths seen within the fleet brake's
 * `window` (counted when seen, one per agent) make one by @pit/policy's `isDeathStorm` — the
 * rule and numbers the fleet brake uses.
 * Its onset collects every death of the window not alerted on its own, then gathers more until
 * none has been seen for `settleMs` (at most `maxGatherMs` after the onset), and sends them all
 * in one call (one grouped message per channel). Deaths seen later in the
 * storm go out as follow-ups, at most one per `followUpMs`. The storm is over once a whole
 * `window` passes without a death. Deaths outside storms send nothing.
 */
export function createStormAlerts(options: StormAlertsOptions): StormAlerts {
  const { brake } = options;
  const ctx: StormContext = {
    config: {
      brake,
      send: options.send,
      clock: options.clock ?? Date.now,
      settleMs: options.settleMs ?? 1000,
      maxGatherMs: options.maxGatherMs ?? 10_000,
      followUpMs: options.followUpMs ?? brake.window,
      logger: options.logger,
    },
    state: { recent: [], storm: undefined, closed: false },
  };
  return {
    seen: (death) => seenDeath(ctx, death),
    individual: (alert, cell) => individualAlert(ctx, alert, cell),
    close() {
      if (ctx.state.closed) return;
      flushStorm(ctx);
      ctx.state.closed = true;
      ctx.state.storm = undefined;
      ctx.state.recent = [];
    },
  };
}
