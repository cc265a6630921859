import { createAlertDispatcher, createNostrChannel, createTelegramChannel, readSecretKeyFile, type AlertChannel, type AlertDispatcher, type ApprovalChannel } from '@pit/notify';
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

/**
 * Starts the chat channels configured in `[telegram]` and `[nostr]` (@pit/notify), with their
 * secrets read from the environment variables the config names. A channel whose secret is not
 * set is skipped with a warning; one that fails to start is logged and skipped, so a chat
 * outage never stops supervision.
 */
export async function startChannels(config: PitConfig, env: Record<string, string | undefined>, logger: Logger): Promise<Channels> {
  const started: Array<ApprovalChannel & AlertChannel & { stop(): Promise<void> }> = [];
  if (config.telegram) {
    const token = env[config.telegram.token_env];
    if (!token) logger.warn(`[telegram] is configured but ${config.telegram.token_env} is not set: no Telegram alerts or approvals`);
    else {
      try {
        const telegram = createTelegramChannel({ config: config.telegram, token, logger });
        await telegram.start();
        started.push(telegram);
      } catch (error) {
        logger.error('Telegram channel failed to start', { error: error instanceof Error ? error.message : String(error) });
      }
    }
  }
  if (config.nostr) {
    try {
      const secretKey = config.nostr.secret_key_file ? await readSecretKeyFile(config.nostr.secret_key_file) : env[config.nostr.secret_key_env];
      if (!secretKey) logger.warn(`[nostr] is configured but ${config.nostr.secret_key_env} is not set: no Nostr alerts or approvals`);
      else {
        const nostr = createNostrChannel({ config: config.nostr, secretKey, logger });
        await nostr.start();
        started.push(nostr);
      }
    } catch (error) {
      logger.error('Nostr channel failed to start', { error: error instanceof Error ? error.message : String(error) });
    }
  }
  const alerts = started.length > 0 ? createAlertDispatcher({ channels: started, logger }) : undefined;
  return {
    approvals: started,
    alerts,
    async stop() {
      await alerts?.close().catch(() => undefined);
      await Promise.all(started.map((channel) => channel.stop().catch(() => undefined)));
    },
  };
}
