import {
  createAlertDispatcher,
  createNostrChannel,
  createTelegramChannel,
  readSecretKeyFile,
  type AlertChannel,
  type AlertDispatcher,
  type ApprovalChannel,
  type TelegramChannel,
  type TelegramChannelOptions,
} from '@pit/notify';
import type { ClusterMember } from './cluster/cluster-member.js';
import type { PitConfig } from './config-schema.js';
import type { Logger } from './logger.js';

/** The chat channels of a running daemon. */
export interface Channels {
  /** Channels that show approval requests and bring answers back. */
  approvals: ApprovalChannel[];
  /** Grouped, rate-limited alerts to every channel (undefined when none is configured). */
  alerts: AlertDispatcher | undefined;
  /** Sends what is queued and stops every channel. */
  stop(): Promise<void>;
}

/** Options of {@link startChannels}. */
export interface StartChannelsOptions {
  /**
   * How long the daemon waits for a channel to start before it supervises anyway (the channel
   * keeps retrying in the background: alerts queue, approvals arrive once it is up). @default 5000 (ms)
   */
  startWaitMs?: number;
  /**
   * The cluster this daemon is a member of (`[cluster]`). Telegram allows one `getUpdates` per
   * bot, and the hosts share one: only the host that holds the `telegram-poller` role polls
   * (cluster/host-role.ts; another host takes it over within about the lease when it dies), and
   * an answer about a request another host holds is broadcast to the hosts, where the holder
   * checks it against its own `[telegram]` config and applies it. Absent: this host polls.
   */
  cluster?: Pick<ClusterMember, 'holdRole' | 'broadcast' | 'onBroadcast'>;
}

/** The cluster topic of Telegram updates forwarded by the polling host. */
export const TELEGRAM_UPDATES_TOPIC = 'telegram.updates';

/**
 * Starts the chat channels configured in `[telegram]` and `[nostr]` (@pit/notify), with their
 * secrets read from the environment variables the config names. A channel whose secret is not
 * set is skipped with a warning; one that fails to start is logged and skipped; one that is not
 * up within `startWaitMs` (Telegram or the relays unreachable) is kept and goes on starting in
 * the background. A chat outage never stops supervision.
 */
export async function startChannels(
  config: PitConfig,
  env: Record<string, string | undefined>,
  logger: Logger,
  options: StartChannelsOptions = {},
): Promise<Channels> {
  const startWaitMs = options.startWaitMs ?? 5000;
  /** `true` once started, `false` when still starting after the wait; throws when the start failed. */
  const startWithin = async (name: string, starting: Promise<void>): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([
      starting.then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), startWaitMs);
        timer.unref();
      }),
    ]).finally(() => clearTimeout(timer));
    if (waited) return;
    logger.warn(
      `${name} channel not started after ${startWaitMs} ms: supervising without it; it keeps trying in the background`,
    );
    starting.then(
      () => logger.info(`${name} channel started`),
      (error: unknown) =>
        logger.error(`${name} channel failed to start`, { error: messageOf(error) }),
    );
  };
  const started: Array<ApprovalChannel & AlertChannel & { stop(): Promise<void> }> = [];
  const unsubscribe: Array<() => void> = [];
  if (config.telegram) {
    const telegram = await startTelegram(
      config.telegram,
      env,
      logger,
      options.cluster,
      startWithin,
    );
    if (telegram) {
      started.push(telegram.channel);
      if (telegram.unsubscribe) unsubscribe.push(telegram.unsubscribe);
    }
  }
  if (config.nostr) {
    try {
      const secretKey = config.nostr.secret_key_file
        ? await readSecretKeyFile(config.nostr.secret_key_file)
        : env[config.nostr.secret_key_env];
      if (!secretKey)
        logger.warn(
          `[nostr] is configured but ${config.nostr.secret_key_env} is not set: no Nostr alerts or approvals`,
        );
      else {
        const nostr = createNostrChannel({ config: config.nostr, secretKey, logger });
        await startWithin('Nostr', nostr.start());
        started.push(nostr);
      }
    } catch (error) {
      logger.error('Nostr channel failed to start', {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  const alerts =
    started.length > 0 ? createAlertDispatcher({ channels: started, logger }) : undefined;
  return {
    approvals: started,
    alerts,
    async stop() {
      for (const stop of unsubscribe)
        try {
          stop();
        } catch {
          // the cluster connection closed first
        }
      await alerts?.close().catch(() => undefined);
      await Promise.all(started.map((channel) => channel.stop().catch(() => undefined)));
    },
  };
}

type ChannelCluster = NonNullable<StartChannelsOptions['cluster']>;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** In a cluster the channel polls only while this host holds the role, and forwards what it does not hold. */
function telegramInCluster(
  cluster: ChannelCluster,
  logger: Logger,
): Pick<TelegramChannelOptions, 'poll' | 'forward'> {
  return {
    poll: false,
    forward: (update) => {
      try {
        cluster.broadcast(TELEGRAM_UPDATES_TOPIC, update);
      } catch (error) {
        logger.warn('a Telegram answer for another host could not be forwarded', {
          error: messageOf(error),
        });
      }
    },
  };
}

/** Handles the updates other hosts forward, and polls while this host holds `telegram-poller`; returns the unsubscribe. */
function shareTelegram(
  telegram: TelegramChannel,
  cluster: ChannelCluster,
  logger: Logger,
): () => void {
  cluster.holdRole('telegram-poller', {
    // Not awaited: polling starts in the background (Telegram may be unreachable).
    onGain: () => {
      telegram
        .resumePolling()
        .catch((error: unknown) =>
          logger.error('Telegram polling failed to start', { error: messageOf(error) }),
        );
    },
    onLose: () => telegram.pausePolling(),
  });
  return cluster.onBroadcast(TELEGRAM_UPDATES_TOPIC, (update) => {
    telegram
      .handleForwarded(update)
      .catch((error: unknown) =>
        logger.warn('a forwarded Telegram update failed', { error: messageOf(error) }),
      );
  });
}

/**
 * The `[telegram]` channel (undefined when its token is not set or it failed to start), and in
 * a cluster what to undo at stop.
 */
async function startTelegram(
  section: NonNullable<PitConfig['telegram']>,
  env: Record<string, string | undefined>,
  logger: Logger,
  cluster: ChannelCluster | undefined,
  startWithin: (name: string, starting: Promise<void>) => Promise<void>,
): Promise<{ channel: TelegramChannel; unsubscribe?: () => void } | undefined> {
  const token = env[section.token_env];
  if (!token) {
    logger.warn(
      `[telegram] is configured but ${section.token_env} is not set: no Telegram alerts or approvals`,
    );
    return undefined;
  }
  try {
    const channel = createTelegramChannel({
      config: section,
      token,
      logger,
      ...(cluster ? telegramInCluster(cluster, logger) : {}),
    });
    await startWithin('Telegram', channel.start());
    return cluster
      ? { channel, unsubscribe: shareTelegram(channel, cluster, logger) }
      : { channel };
  } catch (error) {
    logger.error('Telegram channel failed to start', { error: messageOf(error) });
    return undefined;
  }
}
