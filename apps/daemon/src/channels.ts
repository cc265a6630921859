import {
  createAlertDispatcher,
  createNostrChannel,
  createTelegramChannel,
  readSecretKeyFile,
  type AlertChannel,
  type AlertDispatcher,
  type ApprovalChannel,
} from '@pit/notify';
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
}

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
        logger.error(`${name} channel failed to start`, {
          error: error instanceof Error ? error.message : String(error),
        }),
    );
  };
  const started: Array<ApprovalChannel & AlertChannel & { stop(): Promise<void> }> = [];
  if (config.telegram) {
    const token = env[config.telegram.token_env];
    if (!token)
      logger.warn(
        `[telegram] is configured but ${config.telegram.token_env} is not set: no Telegram alerts or approvals`,
      );
    else {
      try {
        const telegram = createTelegramChannel({ config: config.telegram, token, logger });
        await startWithin('Telegram', telegram.start());
        started.push(telegram);
      } catch (error) {
        logger.error('Telegram channel failed to start', {
          error: error instanceof Error ? error.message : String(error),
        });
      }
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
      await alerts?.close().catch(() => undefined);
      await Promise.all(started.map((channel) => channel.stop().catch(() => undefined)));
    },
  };
}
