import { join } from 'node:path';
import {
  cleanup,
  reapLater,
  startTelegramBotApi,
  tempDir,
  testAgentPath,
  waitFor,
} from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { createSupervisor, type Supervisor } from '../src/supervisor.js';
import { createLogger } from '../src/logger.js';
import { createNotifier, type Notifier } from '../src/notifier.js';
import { startChannels } from '../src/channels.js';
import { makeCell } from './helpers.js';
import { cellEvents, testConfig } from './fleet.js';

let supervisor: Supervisor | undefined;
const closers: Array<() => Promise<void>> = [];
const logger = createLogger({ level: process.env.PIT_TEST_LOG ? 'debug' : 'error' });
const TOKEN = 'tg-storm-token-123456';
const CHAT = -100777;

afterEach(async () => {
  if (supervisor) {
    const status = await supervisor.status().catch(() => undefined);
    for (const agent of status?.agents ?? []) reapLater(agent.pid);
    await supervisor.stop({ stopAgents: true }).catch(() => undefined);
  }
  supervisor = undefined;
  for (const close of closers.splice(0)) await close();
  await cleanup();
});

/** A supervised cell of `count` test agents whose alerts go to a local Telegram Bot API. */
async function stormFleet(count: number) {
  const api = await startTelegramBotApi({ token: TOKEN });
  closers.push(() => api.close());
  const base = await tempDir('pit-storm-');
  const names = Array.from({ length: count }, (_, index) => `worker-${index}`);
  const cell = await makeCell(
    names.map((name) => ({ name })),
    join(base, 'missions'),
  );
  const toml = [
    '[daemon]',
    'state_dir = "state"',
    '[daemon.http]',
    'enabled = false',
    '[cells]',
    'root = "missions"',
    'heartbeat_stale_s = 15',
    'poll_interval_s = 0.2',
    'resurrect_after_s = 0',
    '[checkpoints]',
    'interval_s = 0',
    '[policy.defaults]',
    'backoff = { initial = "200ms", cap = "1s", jitter = 0 }',
    '[policy.fleet_brake]',
    'restart_interval = "100ms"',
    '[telegram]',
    'token_env = "PIT_TEST_TG"',
    `chat_id = ${CHAT}`,
    `api_root = "${api.apiRoot}"`,
    'poll_timeout_seconds = 1',
    ...names.flatMap((name) => [
      `[agents.${name}]`,
      'startup_grace_s = 10',
      'stop_grace_s = 2',
      `argv = ["${process.execPath}", "${testAgentPath}"]`,
      `[agents.${name}.probes]`,
      'failure_threshold = 1',
    ]),
  ].join('\n');
  const { config, policyInput } = testConfig(toml, base);
  const env = { ...process.env, PIT_TEST_TG: TOKEN };
  const channels = await startChannels(config, env, logger);
  closers.unshift(() => channels.stop());
  const notifier: Notifier = createNotifier(config, env, logger, channels.alerts);
  supervisor = await createSupervisor({ config, policyInput, env, logger, notifier });
  await supervisor.start();
  const healthy = async (exclude: Map<string, number> = new Map()) =>
    waitFor(
      async () => {
        const agents = (await supervisor!.status()).agents;
        return agents.length === count &&
          agents.every(
            (agent) =>
              agent.health === 'healthy' && agent.pid && agent.pid !== exclude.get(agent.key),
          )
          ? agents
          : undefined;
      },
      60_000,
      `${count} agents healthy`,
    );
  /** Every message the bot sent, once nothing is held or queued any more. */
  const settled = async () => {
    await notifier.close?.();
    await channels.alerts!.flush();
    return api.messages(CHAT).filter((message) => message.from.id === api.bot.id);
  };
  return { api, cell, names, healthy, settled };
}

describe('storm alerts from the supervision loop (real agents, real Telegram client, local Bot API)', () => {
  it('sends exactly one Telegram message listing every agent when 8 are killed at once', async () => {
    const { api, cell, names, healthy, settled } = await stormFleet(8);
    const first = await healthy();
    for (const agent of first) reapLater(agent.pid);
    for (const agent of first) process.kill(agent.pid!, 'SIGKILL');
    const message = await api.waitForMessage(CHAT, () => true, 30_000);
    const again = await healthy(new Map(first.map((agent) => [agent.key, agent.pid!])));
    for (const agent of again) reapLater(agent.pid);
    // Every agent was revived (restarts: no alert on their own).
    await waitFor(
      async () =>
        (await cellEvents(cell.dir)).filter((event) => event.event === 'agent_revived').length >= 8,
      10_000,
      'agent_revived ×8 in the log',
    );
    const sent = await settled();
    expect(sent.map((entry) => entry.text.split('\n')[0])).toEqual([message.text.split('\n')[0]]);
    expect(message.text.split('\n')[0]).toMatch(/^\[pit\] 8 agents died within \d+ s/);
    for (const name of names)
      expect(message.text).toContain(`💀 ${name} (test mission): dead (storm)`);
  });

  it('sends nothing when a single agent dies and is restarted', async () => {
    const { api, cell, healthy, settled } = await stormFleet(3);
    const first = await healthy();
    for (const agent of first) reapLater(agent.pid);
    const victim = first[0]!;
    process.kill(victim.pid!, 'SIGKILL');
    const again = await healthy(new Map([[victim.key, victim.pid!]]));
    for (const agent of again) reapLater(agent.pid);
    await waitFor(
      async () =>
        (await cellEvents(cell.dir)).some((event) => event.event === 'agent_revived') &&
        (await cellEvents(cell.dir)).filter((event) => event.event === 'agent_healthy').length >= 4,
      10_000,
      'agent_revived and agent_healthy in the log',
    );
    expect(await settled()).toEqual([]);
    expect(api.calls.filter((call) => call.method === 'sendMessage')).toEqual([]);
  });
});
