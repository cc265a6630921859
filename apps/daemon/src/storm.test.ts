import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createAlertDispatcher,
  createTelegramChannel,
  type AlertDispatcher,
  type AlertInput,
  type TelegramChannel,
} from '@pit/notify';
import { startTelegramBotApi, type TestTelegramBotApi } from '@pit/test-kit';
import { parseConfig } from './config.js';
import { createLogger } from './logger.js';
import { createNotifier } from './notifier.js';
import { createStormAlerts, type StormAlertsOptions } from './storm.js';

const BRAKE = { max_deaths: 5, max_percent: 50, min_agents: 4, window: 120_000 };
const logger = createLogger({ level: process.env.PIT_TEST_LOG ? 'debug' : 'error' });
const death = (index: number, extra: { fleetSize?: number } = {}) => ({
  agent: `a${index}`,
  mission: 'survey',
  cell: 'cell-1',
  reason: 'process exited (signal SIGKILL)',
  ...extra,
});

/** A storm detector on fake timers whose sends are collected. */
function collecting(options: Partial<StormAlertsOptions> = {}) {
  const sent: AlertInput[][] = [];
  const storm = createStormAlerts({
    brake: BRAKE,
    send: (alerts) => sent.push(alerts),
    clock: () => Date.now(),
    ...options,
  });
  return { storm, sent };
}

describe('createStormAlerts', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends nothing for deaths that stay within max_deaths per window', () => {
    vi.useFakeTimers();
    const { storm, sent } = collecting();
    for (let index = 0; index < 5; index += 1) {
      storm.seen(death(index));
      vi.advanceTimersByTime(10_000);
    }
    vi.advanceTimersByTime(600_000);
    // Spread wider than the window, any number of deaths stays quiet.
    for (let index = 0; index < 50; index += 1) {
      storm.seen(death(index));
      vi.advanceTimersByTime(30_000);
    }
    storm.close();
    expect(sent).toEqual([]);
  });

  it('sends the whole storm as one batch once deaths exceed max_deaths within the window', () => {
    vi.useFakeTimers();
    const { storm, sent } = collecting();
    for (let index = 0; index < 100; index += 1) {
      storm.seen(death(index));
      vi.advanceTimersByTime(30); // 100 deaths seen over 3 s
    }
    expect(sent).toEqual([]); // still gathering: the burst has not settled for 1 s
    vi.advanceTimersByTime(1000);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.map((alert) => alert.agent)).toEqual(
      Array.from({ length: 100 }, (_, index) => `a${index}`),
    );
    expect(sent[0]![0]).toMatchObject({
      kind: 'death',
      mission: 'survey',
      summary: 'dead (storm): process exited (signal SIGKILL)',
    });
    vi.advanceTimersByTime(600_000);
    storm.close();
    expect(sent).toHaveLength(1);
  });

  it('keeps a storm that goes on to one follow-up per window, each listing the deaths since the last', () => {
    vi.useFakeTimers();
    const { storm, sent } = collecting();
    // One death per second for 10 minutes: 600 deaths.
    for (let index = 0; index < 600; index += 1) {
      storm.seen(death(index));
      vi.advanceTimersByTime(1000);
    }
    vi.advanceTimersByTime(600_000);
    // Onset (gathered at most 10 s) + at most one follow-up per 2 min over 10 min.
    expect(sent.length).toBeGreaterThanOrEqual(5);
    expect(sent.length).toBeLessThanOrEqual(1 + Math.ceil(600_000 / BRAKE.window));
    const listed = sent.flat().map((alert) => alert.agent);
    expect(new Set(listed).size).toBe(600);
    expect(listed).toHaveLength(600);
    expect(sent[1]![0]!.summary).toContain('storm continues');
  });

  it('sends the first message at most maxGatherMs after the onset while deaths keep coming', () => {
    vi.useFakeTimers();
    const { storm, sent } = collecting();
    for (let index = 0; index < 60; index += 1) {
      storm.seen(death(index));
      vi.advanceTimersByTime(500); // a death every 0.5 s for 30 s: never settles
    }
    // Onset at the 6th death (2.5 s); the first message 10 s later, listing the 25 seen before then.
    expect(sent.map((batch) => batch.length)).toEqual([25]);
    vi.advanceTimersByTime(BRAKE.window);
    expect(sent.map((batch) => batch.length)).toEqual([25, 35]);
  });

  it('ends a storm after a window without deaths: a lone death then pages nobody', () => {
    vi.useFakeTimers();
    const { storm, sent } = collecting();
    for (let index = 0; index < 6; index += 1) storm.seen(death(index));
    vi.advanceTimersByTime(2000);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(BRAKE.window + 1);
    storm.seen(death(99));
    vi.advanceTimersByTime(600_000);
    expect(sent).toHaveLength(1);
  });

  it('applies the percentage rule when the fleet size is known', () => {
    vi.useFakeTimers();
    const { storm, sent } = collecting();
    for (let index = 0; index < 3; index += 1) storm.seen(death(index, { fleetSize: 4 }));
    vi.advanceTimersByTime(2000);
    expect(sent.map((batch) => batch.length)).toEqual([3]);
  });

  it('leaves out deaths alerted on their own, and holds their alerts for the storm message while it gathers', () => {
    vi.useFakeTimers();
    const { storm, sent } = collecting();
    // a0 was alerted on its own before the storm (record_only): not listed again.
    storm.seen(death(0));
    expect(
      storm.individual(
        { kind: 'death', agent: 'a0', mission: 'survey', summary: 'a0 is dead: never' },
        'cell-1',
      ),
    ).toBe(false);
    for (let index = 1; index < 8; index += 1) storm.seen(death(index));
    // a7 escalates while the storm gathers: its own alert goes in the storm's message, once.
    const escalation = {
      kind: 'escalation' as const,
      agent: 'a7',
      mission: 'survey',
      summary: 'a7 is dead: restart intensity exceeded',
    };
    expect(storm.individual(escalation, 'cell-1')).toBe(true);
    vi.advanceTimersByTime(2000);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.map((alert) => alert.agent)).toEqual([
      'a1',
      'a2',
      'a3',
      'a4',
      'a5',
      'a6',
      'a7',
    ]);
    expect(sent[0]!.at(-1)).toEqual(escalation);
    // After the first message, an individual alert is the caller's to send at once.
    storm.seen(death(8));
    expect(
      storm.individual(
        { kind: 'death', agent: 'a8', mission: 'survey', summary: 'a8 is dead: never' },
        'cell-1',
      ),
    ).toBe(false);
    vi.advanceTimersByTime(600_000);
    expect(sent).toHaveLength(1);
  });
});

describe('storm alerts through the notifier, the real dispatcher and Telegram (local Bot API)', () => {
  const TOKEN = '7000000001:storm-test-token';
  const CHAT = -1001234567890;
  let api: TestTelegramBotApi | undefined;
  let channel: TelegramChannel | undefined;
  let alerts: AlertDispatcher | undefined;

  afterEach(async () => {
    await alerts?.close();
    await channel?.stop();
    await api?.close();
    alerts = undefined;
    channel = undefined;
    api = undefined;
  });

  async function setUp() {
    api = await startTelegramBotApi({ token: TOKEN });
    channel = createTelegramChannel({
      config: { chat_id: CHAT, approvers: [], api_root: api.apiRoot, poll_timeout_seconds: 1 },
      token: TOKEN,
      logger,
    });
    await channel.start();
    alerts = createAlertDispatcher({ channels: [channel], logger });
    const parsed = parseConfig('[policy.fleet_brake]\nenabled = false\n', 'toml');
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    const notifier = createNotifier(parsed.config, {}, logger, alerts, { stormSettleMs: 500 });
    const sent = () => api!.calls.filter((call) => call.method === 'sendMessage');
    return { api, alerts, notifier, sent };
  }

  const seen = (index: number) => ({
    agent: `agent-${index}`,
    mission: `mission-${index % 10}`,
    cell: `cell-${index % 10}`,
    reason: 'process exited (signal SIGKILL)',
    at: new Date(),
  });

  it('sends one grouped message for 100 deaths within 2 s (brake disabled: same numbers)', async () => {
    const { api, alerts, notifier, sent } = await setUp();
    for (let index = 0; index < 100; index += 1) {
      await notifier.died!(seen(index));
      if (index % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
    }
    const message = await api.waitForMessage(CHAT, () => true, 15_000);
    await notifier.close!();
    await alerts.flush();
    expect(sent()).toHaveLength(1);
    expect(message.text.split('\n')[0]).toMatch(
      /^\[pit\] 100 agents died within \d+ s \(missions: /,
    );
    expect(message.text).toContain(
      'agent-0 (mission-0): dead (storm): process exited (signal SIGKILL)',
    );
    expect(message.text).toMatch(/… and \d+ more$/);
  });

  it('pages nobody for a lone restarted death or its recovery, and once each for a death that needs a human and its recovery', async () => {
    const { api, alerts, notifier, sent } = await setUp();
    await notifier.died!(seen(1));
    await notifier.close!();
    await alerts.flush();
    expect(sent()).toHaveLength(0);
    await notifier.died!(seen(2));
    await notifier.death({
      agent: 'agent-2',
      mission: 'mission-2',
      cell: 'cell-2',
      reason: 'mode never',
      deadSince: new Date(),
      decision: { action: 'record_only', reason: 'mode never' },
      probes: [],
      restarts: [],
    });
    const message = await api.waitForMessage(CHAT, () => true, 15_000);
    await notifier.close!();
    await alerts.flush();
    expect(sent()).toHaveLength(1);
    expect(message.text).toBe('[pit] 💀 agent-2 (mission-2): agent-2 is dead: mode never');
    // A silent death's recovery is silent too; a told one's is told.
    await notifier.recovery('agent-1', 'agent-1 is healthy again', 'cell-1');
    await alerts.flush();
    expect(sent()).toHaveLength(1);
    // An agent of the same name in another cell was not told of: its recovery is silent.
    await notifier.recovery('agent-2', 'agent-2 is healthy again', 'cell-9');
    await alerts.flush();
    expect(sent()).toHaveLength(1);
    await notifier.recovery('agent-2', 'agent-2 is healthy again', 'cell-2');
    await alerts.flush();
    expect(sent().map((call) => call.params.text)).toEqual([
      message.text,
      '[pit] ✅ agent-2: agent-2 is healthy again',
    ]);
  });
});
