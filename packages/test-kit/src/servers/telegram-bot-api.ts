/**
 * A local HTTP server that speaks the Telegram Bot API methods @pit/notify uses
 * (getMe, deleteWebhook, getUpdates with long polling and offsets, sendMessage,
 * editMessageText, answerCallbackQuery), so the real grammY client can be pointed at it
 * with `client.apiRoot`. Tests drive it like a user would: press a button, send a text.
 * Faults (an HTTP status or a hang) can be injected per method. Like Telegram, it allows one
 * `getUpdates` at a time per bot: a second one ends the one in progress with 409 Conflict.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FaultBook, readBody, sendJson, Waiters, type Fault } from './http-util.js';

/** A Telegram user as updates carry it. */
export interface TelegramUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  username?: string;
}

/** A message held by the server. */
export interface StoredMessage {
  message_id: number;
  date: number;
  chat: { id: number; type: string; title?: string };
  from: TelegramUser;
  text: string;
  reply_markup?: { inline_keyboard: Array<Array<{ text: string; callback_data?: string }>> };
  /** How many times it was edited. */
  edits: number;
}

/** One API call the server received. */
export interface RecordedCall {
  method: string;
  params: Record<string, unknown>;
  /** The HTTP status the server answered with (undefined while in progress). */
  status?: number;
  /** True when an injected fault left the call hanging. */
  hung?: boolean;
}

/** A running fake Bot API. */
export interface TestTelegramBotApi {
  /** Pass as grammY's `client.apiRoot` (or `[telegram] api_root`). */
  readonly apiRoot: string;
  /** The bot this server speaks for. */
  readonly bot: TelegramUser;
  /** Every call received, in order. */
  readonly calls: RecordedCall[];
  /** Messages in a chat (sent by the bot or by test users), in order. */
  messages(chatId?: number): StoredMessage[];
  /** How many getUpdates calls ended with 409 Conflict because another one came (one poller per bot). */
  conflicts(): number;
  /** Answers given to callback queries, by query id. */
  readonly answers: Map<string, { text?: string; show_alert?: boolean }>;
  /** A user presses an inline button of a message; returns the callback query id. */
  pressButton(input: {
    from: TelegramUser;
    chatId: number;
    messageId: number;
    data: string;
  }): string;
  /** A user writes a text message in a chat. */
  sendText(input: {
    from: TelegramUser;
    chatId: number;
    text: string;
    date?: number;
  }): StoredMessage;
  /** Waits until a call matching the predicate has been received (it may still be in progress). */
  waitForCall(
    method: string,
    predicate?: (call: RecordedCall) => boolean,
    timeoutMs?: number,
  ): Promise<RecordedCall>;
  /** Waits for the answer to a callback query. */
  waitForAnswer(
    queryId: string,
    timeoutMs?: number,
  ): Promise<{ text?: string; show_alert?: boolean }>;
  /** Waits for a message in a chat that matches the predicate. */
  waitForMessage(
    chatId: number,
    predicate: (message: StoredMessage) => boolean,
    timeoutMs?: number,
  ): Promise<StoredMessage>;
  /** Makes the next `times` calls of `method` fail with a status or hang. */
  fault(method: string, fault: Fault, times?: number): void;
  clearFaults(method?: string): void;
  close(): Promise<void>;
}

/** Starts the fake Bot API on 127.0.0.1 (an ephemeral port). Requests with another token get 401. */
export async function startTelegramBotApi(options: {
  token: string;
  botUsername?: string;
}): Promise<TestTelegramBotApi> {
  const bot: TelegramUser = {
    id: 7_000_000_001,
    is_bot: true,
    first_name: 'Pit',
    username: options.botUsername ?? 'pit_test_bot',
  };
  const calls: RecordedCall[] = [];
  const chats = new Map<number, StoredMessage[]>();
  const updates: Array<{ update_id: number } & Record<string, unknown>> = [];
  const answers = new Map<string, { text?: string; show_alert?: boolean }>();
  const queries = new Set<string>();
  const faults = new FaultBook();
  const waiters = new Waiters();
  const polls = new Set<() => void>();
  /** Ends the getUpdates in progress with 409 (a second poller came). */
  let activePoll: (() => void) | undefined;
  let conflicts = 0;
  let nextUpdateId = 1;
  let nextQueryId = 1;
  let nextMessageId = 1;

  const chatOf = (id: number) => ({
    id,
    type: id < 0 ? 'supergroup' : 'private',
    ...(id < 0 ? { title: `chat ${id}` } : {}),
  });
  const now = () => Math.floor(Date.now() / 1000);
  const ok = (response: ServerResponse, result: unknown) =>
    sendJson(response, 200, { ok: true, result });
  const fail = (
    response: ServerResponse,
    status: number,
    description: string,
    parameters?: Record<string, unknown>,
  ) =>
    sendJson(response, status, {
      ok: false,
      error_code: status,
      description,
      ...(parameters ? { parameters } : {}),
    });

  function pushUpdate(update: Record<string, unknown>): void {
    updates.push({ update_id: nextUpdateId++, ...update });
    for (const wake of [...polls]) wake();
  }

  function store(message: Omit<StoredMessage, 'message_id' | 'edits'>): StoredMessage {
    const stored: StoredMessage = { ...message, message_id: nextMessageId++, edits: 0 };
    const list = chats.get(message.chat.id) ?? [];
    list.push(stored);
    chats.set(message.chat.id, list);
    return stored;
  }

  function publicMessage(message: StoredMessage): Record<string, unknown> {
    const { edits: _edits, ...rest } = message;
    return rest;
  }

  function validKeyboard(markup: unknown): string | undefined {
    if (markup === undefined) return undefined;
    const keyboard = (markup as { inline_keyboard?: unknown }).inline_keyboard;
    if (!Array.isArray(keyboard)) return 'Bad Request: reply markup must have inline_keyboard';
    for (const row of keyboard) {
      if (!Array.isArray(row)) return 'Bad Request: inline keyboard rows must be arrays';
      for (const button of row as Array<{ text?: unknown; callback_data?: unknown }>) {
        if (typeof button.text !== 'string' || button.text.length === 0)
          return 'Bad Request: button text is empty';
        if (button.callback_data !== undefined) {
          if (typeof button.callback_data !== 'string') return 'Bad Request: BUTTON_DATA_INVALID';
          const bytes = Buffer.byteLength(button.callback_data, 'utf8');
          if (bytes < 1 || bytes > 64) return 'Bad Request: BUTTON_DATA_INVALID';
        }
      }
    }
    return undefined;
  }

  async function handle(
    method: string,
    params: Record<string, unknown>,
    response: ServerResponse,
    call: RecordedCall,
  ): Promise<void> {
    switch (method) {
      case 'getMe':
        return ok(response, {
          ...bot,
          can_join_groups: true,
          can_read_all_group_messages: false,
          supports_inline_queries: false,
        });
      case 'deleteWebhook':
        return ok(response, true);
      case 'getUpdates': {
        const offset = typeof params.offset === 'number' ? params.offset : 0;
        const limit =
          typeof params.limit === 'number' ? Math.min(Math.max(params.limit, 1), 100) : 100;
        const timeout = typeof params.timeout === 'number' ? params.timeout : 0;
        // Confirm (forget) every update below the offset, as Telegram does.
        while (updates.length > 0 && (updates[0]?.update_id ?? 0) < offset) updates.shift();
        const ready = () => updates.filter((update) => update.update_id >= offset).slice(0, limit);
        // One getUpdates per bot, as Telegram: a new one ends the one in progress with 409.
        const previous = activePoll;
        activePoll = undefined;
        previous?.();
        if (ready().length > 0 || timeout === 0) return ok(response, ready());
        let conflicted = false;
        await new Promise<void>((resolve) => {
          const finish = () => {
            clearTimeout(timer);
            polls.delete(wake);
            if (activePoll === terminate) activePoll = undefined;
            response.off('close', onClose);
            resolve();
          };
          const wake = () => finish();
          const onClose = () => finish();
          const terminate = () => {
            conflicted = true;
            finish();
          };
          const timer = setTimeout(finish, timeout * 1000);
          polls.add(wake);
          activePoll = terminate;
          response.on('close', onClose);
        });
        if (conflicted) {
          conflicts += 1;
          call.status = 409;
          return fail(
            response,
            409,
            'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running',
          );
        }
        call.status = 200;
        return ok(response, ready());
      }
      case 'sendMessage': {
        const chatId = Number(params.chat_id);
        const text = params.text;
        if (!Number.isInteger(chatId)) return fail(response, 400, 'Bad Request: chat not found');
        if (typeof text !== 'string' || text.length === 0)
          return fail(response, 400, 'Bad Request: message text is empty');
        if (text.length > 4096) return fail(response, 400, 'Bad Request: message is too long');
        const invalid = validKeyboard(params.reply_markup);
        if (invalid) return fail(response, 400, invalid);
        const markup = params.reply_markup as StoredMessage['reply_markup'];
        const message = store({
          date: now(),
          chat: chatOf(chatId),
          from: bot,
          text,
          ...(markup ? { reply_markup: markup } : {}),
        });
        return ok(response, publicMessage(message));
      }
      case 'editMessageText': {
        const chatId = Number(params.chat_id);
        const message = chats
          .get(chatId)
          ?.find((candidate) => candidate.message_id === params.message_id);
        if (!message) return fail(response, 400, 'Bad Request: message to edit not found');
        if (message.from.id !== bot.id)
          return fail(response, 400, "Bad Request: message can't be edited");
        if (typeof params.text !== 'string' || params.text.length === 0)
          return fail(response, 400, 'Bad Request: message text is empty');
        const invalid = validKeyboard(params.reply_markup);
        if (invalid) return fail(response, 400, invalid);
        const markup = params.reply_markup as StoredMessage['reply_markup'] | undefined;
        const nextMarkup = markup && markup.inline_keyboard.length > 0 ? markup : undefined;
        if (
          message.text === params.text &&
          JSON.stringify(message.reply_markup) === JSON.stringify(nextMarkup)
        ) {
          return fail(
            response,
            400,
            'Bad Request: message is not modified: specified new message content and reply markup are exactly the same',
          );
        }
        message.text = params.text;
        if (nextMarkup) message.reply_markup = nextMarkup;
        else delete message.reply_markup;
        message.edits += 1;
        return ok(response, { ...publicMessage(message), edit_date: now() });
      }
      case 'answerCallbackQuery': {
        const id = String(params.callback_query_id);
        if (!queries.has(id))
          return fail(
            response,
            400,
            'Bad Request: query is too old and response timeout expired or query ID is invalid',
          );
        if (answers.has(id)) return fail(response, 400, 'Bad Request: query is already answered');
        answers.set(id, {
          ...(typeof params.text === 'string' ? { text: params.text } : {}),
          ...(typeof params.show_alert === 'boolean' ? { show_alert: params.show_alert } : {}),
        });
        return ok(response, true);
      }
      default:
        return fail(response, 404, 'Not Found: method not found');
    }
  }

  const server = createServer((request, response) => {
    void (async () => {
      const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(
        new URL(request.url ?? '/', 'http://x').pathname,
      );
      if (!match)
        return sendJson(response, 404, { ok: false, error_code: 404, description: 'Not Found' });
      if (match[1] !== options.token)
        return sendJson(response, 401, { ok: false, error_code: 401, description: 'Unauthorized' });
      const method = match[2] as string;
      let params: Record<string, unknown> = {};
      try {
        const body = await readBody(request);
        if (body.length > 0) params = JSON.parse(body) as Record<string, unknown>;
      } catch {
        return fail(response, 400, 'Bad Request: body is not JSON');
      }
      const call: RecordedCall = { method, params };
      calls.push(call);
      waiters.notify();
      const fault = faults.take(method);
      if (fault && 'hang' in fault) {
        call.hung = true;
        waiters.notify();
        return; // never answer; the client's deadline must handle it
      }
      if (fault) {
        call.status = fault.status;
        waiters.notify();
        return sendJson(
          response,
          fault.status,
          fault.body ?? {
            ok: false,
            error_code: fault.status,
            description: `Injected failure ${fault.status}`,
          },
          fault.headers,
        );
      }
      await handle(method, params, response, call);
      call.status ??= response.statusCode;
      waiters.notify();
    })().catch((error: unknown) => {
      sendJson(response, 500, {
        ok: false,
        error_code: 500,
        description: `test server error: ${String(error)}`,
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    apiRoot: `http://127.0.0.1:${port}`,
    bot,
    calls,
    answers,
    conflicts: () => conflicts,
    messages: (chatId) =>
      chatId === undefined ? [...chats.values()].flat() : [...(chats.get(chatId) ?? [])],
    pressButton({ from, chatId, messageId, data }) {
      const message = chats.get(chatId)?.find((candidate) => candidate.message_id === messageId);
      const id = `q${nextQueryId++}`;
      queries.add(id);
      pushUpdate({
        callback_query: {
          id,
          from,
          chat_instance: `ci${chatId}`,
          data,
          message: message
            ? publicMessage(message)
            : { message_id: messageId, date: now(), chat: chatOf(chatId), text: '' },
        },
      });
      return id;
    },
    sendText({ from, chatId, text, date }) {
      const message = store({ date: date ?? now(), chat: chatOf(chatId), from, text });
      pushUpdate({ message: publicMessage(message) });
      return message;
    },
    waitForCall(method, predicate = () => true, timeoutMs = 10_000) {
      return waiters.wait(
        () => calls.find((call) => call.method === method && predicate(call)),
        timeoutMs,
        `a ${method} call`,
      );
    },
    waitForAnswer(queryId, timeoutMs = 10_000) {
      return waiters.wait(() => answers.get(queryId), timeoutMs, `the answer to ${queryId}`);
    },
    waitForMessage(chatId, predicate, timeoutMs = 10_000) {
      return waiters.wait(
        () => chats.get(chatId)?.find(predicate),
        timeoutMs,
        `a message in chat ${chatId}`,
      );
    },
    fault: (method, fault, times) => faults.add(method, fault, times),
    clearFaults: (method) => faults.clear(method),
    async close() {
      for (const wake of [...polls]) wake();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
