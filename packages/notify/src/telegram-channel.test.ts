import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  startTelegramBotApi,
  waitFor,
  type TelegramUser,
  type TestTelegramBotApi,
} from '@pit/test-kit';
import { captureLogger, manualClock, tempDir } from '../test/helpers.js';
import { createApprovalBroker, type ApprovalBroker } from './approval-broker.js';
import type { Approval } from '@pit/cell-spec';
import type { RejectedAttempt } from './channel.js';
import { createTelegramChannel, type TelegramChannel } from './telegram-channel.js';
import { PitError } from '@pit/cell-spec';

const TOKEN = '123456:TEST-token-never-logged-abcdef';
const CHAT = -1001234567890;
const OTHER_CHAT = -1009999999999;
const approver: TelegramUser = { id: 111, is_bot: false, first_name: 'Ada', username: 'ada' };
const stranger: TelegramUser = {
  id: 666,
  is_bot: false,
  first_name: 'Mallory',
  username: 'mallory',
};

describe('createTelegramChannel', () => {
  let api: TestTelegramBotApi;
  let channel: TelegramChannel;
  let broker: ApprovalBroker;
  let cleanup: () => Promise<void>;
  let decisions: Approval[];
  let rejected: RejectedAttempt[];
  let logger: ReturnType<typeof captureLogger>;
  let clock: ReturnType<typeof manualClock>;

  beforeEach(async () => {
    api = await startTelegramBotApi({ token: TOKEN });
    const dir = await tempDir();
    cleanup = dir.cleanup;
    logger = captureLogger();
    clock = manualClock();
    decisions = [];
    rejected = [];
    channel = createTelegramChannel({
      config: {
        chat_id: CHAT,
        approvers: [approver.id],
        api_root: api.apiRoot,
        poll_timeout_seconds: 5,
      },
      token: TOKEN,
      logger,
      clock: clock.now,
    });
    broker = createApprovalBroker({
      path: join(dir.path, 'approvals.json'),
      channels: [channel],
      clock: clock.now,
      expiryIntervalMs: 0,
      logger,
      retry: { retries: 1, minDelayMs: 10 },
      onDecision: (request) => decisions.push(request),
      onRejected: (attempt) => rejected.push(attempt),
    });
    await broker.start();
    await channel.start();
  });

  afterEach(async () => {
    await channel.stop();
    await broker.close();
    await api.close();
    await cleanup();
  });

  async function askAndShow(agent = 'scout'): Promise<{ request: Approval; messageId: number }> {
    const request = await broker.ask({
      agent,
      mission: 'survey',
      reasons: ['3 consecutive failed probes'],
      substitute: 'scout-2',
    });
    const message = await api.waitForMessage(CHAT, (candidate) =>
      candidate.text.includes(request.id),
    );
    return { request, messageId: message.message_id };
  }

  it('sends a request with Approve/Deny buttons whose callback data fits 64 bytes', async () => {
    const { request, messageId } = await askAndShow();
    const message = api.messages(CHAT).find((candidate) => candidate.message_id === messageId);
    const buttons = message?.reply_markup?.inline_keyboard.flat() ?? [];
    expect(buttons.map((button) => button.callback_data)).toEqual([
      `a:${request.id}`,
      `d:${request.id}`,
    ]);
    for (const button of buttons)
      expect(Buffer.byteLength(button.callback_data ?? '')).toBeLessThanOrEqual(64);
    expect(message?.text).toContain('revive scout');
    expect(message?.text).toContain('Suggested substitute: scout-2');
  });

  it('records an approver’s press, then edits the message to show who and when, without buttons', async () => {
    const { request, messageId } = await askAndShow();
    const query = api.pressButton({
      from: approver,
      chatId: CHAT,
      messageId,
      data: `a:${request.id}`,
    });
    expect((await api.waitForAnswer(query)).text).toBe('Approved.');
    const decided = await broker.whenDecided(request.id);
    expect(decided).toMatchObject({
      status: 'approved',
      decision: 'approve',
      decided_via: 'telegram',
      decided_by: '111 (@ada)',
    });
    const edited = await api.waitForMessage(
      CHAT,
      (message) => message.message_id === messageId && message.edits > 0,
    );
    expect(edited.text).toContain('Approved by 111 (@ada) via telegram at');
    expect(edited.reply_markup).toBeUndefined();
    expect(decisions).toHaveLength(1);
  });

  it('accepts no approval from anyone who is not a configured approver', async () => {
    const { request, messageId } = await askAndShow();
    const query = api.pressButton({
      from: stranger,
      chatId: CHAT,
      messageId,
      data: `a:${request.id}`,
    });
    expect((await api.waitForAnswer(query)).text).toBe('Not authorised.');
    api.sendText({ from: stranger, chatId: CHAT, text: 'revive scout' });
    api.sendText({ from: stranger, chatId: CHAT, text: `approve ${request.id}` });
    await api.waitForMessage(
      CHAT,
      (message) =>
        message.from.id === api.bot.id &&
        message.text === 'Not authorised.' &&
        api.messages(CHAT).filter((m) => m.text === 'Not authorised.').length === 2,
    );
    expect(broker.get(request.id)?.status).toBe('pending');
    expect(decisions).toHaveLength(0);
    expect(rejected.map((attempt) => [attempt.channel, attempt.identity, attempt.reason])).toEqual([
      ['telegram', '666 (@mallory)', 'not_approver'],
      ['telegram', '666 (@mallory)', 'not_approver'],
      ['telegram', '666 (@mallory)', 'not_approver'],
    ]);
    expect(
      logger.lines.filter((line) => line.level === 'warn' && line.message.includes('not_approver')),
    ).toHaveLength(3);
  });

  it('refuses a press by an approver from another chat', async () => {
    const { request, messageId } = await askAndShow();
    const query = api.pressButton({
      from: approver,
      chatId: OTHER_CHAT,
      messageId,
      data: `a:${request.id}`,
    });
    expect((await api.waitForAnswer(query)).text).toBe('Not authorised.');
    api.sendText({ from: approver, chatId: OTHER_CHAT, text: 'revive scout' });
    await api.waitForMessage(OTHER_CHAT, (message) => message.text === 'Not authorised.');
    expect(broker.get(request.id)?.status).toBe('pending');
    expect(rejected.map((attempt) => attempt.reason)).toEqual(['wrong_chat', 'wrong_chat']);
  });

  it('shows an expired request as expired and refuses a late press', async () => {
    const { request, messageId } = await askAndShow();
    clock.advance(2 * 3600_000);
    const expired = await broker.expire();
    expect(expired.map((item) => [item.id, item.status, item.decision])).toEqual([
      [request.id, 'expired', 'deny'],
    ]);
    const edited = await api.waitForMessage(
      CHAT,
      (message) => message.message_id === messageId && message.edits > 0,
    );
    expect(edited.text).toContain('Expired at');
    expect(edited.text).toContain('default applied: deny');
    expect(edited.reply_markup).toBeUndefined();
    const query = api.pressButton({
      from: approver,
      chatId: CHAT,
      messageId,
      data: `a:${request.id}`,
    });
    expect((await api.waitForAnswer(query)).text).toBe('This request has expired.');
    expect(broker.get(request.id)?.status).toBe('expired');
    expect(rejected.map((attempt) => attempt.reason)).toEqual(['expired']);
  });

  it('takes the first decision only: a second press is refused as already decided', async () => {
    const { request, messageId } = await askAndShow();
    const first = api.pressButton({
      from: approver,
      chatId: CHAT,
      messageId,
      data: `d:${request.id}`,
    });
    await api.waitForAnswer(first);
    const second = api.pressButton({
      from: approver,
      chatId: CHAT,
      messageId,
      data: `a:${request.id}`,
    });
    expect((await api.waitForAnswer(second)).text).toMatch(/^Already decided: ❌ Denied by 111/);
    expect(broker.get(request.id)?.status).toBe('denied');
    expect(decisions).toHaveLength(1);
  });

  it('accepts "revive <agent>" and "skip <agent>" text replies from approvers', async () => {
    const { request } = await askAndShow('scout');
    api.sendText({ from: approver, chatId: CHAT, text: 'revive scout' });
    expect((await broker.whenDecided(request.id)).status).toBe('approved');
    const other = await askAndShow('miner');
    api.sendText({ from: approver, chatId: CHAT, text: 'skip miner' });
    expect((await broker.whenDecided(other.request.id)).status).toBe('denied');
    await api.waitForMessage(CHAT, (message) => message.text.startsWith('Denied: miner'));
  });

  it('keeps polling after a handler throws', async () => {
    const failing = createTelegramChannel({
      config: {
        chat_id: CHAT,
        approvers: [approver.id],
        api_root: api.apiRoot,
        poll_timeout_seconds: 5,
      },
      token: TOKEN,
      logger,
    });
    // Stop the shared channel so the failing one receives the updates.
    await channel.stop();
    let calls = 0;
    failing.bindApprovals({
      decide: async () => {
        calls += 1;
        throw new Error('handler exploded');
      },
      reject: () => undefined,
      get: () => undefined,
    });
    await failing.start();
    try {
      api.sendText({ from: approver, chatId: CHAT, text: 'revive scout' });
      api.sendText({ from: approver, chatId: CHAT, text: 'skip scout' });
      await expect.poll(() => calls, { timeout: 10_000 }).toBe(2);
      await expect
        .poll(
          () => logger.lines.filter((line) => line.message.includes('handler exploded')).length,
          { timeout: 10_000 },
        )
        .toBe(2);
    } finally {
      await failing.stop();
    }
  });

  it('sends alerts and never logs the token, even when Telegram fails', async () => {
    api.fault('sendMessage', { status: 500 }, 1);
    await expect(
      channel.sendAlert(
        {
          alerts: [
            { kind: 'death', agent: 'scout', summary: 'no heartbeat for 90 s', at: new Date() },
          ],
          grouped: false,
          omitted: 0,
        },
        new AbortController().signal,
      ),
    ).rejects.toMatchObject({ code: 'NOTIFY_SEND_FAILED', retryable: true });
    await channel.sendAlert(
      {
        alerts: [
          { kind: 'death', agent: 'scout', summary: 'no heartbeat for 90 s', at: new Date() },
        ],
        grouped: false,
        omitted: 0,
      },
      new AbortController().signal,
    );
    expect(api.messages(CHAT).at(-1)?.text).toBe('[pit] 💀 scout: no heartbeat for 90 s');
    const bad = createTelegramChannel({
      config: { chat_id: CHAT, api_root: api.apiRoot },
      token: 'wrong:token-value-xyz',
      logger,
    });
    const error = await bad.start().catch((caught: unknown) => caught);
    expect(PitError.is(error) && error.code).toBe('NOTIFY_UNAUTHORIZED');
    await bad.stop();
    expect(logger.text()).not.toContain(TOKEN);
    expect(logger.text()).not.toContain('token-value-xyz');
  });

  it('stops long polling cleanly and confirms the last update', async () => {
    api.sendText({ from: approver, chatId: CHAT, text: 'hello' });
    await api.waitForCall('getUpdates', (call) => (call.params.offset as number) >= 2);
    await channel.stop();
    const last = api.calls.filter((call) => call.method === 'getUpdates').at(-1);
    expect(last?.params).toMatchObject({ offset: 2, limit: 1 });
  });
});

describe('createTelegramChannel with one bot shared by several hosts', () => {
  let api: TestTelegramBotApi;
  const stops: Array<() => Promise<void>> = [];

  beforeEach(async () => {
    api = await startTelegramBotApi({ token: TOKEN });
  });

  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
    await api.close();
  });

  /** A host: its channel and broker over its own approvals file. */
  async function host(options: { poll?: boolean; forward?: (update: unknown) => void }) {
    const dir = await tempDir();
    const logger = captureLogger();
    const rejected: RejectedAttempt[] = [];
    const channel = createTelegramChannel({
      config: {
        chat_id: CHAT,
        approvers: [approver.id],
        api_root: api.apiRoot,
        poll_timeout_seconds: 5,
      },
      token: TOKEN,
      logger,
      restartDelayMs: 50,
      ...options,
    });
    const broker = createApprovalBroker({
      path: join(dir.path, 'approvals.json'),
      channels: [channel],
      expiryIntervalMs: 0,
      logger,
      retry: { retries: 1, minDelayMs: 10 },
      onRejected: (attempt) => rejected.push(attempt),
    });
    await broker.start();
    await channel.start();
    stops.push(async () => {
      await channel.stop();
      await broker.close();
      await dir.cleanup();
    });
    return { channel, broker, logger, rejected };
  }

  it('a second poller of the token: the 409 is logged once, naming the cause and the fix, and polling backs off', async () => {
    const first = await host({});
    const second = await host({});
    // The two pollers end each other's getUpdates; each waits twice as long after each conflict.
    for (const { logger } of [first, second])
      await waitFor(
        () => logger.lines.some((line) => line.message.includes('retrying in 400 ms')),
        20_000,
        'a poller backing off to 400 ms',
      );
    expect(api.conflicts()).toBeGreaterThan(0);
    const errors = [...first.logger.lines, ...second.logger.lines].filter(
      (line) => line.level === 'error' && line.message.includes('409 Conflict'),
    );
    expect(errors.length).toBeLessThanOrEqual(2);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors[0]?.message).toMatch(/another process polls this bot token/);
    expect(errors[0]?.message).toMatch(/\[cluster\]/);
    for (const { logger } of [first, second]) {
      expect(logger.lines.filter((line) => line.level === 'error').length).toBeLessThanOrEqual(1);
      expect(logger.text()).not.toContain(TOKEN);
    }
  });

  it('the polling host forwards an answer about a request it does not hold; the holder checks the approver and applies it', async () => {
    const holder = await host({ poll: false });
    const handled: boolean[] = [];
    const poller = await host({
      forward: (update) =>
        void holder.channel.handleForwarded(update).then((done) => handled.push(done)),
    });
    const request = await holder.broker.ask({
      agent: 'scout',
      mission: 'survey',
      reasons: ['dead'],
    });
    const message = await api.waitForMessage(CHAT, (candidate) =>
      candidate.text.includes(request.id),
    );

    const refused = api.pressButton({
      from: stranger,
      chatId: CHAT,
      messageId: message.message_id,
      data: `a:${request.id}`,
    });
    expect((await api.waitForAnswer(refused)).text).toBe('Not authorised.');
    expect(holder.rejected.map((attempt) => attempt.reason)).toEqual(['not_approver']);
    expect(holder.broker.get(request.id)?.status).toBe('pending');

    const pressed = api.pressButton({
      from: approver,
      chatId: CHAT,
      messageId: message.message_id,
      data: `a:${request.id}`,
    });
    expect((await api.waitForAnswer(pressed)).text).toBe('Approved.');
    expect(await holder.broker.whenDecided(request.id)).toMatchObject({
      status: 'approved',
      decided_via: 'telegram',
    });
    await waitFor(() => (handled.length === 2 ? true : undefined), 5_000, 'both updates handled');
    expect(handled).toEqual([true, true]);
    // Nothing was refused or decided on the polling host, and only one host polled.
    expect(poller.rejected).toEqual([]);
    expect(poller.broker.list()).toEqual([]);
    expect(api.conflicts()).toBe(0);
  });

  it('a reply naming an agent whose request another host holds is forwarded, answered there, and refused nowhere else', async () => {
    const holder = await host({ poll: false });
    const bystander = await host({ poll: false });
    const poller = await host({
      forward: (update) => {
        for (const other of [holder, bystander]) void other.channel.handleForwarded(update);
      },
    });
    const request = await holder.broker.ask({
      agent: 'scout',
      mission: 'survey',
      reasons: ['dead'],
    });
    await api.waitForMessage(CHAT, (candidate) => candidate.text.includes(request.id));
    api.sendText({ from: approver, chatId: CHAT, text: 'revive scout' });
    await api.waitForMessage(
      CHAT,
      (message) => message.text === `Approved: scout (${request.id}).`,
    );
    expect(holder.broker.get(request.id)?.status).toBe('approved');
    expect([...poller.rejected, ...bystander.rejected, ...holder.rejected]).toEqual([]);
  });
});
