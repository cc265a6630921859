import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureLogger, manualClock, tempDir } from '../test/helpers.js';
import {
  createApprovalBroker,
  type ApprovalBroker,
  type ApprovalBrokerOptions,
} from './approval-broker.js';
import { ApprovalsFileSchema, type Approval } from '@pit/cell-spec';
import type { ApprovalChannel, ApprovalSink, RejectedAttempt } from './channel.js';
import { NotifyError } from './errors.js';

const CLI_TOKEN = 'cli-token-0123456789abcdef';
const HTTP_TOKEN = 'http-token-fedcba9876543210';

/** An in-process channel: records what the broker shows and lets the test answer through the sink. */
function memoryChannel(name: string, behaviour: { hang?: boolean; fail?: boolean } = {}) {
  const shown: Approval[] = [];
  const outcomes: Approval[] = [];
  let sink: ApprovalSink | undefined;
  const channel: ApprovalChannel & {
    shown: Approval[];
    outcomes: Approval[];
    sink(): ApprovalSink;
  } = {
    name,
    shown,
    outcomes,
    sink: () => {
      if (!sink) throw new Error('not bound');
      return sink;
    },
    bindApprovals: (bound) => {
      sink = bound;
    },
    sendApprovalRequest: (request, signal) => {
      if (behaviour.fail)
        return Promise.reject(new NotifyError('NOTIFY_SEND_FAILED', `${name}: refused`));
      if (behaviour.hang)
        return new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(new Error('aborted'))),
        );
      shown.push(request);
      return Promise.resolve(`${name}-ref-${shown.length}`);
    },
    sendApprovalOutcome: async (request) => {
      outcomes.push(request);
    },
  };
  return channel;
}

describe('createApprovalBroker', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let path: string;
  const brokers: ApprovalBroker[] = [];
  let rejected: RejectedAttempt[];
  let decisions: Approval[];
  let clock: ReturnType<typeof manualClock>;

  beforeEach(async () => {
    dir = await tempDir();
    path = join(dir.path, 'approvals.json');
    rejected = [];
    decisions = [];
    clock = manualClock(new Date('2026-11-22T12:00:00.000Z'));
  });

  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((broker) => broker.close()));
    await dir.cleanup();
  });

  async function start(options: Partial<ApprovalBrokerOptions> = {}): Promise<ApprovalBroker> {
    const broker = createApprovalBroker({
      path,
      clock: clock.now,
      expiryIntervalMs: 0,
      tokens: [
        { name: 'ops-cli', token: CLI_TOKEN },
        { name: 'dashboard', token: HTTP_TOKEN },
      ],
      retry: { retries: 0 },
      onRejected: (attempt) => rejected.push(attempt),
      onDecision: (request) => decisions.push(request),
      ...options,
    });
    brokers.push(broker);
    await broker.start();
    return broker;
  }

  const ask = (broker: ApprovalBroker, agent = 'scout') =>
    broker.ask({ agent, mission: 'survey', reasons: ['3 failed probes'], substitute: 'scout-2' });

  it('returns from ask at once even when a channel hangs, and other channels still decide', async () => {
    const hanging = memoryChannel('hanging', { hang: true });
    const working = memoryChannel('working');
    const broker = await start({ channels: [hanging, working] });
    const request = await ask(broker);
    expect(request).toMatchObject({
      status: 'pending',
      agent: 'scout',
      substitute: 'scout-2',
      on_timeout: 'record_only',
      expires_at: Date.parse('2026-11-22T13:00:00.000Z'),
    });
    expect(request.id).toMatch(/^[0-9a-f]{32}$/);
    await expect.poll(() => working.shown.length).toBe(1);
    const result = await working
      .sink()
      .decide({ decision: 'approve', request_id: request.id, identity: 'ada' });
    expect(result).toMatchObject({
      ok: true,
      request: { status: 'approved', decided_by: 'ada', decided_via: 'working' },
    });
  });

  it('keeps pending requests across a restart and re-sends what a channel never showed', async () => {
    const failing = memoryChannel('telegram', { fail: true });
    const first = await start({ channels: [failing] });
    const request = await ask(first);
    await first.flush();
    await first.close();
    const stored = ApprovalsFileSchema.parse(JSON.parse(await readFile(path, 'utf8')));
    expect(stored.requests.map((item) => [item.id, item.status, item.deliveries])).toEqual([
      [request.id, 'pending', {}],
    ]);

    const working = memoryChannel('telegram');
    const second = await start({ channels: [working] });
    expect(second.list('pending').map((item) => item.id)).toEqual([request.id]);
    await expect.poll(() => working.shown.map((item) => item.id)).toEqual([request.id]);
    await second.flush();
    expect(second.get(request.id)?.deliveries).toEqual({ telegram: 'telegram-ref-1' });
    expect(
      (await second.decide({ decision: 'deny', id: request.id, channel: 'cli', token: CLI_TOKEN }))
        .ok,
    ).toBe(true);
    await second.close();
    const third = await start();
    expect(third.get(request.id)).toMatchObject({
      status: 'denied',
      decided_by: 'ops-cli',
      decided_via: 'cli',
    });
  });

  it('accepts no approval from anyone who is not a configured approver', async () => {
    const broker = await start();
    const request = await ask(broker);
    const attempts = [
      { token: 'cli-token-0123456789abcdeX', claimed_by: 'mallory' },
      { token: CLI_TOKEN.slice(0, -1), claimed_by: 'mallory' },
      { token: '', claimed_by: 'mallory' },
      { token: `${CLI_TOKEN} `, claimed_by: 'ops-cli' },
    ];
    for (const attempt of attempts) {
      const result = await broker.decide({
        decision: 'approve',
        id: request.id,
        channel: 'http',
        ...attempt,
      });
      expect(result).toMatchObject({ ok: false, reason: 'bad_token' });
    }
    expect(broker.get(request.id)?.status).toBe('pending');
    expect(
      rejected.map((attempt) => [
        attempt.channel,
        attempt.identity,
        attempt.reason,
        attempt.request_id,
      ]),
    ).toEqual([
      ['http', 'mallory', 'bad_token', request.id],
      ['http', 'mallory', 'bad_token', request.id],
      ['http', 'mallory', 'bad_token', request.id],
      ['http', 'ops-cli', 'bad_token', request.id],
    ]);
    expect(decisions).toEqual([]);
    const ok = await broker.decide({
      decision: 'approve',
      agent: 'scout',
      channel: 'http',
      token: HTTP_TOKEN,
    });
    expect(ok).toMatchObject({
      ok: true,
      request: { decided_by: 'dashboard', decided_via: 'http' },
    });
  });

  it('lets the first valid decision win and refuses every later one', async () => {
    const a = memoryChannel('alpha');
    const b = memoryChannel('beta');
    const broker = await start({ channels: [a, b] });
    const request = await ask(broker);
    const results = await Promise.all([
      a.sink().decide({ decision: 'approve', request_id: request.id, identity: 'ada' }),
      b.sink().decide({ decision: 'deny', request_id: request.id, identity: 'bob' }),
      broker.decide({ decision: 'deny', id: request.id, channel: 'cli', token: CLI_TOKEN }),
    ]);
    expect(results.map((result) => result.ok)).toEqual([true, false, false]);
    expect(results.slice(1).map((result) => !result.ok && result.reason)).toEqual([
      'already_decided',
      'already_decided',
    ]);
    expect(decisions.map((item) => [item.status, item.decided_by])).toEqual([['approved', 'ada']]);
    await broker.flush();
    expect(a.outcomes.map((item) => item.status)).toEqual(['approved']);
    expect(b.outcomes.map((item) => item.status)).toEqual(['approved']);
  });

  it('reports expiry as a decision with the configured default, and refuses later answers', async () => {
    const channel = memoryChannel('alpha');
    const broker = await start({
      channels: [channel],
      config: { ttl_seconds: 600, on_expiry: 'approve' },
    });
    const request = await ask(broker);
    clock.advance(599_000);
    expect(await broker.expire()).toEqual([]);
    clock.advance(1000);
    const expired = await broker.expire();
    expect(
      expired.map((item) => [item.status, item.decision, item.decided_by, item.decided_via]),
    ).toEqual([['expired', 'approve', 'expiry', 'expiry']]);
    expect(decisions.map((item) => item.status)).toEqual(['expired']);
    const late = await channel
      .sink()
      .decide({ decision: 'deny', request_id: request.id, identity: 'ada' });
    expect(late).toMatchObject({ ok: false, reason: 'expired' });
    await broker.flush();
    expect(channel.outcomes.map((item) => item.status)).toEqual(['expired']);
  });

  it('expires on its timer, and at start for requests that expired while it was down', async () => {
    const first = await start({ expiryIntervalMs: 10 });
    const request = await first.ask({
      agent: 'scout',
      mission: 'survey',
      reasons: [],
      ttl_seconds: 60,
    });
    clock.advance(61_000);
    expect((await first.whenDecided(request.id)).status).toBe('expired');

    const other = await first.ask({
      agent: 'miner',
      mission: 'survey',
      reasons: [],
      ttl_seconds: 60,
    });
    await first.close();
    clock.advance(3_600_000);
    decisions = [];
    const second = await start();
    expect(second.get(other.id)?.status).toBe('expired');
    expect(decisions.map((item) => item.id)).toEqual([other.id]);
  });

  it('withdraws a request when the agent recovers on its own, refusing later answers', async () => {
    const channel = memoryChannel('alpha');
    const broker = await start({ channels: [channel] });
    const request = await broker.ask({
      agent: 'scout',
      mission: 'survey',
      reasons: ['exit 1'],
      proposed: 'rollback_and_restart',
    });
    const waiting = broker.whenDecided(request.id);
    const cancelled = await broker.cancel(request.id, 'healthy again');
    expect(cancelled).toMatchObject({
      status: 'cancelled',
      decision: null,
      decided_via: 'cancel',
      reason: 'healthy again',
    });
    expect((await waiting).status).toBe('cancelled');
    expect(decisions).toEqual([]);
    expect(await broker.cancel(request.id)).toBeUndefined();
    const late = await channel
      .sink()
      .decide({ decision: 'approve', request_id: request.id, identity: 'ada' });
    expect(late).toMatchObject({ ok: false, reason: 'already_decided' });
    await broker.flush();
    expect(channel.shown[0]?.proposed).toBe('rollback_and_restart');
    expect(channel.outcomes.map((item) => item.status)).toEqual(['cancelled']);
  });

  it('returns the pending request when asked again about the same agent', async () => {
    const broker = await start();
    const first = await ask(broker);
    expect((await ask(broker)).id).toBe(first.id);
    expect((await ask(broker, 'miner')).id).not.toBe(first.id);
  });

  it('keeps two cells apart: an ask about a same-named agent in another cell opens its own request', async () => {
    const broker = await start();
    const cellA = 'a'.repeat(8);
    const first = await broker.ask({
      agent: 'scout',
      mission: 'survey',
      cell_uuid: cellA,
      reasons: ['x'],
    });
    expect(
      (await broker.ask({ agent: 'scout', mission: 'survey', cell_uuid: cellA, reasons: ['x'] }))
        .id,
    ).toBe(first.id);
    const other = await broker.ask({
      agent: 'scout',
      mission: 'survey',
      cell_uuid: 'b'.repeat(8),
      reasons: ['x'],
    });
    expect(other.id).not.toBe(first.id);
  });

  it('refuses `revive <agent>` when that agent waits in two cells, and takes `<cell>/<agent>`', async () => {
    const channel = memoryChannel('alpha');
    const broker = await start({ channels: [channel] });
    const cellA = '3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b';
    const cellB = '7c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e';
    const inA = await broker.ask({
      agent: 'gamma',
      mission: 'a',
      cell_uuid: cellA,
      reasons: ['x'],
    });
    const inB = await broker.ask({
      agent: 'gamma',
      mission: 'b',
      cell_uuid: cellB,
      reasons: ['x'],
    });
    const bare = await channel
      .sink()
      .decide({ decision: 'approve', agent: 'gamma', identity: 'ann' });
    expect(bare).toMatchObject({ ok: false, reason: 'ambiguous' });
    expect(!bare.ok && bare.detail).toContain(`3f2a1c4e/gamma (${inA.id})`);
    expect(!bare.ok && bare.detail).toContain(`7c1d2e3f/gamma (${inB.id})`);
    expect(broker.get(inA.id)?.status).toBe('pending');
    expect(broker.get(inB.id)?.status).toBe('pending');

    const named = await channel
      .sink()
      .decide({ decision: 'approve', agent: 'gamma', cell: '7c1d2e3f', identity: 'ann' });
    expect(named).toMatchObject({ ok: true, request: { id: inB.id, status: 'approved' } });
    expect(broker.get(inA.id)?.status).toBe('pending');
    // One left: the bare name is no longer ambiguous.
    expect(
      await channel.sink().decide({ decision: 'deny', agent: 'gamma', identity: 'ann' }),
    ).toMatchObject({ ok: true, request: { id: inA.id, status: 'denied' } });
  });

  it('records a decision from a caller the application authenticated, with who and why, once', async () => {
    const channel = memoryChannel('alpha');
    const broker = await start({ channels: [channel] });
    const request = await broker.ask({
      agent: 'scout',
      mission: 'survey',
      kind: 'escalation',
      proposed: 'substitute',
      substitute: 'scout-2',
      channels: ['http', 'alpha'],
      reasons: ['x'],
      expires_at: clock.now().getTime() + 90_000,
      on_timeout: 'proceed',
    });
    expect(request).toMatchObject({
      kind: 'escalation',
      proposed: 'substitute',
      channels: ['http', 'alpha'],
      requested_at: clock.now().getTime(),
      expires_at: clock.now().getTime() + 90_000,
    });
    const result = await broker.decideTrusted({
      id: request.id,
      decision: 'deny',
      channel: 'http',
      by: 'ops',
      reason: 'not now',
    });
    expect(result).toMatchObject({
      ok: true,
      request: { status: 'denied', decided_by: 'ops', decided_via: 'http', reason: 'not now' },
    });
    expect(decisions.map((item) => item.id)).toEqual([request.id]);
    expect(
      await broker.decideTrusted({
        id: request.id,
        decision: 'approve',
        channel: 'cli',
        by: 'eve',
      }),
    ).toMatchObject({ ok: false, reason: 'already_decided' });
    expect(
      await channel.sink().decide({ decision: 'approve', request_id: request.id, identity: 'ada' }),
    ).toMatchObject({ ok: false, reason: 'already_decided' });
  });

  it('reports the timeout default of an expired request: deny for record_only, approve otherwise', async () => {
    const broker = await start();
    const quiet = await broker.ask({
      agent: 'scout',
      mission: 'm',
      reasons: ['x'],
      ttl_seconds: 60,
    });
    const eager = await broker.ask({
      agent: 'miner',
      mission: 'm',
      reasons: ['x'],
      ttl_seconds: 60,
      on_timeout: 'restart',
    });
    clock.advance(61_000);
    const expired = await broker.expire();
    expect(expired.map((item) => [item.id, item.status, item.decision])).toEqual([
      [quiet.id, 'expired', 'deny'],
      [eager.id, 'expired', 'approve'],
    ]);
  });

  it('refuses unknown ids and agents with nothing pending, as values', async () => {
    const broker = await start();
    expect(
      await broker.decide({
        decision: 'approve',
        id: 'f'.repeat(32),
        channel: 'cli',
        token: CLI_TOKEN,
      }),
    ).toMatchObject({ ok: false, reason: 'unknown_request' });
    expect(
      await broker.decide({
        decision: 'approve',
        agent: 'ghost',
        channel: 'cli',
        token: CLI_TOKEN,
      }),
    ).toMatchObject({ ok: false, reason: 'no_pending_request' });
    expect(rejected.map((attempt) => [attempt.identity, attempt.reason])).toEqual([
      ['ops-cli', 'unknown_request'],
      ['ops-cli', 'no_pending_request'],
    ]);
  });

  it('refuses an answer written before the request existed', async () => {
    const channel = memoryChannel('alpha');
    const broker = await start({ channels: [channel] });
    const request = await ask(broker);
    const result = await channel.sink().decide({
      decision: 'approve',
      request_id: request.id,
      identity: 'ada',
      sent_at: new Date(request.requested_at - 5 * 60_000),
    });
    expect(result).toMatchObject({ ok: false, reason: 'stale' });
    expect(broker.get(request.id)?.status).toBe('pending');
  });

  it('logs every refused attempt with channel, identity and reason', async () => {
    const logger = captureLogger();
    const channel = memoryChannel('alpha');
    const broker = await start({ channels: [channel], logger });
    channel.sink().reject({
      identity: '666 (@mallory)',
      reason: 'not_approver',
      detail: 'user 666 is not a configured approver',
    });
    expect(logger.lines.at(-1)).toMatchObject({
      level: 'warn',
      message:
        'approvals: refused not_approver from 666 (@mallory) via alpha: user 666 is not a configured approver',
      fields: { channel: 'alpha', identity: '666 (@mallory)', reason: 'not_approver' },
    });
    expect(rejected).toHaveLength(1);
    await broker.close();
  });

  it('refuses a corrupt approvals file instead of forgetting pending approvals', async () => {
    await writeFile(path, '{"version":1,"requests":[{"id":"nope"}]}');
    await expect(start()).rejects.toMatchObject({
      code: 'NOTIFY_STORE_INVALID',
      message: expect.stringContaining(path),
    });
  });

  it('reports an unwritable approvals file from ask and keeps nothing half-made', async () => {
    const state = join(dir.path, 'state');
    await mkdir(state);
    path = join(state, 'approvals.json');
    const broker = await start();
    // The directory is replaced by a file: every write now fails, as it would on a broken disk.
    await rm(state, { recursive: true });
    await writeFile(state, '');
    await expect(ask(broker)).rejects.toMatchObject({
      code: 'NOTIFY_STORE_IO',
      message: expect.stringContaining(path),
    });
    expect(broker.list()).toEqual([]);
  });

  it('rejects short tokens, duplicate token names and reserved channel names', () => {
    expect(() => createApprovalBroker({ path, tokens: [{ name: 'x', token: 'short' }] })).toThrow(
      /at least 16 characters/,
    );
    expect(() =>
      createApprovalBroker({
        path,
        tokens: [
          { name: 'x', token: CLI_TOKEN },
          { name: 'x', token: HTTP_TOKEN },
        ],
      }),
    ).toThrow(/used twice/);
    expect(() => createApprovalBroker({ path, channels: [memoryChannel('cli')] })).toThrow(
      /reserved/,
    );
    expect(() =>
      createApprovalBroker({ path, config: { ttl_seconds: 1, on_expiry: 'maybe' as never } }),
    ).toThrow(/\[approvals\] ttl_seconds: .*; \[approvals\] on_expiry/);
  });

  it('makes distinct, unguessable ids', async () => {
    const broker = await start();
    const ids = new Set<string>();
    for (let index = 0; index < 50; index += 1) {
      const request = await broker.ask({ agent: `agent-${index}`, mission: 'm', reasons: [] });
      ids.add(request.id);
    }
    expect(ids.size).toBe(50);
  });
});
