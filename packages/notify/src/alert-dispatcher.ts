import { formatIssues } from '@pit/cell-spec';
import type { z } from 'zod';
import { AlertSchema, type Alert, type AlertBatch } from './alert.js';
import type { AlertChannel } from './channel.js';
import { deliverWithRetry, type RetryOptions } from './deliver.js';
import { NotifyError } from './errors.js';
import { describeError, silentLogger, type Logger } from './logger.js';
import { createRateLimiter, type RateLimit, type RateLimiter } from './rate-limiter.js';

/** An alert as passed to {@link AlertDispatcher.notify}; `at` defaults to now. */
export type AlertInput = Omit<z.input<typeof AlertSchema>, 'at'> & { at?: Date };

/** The outcome of one channel message. */
export interface DeliveryReport {
  channel: string;
  ok: boolean;
  /** Alerts the message carried (listed, plus omitted). */
  alerts: number;
  grouped: boolean;
  /** From the first attempt to the outcome (ms). */
  durationMs: number;
  /** The last failure when `ok` is false. */
  error?: NotifyError;
}

/** Options of {@link createAlertDispatcher}. */
export interface AlertDispatcherOptions {
  channels: AlertChannel[];
  /**
   * Alerts arriving within this window after the first one are sent together: one message
   * per channel listing them all (ms). 0 sends each alert as soon as the channel allows.
   * @default 2000
   */
  groupWindowMs?: number;
  /** Default per-channel rate limit; alerts waiting for a slot are merged into one message. @default 20 per 60000 ms */
  rateLimit?: RateLimit;
  /** Per-channel overrides of `rateLimit`, by channel name. */
  rateLimits?: Record<string, RateLimit>;
  /** Alerts kept waiting per channel; beyond this the oldest are dropped and counted as "… and N more". @default 1000 */
  maxQueue?: number;
  /** Retry policy per message (transient failures only); a hung attempt is cut at `attemptTimeoutMs`. */
  retry?: RetryOptions;
  logger?: Logger;
  /** Clock for alerts without `at`. @default () => new Date() */
  clock?: () => Date;
  /** Called after every channel message, delivered or given up. */
  onDelivery?: (report: DeliveryReport) => void;
}

/** Groups, rate-limits and delivers alerts to every channel independently. */
export interface AlertDispatcher {
  /**
   * Queues an alert and returns at once; it goes out with the others of its window.
   * @throws {NotifyError} NOTIFY_INVALID_INPUT for an invalid alert; NOTIFY_CLOSED after close().
   */
  notify(alert: AlertInput): void;
  /** Sends the open group now and resolves when every channel has nothing left to send. */
  flush(): Promise<void>;
  /** Sends what is queued (bounded by the retry policy), then stops. */
  close(): Promise<void>;
}

interface Lane {
  channel: AlertChannel;
  limiter: RateLimiter;
  queue: Alert[];
  omitted: number;
  running: Promise<void> | undefined;
}

/**
 * Creates the alert dispatcher. Each channel has its own lane (queue, rate limit, retries
 * with backoff, per-attempt deadline), so a channel that fails or hangs never delays another.
 *
 * @example
 * const alerts = createAlertDispatcher({ channels: [telegram, nostr], groupWindowMs: 3000, logger });
 * alerts.notify({ kind: 'death', agent: 'scout', mission: 'survey', summary: 'no heartbeat for 120 s' });
 * @throws {NotifyError} NOTIFY_INVALID_CONFIG for duplicate channel names or a bad rate.
 */
export function createAlertDispatcher(options: AlertDispatcherOptions): AlertDispatcher {
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? (() => new Date());
  const windowMs = options.groupWindowMs ?? 2000;
  const maxQueue = options.maxQueue ?? 1000;
  const names = new Set<string>();
  const lanes: Lane[] = options.channels.map((channel) => {
    if (names.has(channel.name))
      throw new NotifyError(
        'NOTIFY_INVALID_CONFIG',
        `alerts: channel ${channel.name} is listed twice`,
      );
    names.add(channel.name);
    return {
      channel,
      limiter: createRateLimiter(
        options.rateLimits?.[channel.name] ?? options.rateLimit ?? { max: 20, intervalMs: 60_000 },
      ),
      queue: [],
      omitted: 0,
      running: undefined,
    };
  });
  const closing = new AbortController();
  let group: Alert[] = [];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  function report(delivery: DeliveryReport): void {
    try {
      options.onDelivery?.(delivery);
    } catch (error) {
      logger.error(`alerts: onDelivery threw: ${describeError(error)}`);
    }
  }

  async function drain(lane: Lane): Promise<void> {
    while (lane.queue.length > 0) {
      try {
        await lane.limiter.take(closing.signal);
      } catch {
        return;
      }
      // Everything that piled up while we waited goes out as one message.
      const alerts = lane.queue.splice(0);
      const omitted = lane.omitted;
      lane.omitted = 0;
      const batch: AlertBatch = { alerts, grouped: alerts.length + omitted > 1, omitted };
      const started = Date.now();
      try {
        await deliverWithRetry((signal) => lane.channel.sendAlert(batch, signal), {
          ...options.retry,
          what: `${lane.channel.name}: alert (${alerts.length + omitted})`,
          signal: closing.signal,
          logger,
        });
        report({
          channel: lane.channel.name,
          ok: true,
          alerts: alerts.length + omitted,
          grouped: batch.grouped,
          durationMs: Date.now() - started,
        });
      } catch (error) {
        const failure =
          error instanceof NotifyError
            ? error
            : new NotifyError(
                'NOTIFY_SEND_FAILED',
                `${lane.channel.name}: ${describeError(error)}`,
                { cause: error },
              );
        logger.error(
          `alerts: ${lane.channel.name} dropped ${alerts.length + omitted} alert(s): ${failure.message}`,
          { channel: lane.channel.name },
        );
        report({
          channel: lane.channel.name,
          ok: false,
          alerts: alerts.length + omitted,
          grouped: batch.grouped,
          durationMs: Date.now() - started,
          error: failure,
        });
      }
    }
  }

  function enqueue(lane: Lane, alerts: Alert[]): void {
    lane.queue.push(...alerts);
    if (lane.queue.length > maxQueue) {
      const dropped = lane.queue.length - maxQueue;
      lane.queue.splice(0, dropped);
      lane.omitted += dropped;
    }
    if (!lane.running) {
      lane.running = drain(lane).finally(() => {
        lane.running = undefined;
        if (lane.queue.length > 0 && !closing.signal.aborted) enqueue(lane, []);
      });
    }
  }

  function release(): void {
    clearTimeout(timer);
    timer = undefined;
    const alerts = group;
    group = [];
    if (alerts.length === 0) return;
    for (const lane of lanes) enqueue(lane, alerts);
  }

  async function idle(): Promise<void> {
    while (lanes.some((lane) => lane.running !== undefined))
      await Promise.all(lanes.map((lane) => lane.running));
  }

  return {
    notify(input) {
      if (closed) throw new NotifyError('NOTIFY_CLOSED', 'alerts: notify() after close()');
      const parsed = AlertSchema.safeParse({ ...input, at: input.at ?? clock() });
      if (!parsed.success)
        throw new NotifyError('NOTIFY_INVALID_INPUT', `alert: ${formatIssues(parsed.error)}`);
      group.push(parsed.data);
      if (windowMs <= 0) release();
      else if (!timer) {
        timer = setTimeout(release, windowMs);
        timer.unref();
      }
    },

    async flush() {
      release();
      await idle();
    },

    async close() {
      if (closed) return;
      closed = true;
      release();
      await idle();
      closing.abort();
    },
  };
}
