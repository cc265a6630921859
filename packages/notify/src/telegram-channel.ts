import type { Bot, Context, GrammyError } from 'grammy';
import { z } from 'zod';
import { parseApprovalCommand } from './approval-command.js';
import type { Approval } from '@pit/cell-spec';
import { agentReference, renderApprovalOutcome, renderApprovalRequest } from './approval-text.js';
import { formatAlertText, type AlertBatch } from './alert.js';
import type {
  AlertChannel,
  ApprovalChannel,
  ApprovalSink,
  DecisionResult,
  RejectReason,
} from './channel.js';
import { sleep } from './deliver.js';
import { NotifyError } from './errors.js';
import { describeError, redactingLogger, silentLogger, type Logger } from './logger.js';
import { EnvNameSchema, parseConfig } from './parse-config.js';

/** The `[telegram]` section of pit.toml. */
export const TelegramConfigSchema = z.strictObject({
  /** The environment variable holding the bot token (the daemon resolves it). @default "PIT_TELEGRAM_TOKEN" */
  token_env: EnvNameSchema.default('PIT_TELEGRAM_TOKEN'),
  /** The chat (numeric id) that receives alerts and requests, and the only chat answers are accepted from. */
  chat_id: z.int(),
  /** Telegram user ids allowed to approve or deny. Everyone else is refused and logged. */
  approvers: z.array(z.int().positive()).default([]),
  /** Bot API root, without a trailing slash (a local Bot API server, or a test server). @default "https://api.telegram.org" */
  api_root: z
    .url({ protocol: /^https?$/ })
    .refine((url) => !url.endsWith('/'), { message: 'must not end with /' })
    .default('https://api.telegram.org'),
  /** Long-polling timeout of one getUpdates call (s). @default 30 */
  poll_timeout_seconds: z.int().min(0).max(50).default(30),
});
export type TelegramConfig = z.infer<typeof TelegramConfigSchema>;

/** Options of {@link createTelegramChannel}. */
export interface TelegramChannelOptions {
  /** The `[telegram]` config. */
  config: z.input<typeof TelegramConfigSchema>;
  /** The bot token, resolved by the caller from `config.token_env`. Never logged. */
  token: string;
  logger?: Logger;
  /** Clock. @default () => new Date() */
  clock?: () => Date;
  /** Delay before polling is restarted after it failed; doubled up to 60 s (ms). @default 1000 */
  restartDelayMs?: number;
  /**
   * Whether {@link TelegramChannel.start} starts long polling. Telegram allows one `getUpdates`
   * per bot token: in a cluster of hosts sharing one bot only the elected host polls
   * ({@link TelegramChannel.resumePolling} / {@link TelegramChannel.pausePolling}), the others
   * still send. @default true
   */
  poll?: boolean;
  /**
   * Called by the polling host with an update (a button press, or a command by request id or
   * agent) about a request this host does not hold, instead of answering it: the caller passes it
   * to the other hosts, whose channel handles it with {@link TelegramChannel.handleForwarded}.
   * Unset (one host): such an update is answered here, as unknown.
   */
  forward?: (update: unknown) => void;
}

/** A Telegram channel: alerts, approval requests with inline buttons, and answers by button or text. */
export interface TelegramChannel extends ApprovalChannel, AlertChannel {
  readonly name: 'telegram';
  /**
   * Checks the token (getMe) and starts long polling in the background; resolves once polling runs.
   * Handler errors are logged and never stop the bot; a failed poll is retried with backoff.
   * @throws {NotifyError} NOTIFY_UNAUTHORIZED when Telegram refuses the token.
   */
  start(): Promise<void>;
  /** Stops polling cleanly (confirms the last update) and waits for the loop to end. */
  stop(): Promise<void>;
  /** Starts long polling after a start with `poll: false` (this host was elected to poll). */
  resumePolling(): Promise<void>;
  /** Stops long polling, keeps sending (this host no longer polls). */
  pausePolling(): Promise<void>;
  /**
   * Handles an update another host's channel forwarded: only when it names a request this host
   * holds, checked like one received here (the chat and the configured approvers of this host's
   * config, never the forwarder's word). @returns whether it was handled here.
   */
  handleForwarded(update: unknown): Promise<boolean>;
}

const CALLBACK = /^([ad]):([0-9a-f]{32})$/;

/** grammY types its signals with the abort-controller shim; Node's AbortSignal is what it gets at run time. */
type GrammySignal = NonNullable<Parameters<Bot['init']>[0]>;
const asGrammySignal = (signal: AbortSignal): GrammySignal => signal as unknown as GrammySignal;

/**
 * Creates the Telegram channel (grammY, long polling).
 *
 * @example
 * const telegram = createTelegramChannel({
 *   config: { chat_id: -1001234567890, approvers: [123456789] },
 *   token: env[config.telegram.token_env],
 *   logger,
 * });
 * await telegram.start();
 * @throws {NotifyError} NOTIFY_INVALID_CONFIG when the config or token is invalid.
 */
export function createTelegramChannel(options: TelegramChannelOptions): TelegramChannel {
  const config = parseConfig(TelegramConfigSchema, options.config, 'telegram');
  if (typeof options.token !== 'string' || !/^\S{8,}$/.test(options.token)) {
    throw new NotifyError(
      'NOTIFY_INVALID_CONFIG',
      `[telegram] the token from ${config.token_env} is empty or malformed`,
    );
  }
  const logger = redactingLogger(options.logger ?? silentLogger, [options.token]);
  const clock = options.clock ?? (() => new Date());
  const approvers = new Set(config.approvers);
  // grammY (about 20 MB of a process) is loaded when the channel is first used (start or a
  // send), not when the package is imported: a daemon without [telegram] never loads it.
  let grammy: typeof import('grammy') | undefined;
  let bot: Bot | undefined;
  let loading: Promise<Bot> | undefined;
  const getBot = (): Promise<Bot> =>
    (loading ??= import('grammy').then((module) => {
      grammy = module;
      bot = new module.Bot(options.token, { client: { apiRoot: config.api_root } });
      wire(bot);
      return bot;
    }));
  const isGrammyError = (error: unknown): error is GrammyError =>
    grammy !== undefined && error instanceof grammy.GrammyError;
  let sink: ApprovalSink | undefined;
  /** Updates another host forwarded: handled here, never forwarded again. */
  const forwarded = new WeakSet<object>();
  /** Ids of the updates this host forwarded (the broadcast comes back to it too): not handled again. */
  const sentAway = new Set<number>();
  const forward = (update: { update_id: number }): void => {
    if (forwarded.has(update) || !options.forward) return;
    sentAway.add(update.update_id);
    if (sentAway.size > 1000) sentAway.delete(sentAway.values().next().value as number);
    options.forward(structuredClone(update));
  };
  let loop: Promise<void> | undefined;
  let stopper = new AbortController();

  function identityOf(user: { id: number; username?: string | undefined }): string {
    return user.username ? `${user.id} (@${user.username})` : String(user.id);
  }

  async function safely(what: string, work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (error) {
      logger.warn(`telegram: ${what} failed: ${describeError(error)}`);
    }
  }

  function refusalText(result: Extract<DecisionResult, { ok: false }>): string {
    switch (result.reason) {
      case 'expired':
        return 'This request has expired.';
      case 'already_decided':
        return `Already decided: ${result.request ? renderApprovalOutcome(result.request) : 'no longer open'}`;
      case 'unknown_request':
        return 'Unknown request.';
      case 'no_pending_request':
        return 'Nothing is waiting for approval for that agent.';
      case 'ambiguous':
        return `Which one? ${result.detail}.`;
      default:
        return 'Refused.';
    }
  }

  function wire(bot: Bot): void {
    bot.on('callback_query:data', async (ctx: Context) => {
      const query = ctx.callbackQuery;
      if (!query?.data) return;
      const identity = identityOf(query.from);
      const answer = (text: string): Promise<void> =>
        safely('answerCallbackQuery', () => ctx.answerCallbackQuery({ text }));
      const match = CALLBACK.exec(query.data);
      if (!sink || !match) {
        sink?.reject({
          identity,
          reason: 'malformed',
          detail: `unknown button data ${JSON.stringify(query.data.slice(0, 64))}`,
        });
        await answer('Unknown button.');
        return;
      }
      const decision = match[1] === 'a' ? 'approve' : 'deny';
      const requestId = match[2] as string;
      // A request another host holds (one bot, several hosts): that host checks and answers it.
      if (sink.get(requestId) === undefined && options.forward) {
        forward(ctx.update);
        return;
      }
      const chatId = query.message?.chat.id;
      if (chatId !== config.chat_id) {
        sink.reject({
          identity,
          reason: 'wrong_chat',
          detail: `button pressed in chat ${chatId ?? 'unknown'}, not ${config.chat_id}`,
          request_id: requestId,
        });
        await answer('Not authorised.');
        return;
      }
      if (!approvers.has(query.from.id)) {
        sink.reject({
          identity,
          reason: 'not_approver',
          detail: `user ${query.from.id} is not a configured approver`,
          request_id: requestId,
        });
        await answer('Not authorised.');
        return;
      }
      const result = await sink.decide({ decision, request_id: requestId, identity });
      await answer(
        result.ok ? (decision === 'approve' ? 'Approved.' : 'Denied.') : refusalText(result),
      );
    });

    bot.on('message:text', async (ctx: Context) => {
      const message = ctx.message;
      if (!message?.text || !sink) return;
      const command = parseApprovalCommand(message.text);
      if (!command) return;
      const from = message.from;
      const identity = from ? identityOf(from) : `chat ${message.chat.id}`;
      const named =
        command.target === 'request'
          ? { request_id: command.id }
          : { agent: command.agent, ...(command.cell ? { cell: command.cell } : {}) };
      const reply = (text: string): Promise<void> =>
        safely('sendMessage', () =>
          ctx.reply(text, {
            reply_parameters: { message_id: message.message_id, allow_sending_without_reply: true },
          }),
        );
      if (message.chat.id !== config.chat_id) {
        sink.reject({
          identity,
          reason: 'wrong_chat',
          detail: `command sent in chat ${message.chat.id}, not ${config.chat_id}`,
          ...named,
        });
        await reply('Not authorised.');
        return;
      }
      if (!from || !approvers.has(from.id)) {
        sink.reject({
          identity,
          reason: 'not_approver',
          detail: `user ${from?.id ?? 'unknown'} is not a configured approver`,
          ...named,
        });
        await reply('Not authorised.');
        return;
      }
      // A request another host holds: forwarded (the holder checks and answers it), not refused here.
      const elsewhere = (reason: RejectReason): boolean =>
        options.forward !== undefined &&
        (reason === 'unknown_request' || reason === 'no_pending_request');
      const heldHere =
        command.target === 'request'
          ? sink.get(command.id) !== undefined
          : (sink.hasPending?.(command.agent, command.cell) ?? true);
      if (!heldHere && options.forward !== undefined) {
        forward(ctx.update);
        return;
      }
      const result = await sink.decide({
        decision: command.decision,
        identity,
        sent_at: new Date(message.date * 1000),
        ...named,
      });
      if (!result.ok && elsewhere(result.reason)) {
        forward(ctx.update);
        return;
      }
      await reply(
        result.ok
          ? `${result.request.status === 'approved' ? 'Approved' : 'Denied'}: ${result.request.agent} (${result.request.id}).`
          : refusalText(result),
      );
    });

    bot.catch((error) => {
      logger.error(
        `telegram: handler failed on update ${error.ctx.update.update_id}: ${describeError(error.error)}`,
      );
    });
  }

  function toNotifyError(what: string, error: unknown): NotifyError {
    if (error instanceof NotifyError) return error;
    if (isGrammyError(error)) {
      const code = error.error_code;
      if (code === 429) {
        const after = error.parameters.retry_after;
        return new NotifyError(
          'NOTIFY_RATE_LIMITED',
          `telegram ${what}: rate limited (${error.description})`,
          {
            cause: error,
            retryable: true,
            ...(after !== undefined ? { retryAfterMs: after * 1000 } : {}),
          },
        );
      }
      if (code === 401 || code === 404)
        return new NotifyError(
          'NOTIFY_UNAUTHORIZED',
          `telegram ${what}: the bot token was refused (${code})`,
          { cause: error },
        );
      return new NotifyError(
        'NOTIFY_SEND_FAILED',
        `telegram ${what}: ${code} ${error.description}`,
        { cause: error, retryable: code >= 500 },
      );
    }
    if (grammy !== undefined && error instanceof grammy.HttpError)
      return new NotifyError('NOTIFY_SEND_FAILED', `telegram ${what}: network error`, {
        cause: error,
        retryable: true,
      });
    return new NotifyError('NOTIFY_SEND_FAILED', `telegram ${what}: ${describeError(error)}`, {
      cause: error,
      retryable: true,
    });
  }

  async function call<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw toNotifyError(what, error);
    }
  }

  /**
   * Whether a forwarded update is this host's to handle: a button or a command naming a request
   * it holds, or a command naming an agent with a pending request here.
   */
  function holdsNamedRequest(update: object): boolean {
    const { callback_query: query, message } = update as {
      callback_query?: { data?: unknown };
      message?: { text?: unknown };
    };
    if (typeof query?.data === 'string') {
      const match = CALLBACK.exec(query.data);
      return match !== null && sink?.get(match[2] as string) !== undefined;
    }
    if (typeof message?.text === 'string') {
      const command = parseApprovalCommand(message.text);
      if (!command) return false;
      return command.target === 'request'
        ? sink?.get(command.id) !== undefined
        : (sink?.hasPending?.(command.agent, command.cell) ?? true);
    }
    return false;
  }

  function requestText(request: Approval): string {
    return renderApprovalRequest(request, {
      now: clock(),
      howToAnswer: `Press a button, or reply "revive ${agentReference(request)}" / "skip ${agentReference(request)}".`,
    });
  }

  /** Whether the 409 of a second poller has been logged (once per run of conflicts). */
  let conflictLogged = false;

  /** A 409 from getUpdates: another process polls this token. Logged once as an error, then at debug. */
  function reportConflict(description: string, delay: number): void {
    const message = `telegram: 409 Conflict from getUpdates (${description}): another process polls this bot token, and Telegram allows one getUpdates per bot. Run one daemon per bot token, or put the hosts that share it in one [cluster] (then only the elected host polls); retrying in ${delay} ms, backing off to 60 s`;
    if (conflictLogged) logger.debug(message);
    else logger.error(message);
    conflictLogged = true;
  }

  /** getMe, retried with backoff until it answers (or the token is refused, or `signal` aborts). */
  async function initBot(bot: Bot, signal: AbortSignal): Promise<void> {
    let delay = options.restartDelayMs ?? 1000;
    for (;;) {
      try {
        await bot.init(asGrammySignal(signal));
        return;
      } catch (error) {
        const mapped = toNotifyError('getMe', error);
        if (signal.aborted || mapped.code === 'NOTIFY_UNAUTHORIZED') throw mapped;
        logger.warn(`telegram: ${mapped.message}; retrying in ${delay} ms`);
        await sleep(delay, signal);
        delay = Math.min(delay * 2, 60_000);
      }
    }
  }

  async function runPolling(started: (error?: unknown) => void): Promise<void> {
    const initialDelay = options.restartDelayMs ?? 1000;
    let delay = initialDelay;
    let first = true;
    let runningSince = 0;
    const bot = await getBot();
    while (!stopper.signal.aborted) {
      try {
        await bot.init(asGrammySignal(stopper.signal));
        await bot.start({
          timeout: config.poll_timeout_seconds,
          allowed_updates: ['message', 'callback_query'],
          onStart: () => {
            logger.info(`telegram: polling as @${bot.botInfo.username}`);
            runningSince = Date.now();
            if (first) started();
            first = false;
          },
        });
      } catch (error) {
        if (stopper.signal.aborted) break;
        // The delay grows while failures follow each other (onStart runs before the first
        // getUpdates, so it cannot tell a poll that works), and starts over after a quiet minute.
        if (runningSince > 0 && Date.now() - runningSince > 60_000) {
          delay = initialDelay;
          conflictLogged = false;
        }
        runningSince = 0;
        const mapped = toNotifyError('polling', error);
        if (mapped.code === 'NOTIFY_UNAUTHORIZED') {
          logger.error(`telegram: ${mapped.message}; polling stopped`);
          if (first) started(mapped);
          return;
        }
        if (isGrammyError(error) && error.error_code === 409)
          reportConflict(error.description, delay);
        else logger.warn(`telegram: polling failed (${mapped.message}); restarting in ${delay} ms`);
        await sleep(delay, stopper.signal);
        delay = Math.min(delay * 2, 60_000);
      }
    }
    if (first) started(new NotifyError('NOTIFY_CLOSED', 'telegram: stopped before polling began'));
  }

  /** Starts the polling loop; resolves once it polls. */
  function startPolling(): Promise<void> {
    stopper = new AbortController();
    return new Promise<void>((resolve, reject) => {
      loop = runPolling((error) => (error === undefined ? resolve() : reject(error))).catch(
        (error: unknown) => {
          logger.error(`telegram: polling loop ended: ${describeError(error)}`);
        },
      );
    });
  }

  async function stopPolling(): Promise<void> {
    stopper.abort();
    if (bot?.isRunning()) {
      await bot
        .stop()
        .catch((error: unknown) =>
          logger.warn(
            `telegram: could not confirm the last update on stop: ${describeError(error)}`,
          ),
        );
    }
    await loop;
    loop = undefined;
  }

  return {
    name: 'telegram',

    bindApprovals(approvalSink) {
      sink = approvalSink;
    },

    async start() {
      if (loop) return;
      const bot = await getBot();
      if (options.poll === false) {
        // Not polling (another host does): getMe all the same, which forwarded updates need.
        stopper = new AbortController();
        await initBot(bot, stopper.signal);
        return;
      }
      if (loop) return;
      await startPolling();
    },

    async stop() {
      await stopPolling();
    },

    async resumePolling() {
      await getBot();
      if (loop) return;
      logger.info('telegram: this host polls the bot now');
      await startPolling();
    },

    async pausePolling() {
      if (!loop) return;
      logger.info('telegram: this host no longer polls the bot');
      await stopPolling();
    },

    async handleForwarded(update) {
      const current = bot;
      if (!current?.isInited() || typeof update !== 'object' || update === null) return false;
      const id = (update as { update_id?: unknown }).update_id;
      if (typeof id === 'number' && sentAway.delete(id)) return false;
      if (!holdsNamedRequest(update)) return false;
      forwarded.add(update);
      await current.handleUpdate(update as Parameters<Bot['handleUpdate']>[0]);
      return true;
    },

    async sendAlert(batch: AlertBatch, signal: AbortSignal) {
      const bot = await getBot();
      await call('sendMessage', () =>
        bot.api.sendMessage(
          config.chat_id,
          formatAlertText(batch, 4000),
          { link_preview_options: { is_disabled: true } },
          asGrammySignal(signal),
        ),
      );
    },

    async sendApprovalRequest(request, signal) {
      const bot = await getBot();
      const sent = await call('sendMessage', () =>
        bot.api.sendMessage(
          config.chat_id,
          requestText(request),
          {
            link_preview_options: { is_disabled: true },
            reply_markup: {
              inline_keyboard: [
                [
                  { text: '✅ Approve', callback_data: `a:${request.id}` },
                  { text: '❌ Deny', callback_data: `d:${request.id}` },
                ],
              ],
            },
          },
          asGrammySignal(signal),
        ),
      );
      return String(sent.message_id);
    },

    async sendApprovalOutcome(request, reference, signal) {
      const outcome = renderApprovalOutcome(request);
      if (!outcome) return;
      const bot = await getBot();
      const messageId =
        reference !== undefined && /^\d+$/.test(reference) ? Number(reference) : undefined;
      if (messageId === undefined) {
        await call('sendMessage', () =>
          bot.api.sendMessage(
            config.chat_id,
            `[pit] ${request.agent} (${request.id}): ${outcome}`,
            {},
            asGrammySignal(signal),
          ),
        );
        return;
      }
      try {
        await bot.api.editMessageText(
          config.chat_id,
          messageId,
          `${requestText(request)}\n\n${outcome}`,
          { reply_markup: { inline_keyboard: [] } },
          asGrammySignal(signal),
        );
      } catch (error) {
        if (isGrammyError(error) && /message is not modified/i.test(error.description)) return;
        throw toNotifyError('editMessageText', error);
      }
    },
  };
}
