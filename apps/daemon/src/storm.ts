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
  const { brake, send } = options;
  const clock = options.clock ?? Date.now;
  const settleMs = options.settleMs ?? 1000;
  const maxGatherMs = options.maxGatherMs ?? 10_000;
  const followUpMs = options.followUpMs ?? brake.window;
  let recent: Recent[] = [];
  let storm: Storm | undefined;
  let closed = false;

  const summary = (death: StormDeath, phase: string) =>
    `dead (${phase}): ${death.reason}`.slice(0, 300);

  const flush = () => {
    if (!storm) return;
    clearTimeout(storm.timer);
    storm.timer = undefined;
    const first = storm.gathering;
    storm.gathering = false;
    const alerts = [...storm.pending.values(), ...storm.held];
    storm.pending.clear();
    storm.held = [];
    if (alerts.length === 0) return;
    storm.lastSentAt = clock();
    options.logger?.info(first ? 'storm alert sent' : 'storm follow-up sent', {
      alerts: alerts.length,
      deaths: storm.total,
    });
    try {
      send(alerts);
    } catch (error) {
      options.logger?.error('cannot send the storm alert', {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };

  const schedule = (delayMs: number) => {
    if (!storm || storm.timer || closed) return;
    storm.timer = setTimeout(flush, Math.max(0, delayMs));
    storm.timer.unref();
  };

  return {
    seen(death) {
      if (closed) return;
      const now = clock();
      const key = keyOf(death.agent, death.cell ?? death.mission);
      recent = recent.filter((entry) => now - entry.at <= brake.window && entry.key !== key);
      const entry: Recent = { key, at: now, death, individual: false };
      recent.push(entry);
      if (storm && now - storm.lastDeathAt > brake.window) {
        flush();
        storm = undefined;
      }
      if (storm) {
        storm.lastDeathAt = now;
        storm.total += 1;
        storm.pending.set(key, {
          kind: 'death',
          agent: death.agent,
          mission: death.mission,
          ...(death.at ? { at: death.at } : {}),
          summary: summary(death, storm.gathering ? 'storm' : 'storm continues'),
        });
        if (storm.gathering) {
          // Wait for the burst to settle, within the bound.
          clearTimeout(storm.timer);
          storm.timer = undefined;
          schedule(Math.min(now + settleMs, storm.startedAt + maxGatherMs) - now);
        } else schedule((storm.lastSentAt ?? now) + followUpMs - now);
        return;
      }
      if (!isDeathStorm({ deaths: recent.length, fleetSize: death.fleetSize, brake })) return;
      storm = {
        startedAt: now,
        lastDeathAt: now,
        total: recent.length,
        gathering: true,
        pending: new Map(),
        held: [],
        lastSentAt: undefined,
        timer: undefined,
      };
      for (const earlier of recent)
        if (!earlier.individual)
          storm.pending.set(earlier.key, {
            kind: 'death',
            agent: earlier.death.agent,
            mission: earlier.death.mission,
            ...(earlier.death.at ? { at: earlier.death.at } : {}),
            summary: summary(earlier.death, 'storm'),
          });
      options.logger?.warn('death storm', {
        deaths: recent.length,
        window: formatDuration(brake.window),
      });
      schedule(Math.min(settleMs, maxGatherMs));
    },

    individual(alert, cell) {
      const key = keyOf(alert.agent, cell ?? alert.mission);
      const entry = recent.find((candidate) => candidate.key === key);
      if (entry) entry.individual = true;
      if (!storm || closed) return false;
      storm.pending.delete(key);
      if (!storm.gathering) return false;
      storm.held.push(alert);
      return true;
    },

    close() {
      if (closed) return;
      flush();
      closed = true;
      storm = undefined;
      recent = [];
    },
  };
}
