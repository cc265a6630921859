import { join } from 'node:path';
import * as nip17 from 'nostr-tools/nip17';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureLogger, tempDir } from '../test/helpers.js';
import {
  connectTestApprover,
  forgeGiftWrap,
  garbageGiftWrap,
  startNostrRelay,
  type TestApprover,
  type TestNostrRelay,
} from '@pit/test-kit';
import { createApprovalBroker, type ApprovalBroker } from './approval-broker.js';
import type { Approval } from '@pit/cell-spec';
import type { RejectedAttempt } from './channel.js';
import { createNostrChannel, type NostrChannel } from './nostr-channel.js';

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

describe('createNostrChannel', () => {
  let relay: TestNostrRelay;
  let second: TestNostrRelay | undefined;
  let channel: NostrChannel;
  let broker: ApprovalBroker;
  let approver: TestApprover;
  let stranger: TestApprover;
  let cleanup: () => Promise<void>;
  let rejected: RejectedAttempt[];
  let decisions: Approval[];
  const daemonKey = generateSecretKey();
  const daemonPub = getPublicKey(daemonKey);

  async function setUp(options: { relays?: string[]; nip04?: boolean } = {}): Promise<void> {
    approver = await connectTestApprover(relay.url);
    stranger = await connectTestApprover(relay.url);
    channel = createNostrChannel({
      config: {
        relays: options.relays ?? [relay.url],
        approvers: [approver.npub],
        nip04_fallback: options.nip04 ?? false,
        reconnect_min_delay_ms: 50,
        reconnect_max_delay_ms: 500,
        timeout_ms: 5000,
      },
      secretKey: Buffer.from(daemonKey).toString('hex'),
      logger: captureLogger(),
    });
    broker = createApprovalBroker({
      path: join((await tempDir()).path, 'approvals.json'),
      channels: [channel],
      expiryIntervalMs: 0,
      retry: { retries: 2, minDelayMs: 20 },
      onRejected: (attempt) => rejected.push(attempt),
      onDecision: (request) => decisions.push(request),
    });
    await broker.start();
    await channel.start();
  }

  beforeEach(async () => {
    relay = await startNostrRelay();
    second = undefined;
    rejected = [];
    decisions = [];
    const dir = await tempDir();
    cleanup = dir.cleanup;
  });

  afterEach(async () => {
    await channel?.stop();
    await broker?.close();
    approver?.close();
    stranger?.close();
    await relay.close();
    await second?.close();
    await cleanup();
  });

  async function askAndReceive(agent = 'scout'): Promise<Approval> {
    const request = await broker.ask({
      agent,
      mission: 'survey',
      reasons: ['heartbeat older than 120 s'],
    });
    await approver.waitForMessage((message) => message.content.includes(request.id));
    return request;
  }

  it('sends the request as a NIP-17 gift wrap that only the approver can decrypt', async () => {
    await setUp();
    const request = await askAndReceive();
    const message = approver.inbox.find((item) => item.content.includes(request.id));
    expect(message).toMatchObject({ from: daemonPub, via: 'nip17' });
    expect(message?.content).toContain(`approve ${request.id}`);
    const wraps = relay
      .stored(1059)
      .filter((event) => event.tags.some((tag) => tag[0] === 'p' && tag[1] === approver.publicKey));
    expect(wraps.length).toBeGreaterThan(0);
    for (const wrap of wraps) {
      expect(wrap.pubkey).not.toBe(daemonPub); // wrapped with a one-time key
      expect(() => nip17.unwrapEvent(wrap, stranger.secretKey)).toThrow();
    }
    expect(relay.stored(4)).toHaveLength(0); // no NIP-04 unless opted in
  });

  it('approves on the approver’s signed reply, and tells the approvers', async () => {
    await setUp();
    const request = await askAndReceive();
    await approver.reply(daemonPub, `approve ${request.id}`);
    const decided = await broker.whenDecided(request.id);
    expect(decided).toMatchObject({
      status: 'approved',
      decided_via: 'nostr',
      decided_by: approver.npub,
    });
    await approver.waitForMessage((message) =>
      message.content.includes(`${request.id}): ✅ Approved by ${approver.npub}`),
    );
    expect(rejected).toEqual([]);
  });

  it('accepts no approval from anyone who is not a configured approver', async () => {
    await setUp();
    const request = await askAndReceive();
    await stranger.reply(daemonPub, `approve ${request.id}`);
    await stranger.reply(daemonPub, 'revive scout');
    await expect.poll(() => rejected.length, { timeout: 10_000 }).toBe(2);
    expect(rejected.map((attempt) => [attempt.channel, attempt.identity, attempt.reason])).toEqual([
      ['nostr', stranger.npub, 'not_approver'],
      ['nostr', stranger.npub, 'not_approver'],
    ]);
    expect(broker.get(request.id)?.status).toBe('pending');
    expect(stranger.inbox).toEqual([]); // strangers get no answer at all
  });

  it('refuses a forged seal, a replayed old reply, an unknown id and garbage, deciding nothing', async () => {
    await setUp();
    const request = await askAndReceive();
    // A stranger seals a message that claims the approver wrote it.
    await stranger.publish(
      forgeGiftWrap({
        claimedAuthor: approver.publicKey,
        sealerSecretKey: stranger.secretKey,
        to: daemonPub,
        text: `approve ${request.id}`,
      }),
    );
    // A genuine approver reply written an hour ago (older than max_reply_age_seconds).
    await approver.reply(daemonPub, `approve ${request.id}`, { createdAt: nowSeconds() - 3600 });
    // A genuine, fresh reply written before the request existed.
    await approver.reply(daemonPub, `approve ${request.id}`, {
      createdAt: Math.floor(request.requested_at / 1000) - 300,
    });
    // A fresh reply naming a request that does not exist.
    await approver.reply(daemonPub, `approve ${'0'.repeat(32)}`);
    // Garbage in a gift wrap, and a non-command from the approver.
    await stranger.publish(garbageGiftWrap(daemonPub));
    await approver.reply(daemonPub, 'yes please');
    await expect.poll(() => rejected.length, { timeout: 10_000 }).toBe(6);
    expect(rejected.map((attempt) => attempt.reason).sort()).toEqual([
      'forged_seal',
      'malformed',
      'stale',
      'stale',
      'unknown_request',
      'unwrap_failed',
    ]);
    const forged = rejected.find((attempt) => attempt.reason === 'forged_seal');
    expect(forged?.identity).toBe(approver.npub);
    expect(forged?.detail).toContain(`sealed by ${stranger.publicKey}`);
    expect(broker.get(request.id)?.status).toBe('pending');
    expect(decisions).toEqual([]);
  });

  it('accepts "revive <agent>" and "skip <agent>" from an approver', async () => {
    await setUp();
    const first = await askAndReceive('scout');
    await approver.reply(daemonPub, 'skip scout');
    expect((await broker.whenDecided(first.id)).status).toBe('denied');
    const next = await askAndReceive('miner');
    await approver.reply(daemonPub, 'revive miner');
    expect((await broker.whenDecided(next.id)).status).toBe('approved');
  });

  it('dedupes the same reply arriving from two relays', async () => {
    second = await startNostrRelay();
    await setUp({ relays: [relay.url, second.url] });
    const request = await askAndReceive();
    const wrap = await approver.reply(daemonPub, `deny ${request.id}`);
    const otherApproverLink = await connectTestApprover(second.url, approver.secretKey);
    await otherApproverLink.publish(wrap);
    otherApproverLink.close();
    expect((await broker.whenDecided(request.id)).status).toBe('denied');
    await second.waitForEvent((event) => event.id === wrap.id);
    await broker.flush();
    expect(rejected).toEqual([]); // the copy was dropped as a duplicate, not refused as already decided
    expect(decisions).toHaveLength(1);
  });

  it('reconnects with backoff when the relay goes away and still hears replies', async () => {
    await setUp();
    const request = await askAndReceive();
    await relay.stop();
    await expect.poll(() => channel.relays()[0]?.connected, { timeout: 10_000 }).toBe(false);
    await relay.start();
    await expect.poll(() => channel.relays()[0]?.connections, { timeout: 10_000 }).toBe(2);
    approver.close();
    approver = await connectTestApprover(relay.url, approver.secretKey);
    await approver.reply(daemonPub, `approve ${request.id}`);
    expect((await broker.whenDecided(request.id)).status).toBe('approved');
  });

  it('speaks NIP-04 only when opted in, with the same checks', async () => {
    await setUp({ nip04: true });
    const request = await askAndReceive();
    await approver.waitForMessage(
      (message) => message.via === 'nip04' && message.content.includes(request.id),
    );
    await stranger.replyNip04(daemonPub, `approve ${request.id}`);
    await expect
      .poll(() => rejected.map((attempt) => attempt.reason), { timeout: 10_000 })
      .toEqual(['not_approver']);
    await approver.replyNip04(daemonPub, `approve ${request.id}`);
    expect((await broker.whenDecided(request.id)).status).toBe('approved');
  });
});
