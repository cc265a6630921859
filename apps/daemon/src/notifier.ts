/**
 * How the supervision loop tells people of deaths and recoveries: a death issue per agent on
 * GitHub or Gitea (through @pit/notify's tracker) and chat alerts through the alert dispatcher,
 * with the storm rule (./storm.ts) deciding which deaths page people. It decides nothing about
 * agents and never throws into the loop: a failure to tell is logged.
 */
import { constants, promises as fs } from 'node:fs';
import { openFileBeneath } from '@pit/cell-spec';
import {
  createIssueTracker,
  type AlertDispatcher,
  type AlertInput,
  type DeathReportInput,
  type IssueTracker,
} from '@pit/notify';
import type { PitConfig } from './config-schema.js';
import type { Logger } from './logger.js';
import { createStormAlerts } from './storm.js';

/** A death, as the supervision loop tells it to people. */
export interface DeathNotice {
  agent: string;
  mission: string;
  cell?: string;
  reason: string;
  deadSince: Date;
  /** What the policy decided (`record_only`, `escalate`, `ask`, …) and why. */
  decision: { action: string; reason: string };
  probes: Array<{
    name: string;
    ok: boolean;
    latencyMs?: number;
    detail: string;
    observedAt: number;
  }>;
  restarts: string[];
  /** The agent's (stdout) log file, whose last lines go into the post-mortem. */
  logPath?: string;
  /** Its stderr log (`<agent>.err.log`), whose last lines go in too: where a crash's stack trace is. */
  errorLogPath?: string;
  /** The cell the logs lie in: they are read beneath it, never through a link. */
  logRoot?: string;
}

/** Where the loop sends deaths and recoveries (issues now; chat alerts through the same hooks). */
export interface Notifier {
  /** Opens (or comments on) the agent's death issue. Never throws: failures are logged. */
  death(notice: DeathNotice): Promise<void>;
  /** Comments on and closes the agent's open death issue (of its cell, when in one), if any. Never throws. */
  recovery(agent: string, note: string, cell?: string): Promise<void>;
  /**
   * Every death the loop sees, whatever it decides (a restart included), when it is first seen.
   * Never throws. Optional: a notifier that only reports what people must act on leaves it out.
   */
  died?(notice: DeathSeen): Promise<void>;
  /** Sends what is held for a storm's next message (call before the alert dispatcher closes). Never throws. */
  close?(): Promise<void>;
  /** A fleet-wide chat message (a provider outage, its end): no agent, no issue. Never throws. */
  notice?(kind: 'notice' | 'recovery', summary: string): Promise<void>;
}

/** A death as first seen by the loop, before any decision. */
export interface DeathSeen {
  agent: string;
  mission: string;
  cell?: string;
  reason: string;
  at: Date;
  /** Agents supervised when it was seen: with it, the fleet brake's percentage rule also makes a storm. */
  fleetSize?: number;
}

/** A notifier that tells nobody. */
export const silentNotifier: Notifier = {
  death: async () => undefined,
  recovery: async () => undefined,
};

/** Options of {@link createNotifier} beyond the config. */
export interface NotifierOptions {
  /** A storm's first message waits until no death has been seen for this long (ms). @default 1000 */
  stormSettleMs?: number;
}

/**
 * Builds the notifier: deaths open one issue per agent on GitHub or Gitea from `[issues]`
 * (@pit/notify's tracker: one issue per agent, a comment per new episode; recoveries close
 * it), and go as grouped alerts to the chat channels when `alerts` is given. Without
 * `[issues]`, or when its token variable is unset (logged), no issue is opened.
 *
 * Chat alerts: a death that needs a human (`death()`: record_only, escalate, ask) is alerted on
 * its own; any other death (a restart) is silent unless it is part of a storm — more deaths
 * within `[policy.fleet_brake] window` than its `max_deaths` (the brake's numbers, enabled or
 * not): then the storm's deaths go out as one grouped message, and later deaths of the same
 * storm as follow-ups at most once per `window` (see ./storm.ts).
 */
export function createNotifier(
  config: PitConfig,
  env: Record<string, string | undefined>,
  logger: Logger,
  alerts?: AlertDispatcher,
  options: NotifierOptions = {},
): Notifier {
  const tracker = issueTrackerOf(config, env, logger);
  const inner =
    tracker && config.issues
      ? createIssueNotifier({ issues: tracker, maxLogLines: config.issues.max_log_lines, logger })
      : silentNotifier;
  if (!alerts) return inner;
  return withAlerts(inner, {
    alerts,
    brake: config.policy.fleet_brake,
    ...(options.stormSettleMs !== undefined ? { stormSettleMs: options.stormSettleMs } : {}),
    logger,
  });
}

/** The issue tracker `[issues]` configures, or none (no `[issues]`, or its token unset: logged). */
function issueTrackerOf(
  config: PitConfig,
  env: Record<string, string | undefined>,
  logger: Logger,
): IssueTracker | undefined {
  if (!config.issues) return undefined;
  const token = env[config.issues.token_env];
  if (!token) {
    logger.warn(
      `[issues] is configured but ${config.issues.token_env} is not set: no death issues`,
    );
    return undefined;
  }
  return createIssueTracker({ config: config.issues, token, logger });
}

/** What {@link withAlerts} needs besides the notifier it wraps. */
interface AlertOptions {
  alerts: AlertDispatcher;
  /** The fleet brake's numbers, which make a storm. */
  brake: PitConfig['policy']['fleet_brake'];
  stormSettleMs?: number;
  logger: Logger;
}

/**
 * Wraps `inner` so that deaths and recoveries also go out as chat alerts: a death that needs a
 * human on its own (or held for the storm's message), a restarted death only as part of a storm,
 * a recovery only for a death that was alerted on its own.
 */
function withAlerts(inner: Notifier, options: AlertOptions): Notifier {
  const alert = createAlertQueue(options.alerts, options.logger);
  const storm = createStormAlerts({
    brake: options.brake,
    ...(options.stormSettleMs !== undefined ? { settleMs: options.stormSettleMs } : {}),
    // One call, one group: the dispatcher merges alerts queued together into one message per channel.
    send: (batch) => {
      for (const input of batch) alert(input);
    },
    logger: options.logger,
  });
  /** Agents (`<cell>/<name>`) whose death was alerted on its own and has not recovered yet. */
  const told = new Set<string>();
  const toldKey = (agent: string, cell: string | undefined) => `${cell ?? ''}/${agent}`;
  return {
    async death(notice) {
      const input = {
        kind: notice.decision.action === 'escalate' ? ('escalation' as const) : ('death' as const),
        agent: notice.agent,
        mission: notice.mission,
        summary: `${notice.agent} is dead: ${notice.reason}`.slice(0, 1000),
      };
      told.add(toldKey(notice.agent, notice.cell));
      if (!storm.individual(input, notice.cell)) alert(input);
      await inner.death(notice);
    },
    async died(notice) {
      storm.seen(notice);
    },
    async close() {
      storm.close();
    },
    async notice(kind, summary) {
      alert({ kind, summary });
    },
    async recovery(agent, note, cell) {
      // Only a death people were told of on its own has its recovery told: a silent death stays silent.
      if (told.delete(toldKey(agent, cell)))
        alert({ kind: 'recovery', agent, summary: note.slice(0, 1000) });
      await inner.recovery(agent, note, cell);
    },
  };
}

/** Queues alerts on the dispatcher; one it refuses is logged, never thrown. */
function createAlertQueue(alerts: AlertDispatcher, logger: Logger): (input: AlertInput) => void {
  return (input) => {
    try {
      alerts.notify(input);
    } catch (error) {
      logger.error('cannot queue an alert', {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };
}

/** The notifier of death issues: one issue per agent, a comment per new death, closed on recovery. */
function createIssueNotifier(options: {
  issues: IssueTracker;
  /** The agent log's last lines that go into the post-mortem. */
  maxLogLines: number;
  logger: Logger;
}): Notifier {
  const { issues, maxLogLines, logger } = options;
  return {
    async death(notice) {
      try {
        const logLines = await readDeathLogTail(notice, maxLogLines);
        const result = await issues.reportDeath(deathReportOf(notice, logLines));
        logger.info('death issue reported', { agent: notice.agent, issue: result.url });
      } catch (error) {
        logger.error('cannot report the death issue', {
          agent: notice.agent,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    },
    async recovery(agent, note, cell) {
      try {
        const closed = await issues.reportRecovery({
          agent,
          note,
          ...(cell ? { cell_uuid: cell } : {}),
        });
        if (closed) logger.info('death issue closed', { agent, issue: closed.url });
      } catch (error) {
        logger.error('cannot close the death issue', {
          agent,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    },
  };
}

const LOG_TAIL_BYTES = 64 * 1024;

/**
 * The last `maxLines` non-empty lines of a log file (from its last 64 KiB); none when it cannot
 * be read. A log in a cell is opened beneath the cell (`root`), never through a link: an agent
 * must not get another file's content posted to the issue tracker.
 */
async function readLogTail(path: string, maxLines: number, root?: string): Promise<string[]> {
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  let handle: fs.FileHandle | undefined;
  try {
    handle =
      root !== undefined
        ? await openFileBeneath(root, path, { flags })
        : await fs.open(path, flags);
    const { size } = await handle.stat();
    const start = Math.max(0, size - LOG_TAIL_BYTES);
    const buffer = Buffer.alloc(Math.min(size, LOG_TAIL_BYTES));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    const lines = buffer.subarray(0, bytesRead).toString('utf8').split('\n').filter(Boolean);
    return (start > 0 ? lines.slice(1) : lines).slice(-maxLines);
  } catch {
    return [];
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * The log lines of a post-mortem: the stdout log's last lines, then, when the agent's stderr is
 * kept apart and has any, a `--- stderr (<file>) ---` line and the stderr log's last lines (at
 * least half of `maxLines`: the post-mortem keeps the newest lines, and a crash's stack trace is
 * there).
 */
async function readDeathLogTail(notice: DeathNotice, maxLines: number): Promise<string[]> {
  if (maxLines === 0) return [];
  const stdout = notice.logPath ? await readLogTail(notice.logPath, maxLines, notice.logRoot) : [];
  const stderr = notice.errorLogPath
    ? await readLogTail(notice.errorLogPath, maxLines, notice.logRoot)
    : [];
  if (stderr.length === 0) return stdout;
  const errorPart = stdout.length === 0 ? stderr : stderr.slice(-Math.ceil(maxLines / 2));
  const room = Math.max(0, maxLines - errorPart.length - 1);
  const name = notice.errorLogPath!.split('/').at(-1)!;
  return [...(room > 0 ? stdout.slice(-room) : []), `--- stderr (${name}) ---`, ...errorPart];
}

/** A death notice as the issue tracker's post-mortem input, its free text cut to the tracker's limits. */
function deathReportOf(notice: DeathNotice, logLines: string[]): DeathReportInput {
  return {
    agent: notice.agent,
    mission: notice.mission,
    ...(notice.cell ? { cell_uuid: notice.cell } : {}),
    reason: `${notice.reason.slice(0, 300)} — ${notice.decision.action}`.slice(0, 500),
    dead_since: notice.deadSince.toISOString(),
    probes: notice.probes.map((probe) => ({
      name: probe.name,
      ok: probe.ok,
      ...(probe.latencyMs !== undefined ? { latency_ms: probe.latencyMs } : {}),
      detail: probe.detail.slice(0, 2000),
      observed_at: new Date(probe.observedAt).toISOString(),
    })),
    restarts: notice.restarts.slice(-20).map((at) => ({ at, outcome: 'restarted' })),
    log_lines: logLines,
  };
}
