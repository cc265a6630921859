import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanup, reapLater, startTelegramBotApi, tempDir, waitFor } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { startChannels } from '../src/channels.js';
import { daemonMcpBackend } from '../src/mcp-http.js';
import { createPitMcpServer } from '../src/mcp-server.js';
import { describeEvent } from '../src/incidents.js';
import { readFleetStatus } from '../src/fleet-status.js';
import { createLogger } from '../src/logger.js';
import { createNotifier } from '../src/notifier.js';
import { createSupervisor, type Supervisor } from '../src/supervisor.js';
import { cellEvents, testConfig } from './fleet.js';
import { makeCell } from './helpers.js';

const agentPath = fileURLToPath(new URL('./fixtures/provider-agent.mjs', import.meta.url));
const logger = createLogger({ level: process.env.PIT_TEST_LOG ? 'debug' : 'error' });
const TOKEN = 'tg-provider-token-123456';
const CHAT = -100888;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

let supervisor: Supervisor | undefined;
const closers: Array<() => Promise<void>> = [];

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

/**
 * A local fake of the providers: `/status/<name>` answers Statuspage JSON
 * (`status.indicator` none or major), `/api/<name>` answers 200 or 529 overloaded.
 */
async function startFakeProviders(names: string[]) {
  const up = new Map(names.map((name) => [name, true]));
  const server: Server = createServer((request, response) => {
    const [, kind, name] = (request.url ?? '').split('/');
    const isUp = up.get(name ?? '');
    if (isUp === undefined) return void response.writeHead(404).end();
    if (kind === 'status') {
      response.writeHead(200, { 'content-type': 'application/json' });
      return void response.end(JSON.stringify({ status: { indicator: isUp ? 'none' : 'major' } }));
    }
    if (isUp) return void response.writeHead(200).end('{"ok":true}');
    response.writeHead(529).end('overloaded_error');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, set: (name: string, value: boolean) => up.set(name, value) };
}

const providerToml = (base: string, name: string) => [
  `[providers.${name}]`,
  `status_url = "${base}/status/${name}"`,
  'interval_s = 0.2',
  'timeout_s = 2',
  'wait_initial_s = 0.3',
  'wait_cap_s = 1',
];

/** A supervised cell of provider agents, alerts to a local Telegram Bot API. */
async function providerFleet(options: {
  names: string[];
  providers: string[];
  agentToml: (name: string, cellDir: string, base: string) => string[];
  contents: (name: string, base: string) => string;
}) {
  const fake = await startFakeProviders(options.providers);
  const api = await startTelegramBotApi({ token: TOKEN });
  closers.push(() => api.close());
  const dir = await tempDir('pit-provider-');
  const cell = await makeCell(
    options.names.map((name) => ({ name })),
    join(dir, 'missions'),
  );
  for (const name of options.names)
    await fs.writeFile(join(cell.dir, `${name}.json`), options.contents(name, fake.base));
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
    // Seen once here, with every agent of the daemon dead for seconds: its instance cgroup
    // (pit-agents/<instance>) was gone and every later start failed with ENOENT (reported, not
    // this change's). This test is about providers: it runs without per-agent cgroups.
    '[sandbox]',
    'agent_cgroups = "off"',
    '[telegram]',
    'token_env = "PIT_TEST_TG"',
    `chat_id = ${CHAT}`,
    `api_root = "${api.apiRoot}"`,
    'poll_timeout_seconds = 1',
    ...options.providers.flatMap((name) => providerToml(fake.base, name)),
    ...options.names.flatMap((name) => options.agentToml(name, cell.dir, fake.base)),
  ].join('\n');
  const { config, policyInput } = testConfig(toml, dir);
  const env = { ...process.env, PIT_TEST_TG: TOKEN };
  const channels = await startChannels(config, env, logger);
  closers.unshift(() => channels.stop());
  const notifier = createNotifier(config, env, logger, channels.alerts);
  supervisor = await createSupervisor({ config, policyInput, env, logger, notifier });
  await supervisor.start();
  const healthy = (exclude: Map<string, number> = new Map()) =>
    waitFor(
      async () => {
        const status = await supervisor!.status();
        const ok =
          status.agents.length === options.names.length &&
          status.agents.every(
            (agent) =>
              agent.health === 'healthy' && agent.pid && agent.pid !== exclude.get(agent.key),
          );
        if (ok) for (const agent of status.agents) reapLater(agent.pid);
        return ok ? status : undefined;
      },
      30_000,
      'every agent healthy',
    );
  const sent = async () => {
    await notifier.close?.();
    await channels.alerts!.flush();
    return api.messages(CHAT).filter((message) => message.from.id === api.bot.id);
  };
  /** The MCP tool `pit_providers`, called with the SDK's client over the daemon's backend. */
  const mcpProviders = async () => {
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const server = createPitMcpServer({
      backend: daemonMcpBackend(supervisor!, () => config),
      caller: { approver: false, via: 'stdio' },
    });
    await server.connect(serverSide);
    const client = new Client({ name: 'provider-test', version: '1.0.0' });
    await client.connect(clientSide);
    try {
      return (await client.callTool({ name: 'pit_providers', arguments: {} })).structuredContent;
    } finally {
      await client.close();
      await server.close();
    }
  };
  return {
    fake,
    api,
    cell,
    config,
    stateDir: config.daemon.state_dir,
    healthy,
    sent,
    mcpProviders,
  };
}

const agentToml =
  (extra: string[] = [], flags: string[] = []) =>
  (name: string, cellDir: string) => [
    `[agents.${name}]`,
    'startup_grace_s = 10',
    'stop_grace_s = 2',
    `argv = ["${process.execPath}", "${agentPath}", "--config", "${join(cellDir, `${name}.json`)}"${flags.map((flag) => `, "${flag}"`).join('')}]`,
    'provider = "anthropic"',
    `config_files = [{ path = "${name}.json" }]`,
    ...extra,
  ];

describe('provider-aware revival (real agents, a local fake provider, real Telegram client)', () => {
  it('holds agents during an outage without touching their restart budgets, with one alert and one recovery', async () => {
    const names = ['alpha', 'beta', 'gamma'];
    let good = '';
    const fleet = await providerFleet({
      names,
      providers: ['anthropic'],
      // Each agent also corrupts its own config when the provider fails (seed 003).
      agentToml: agentToml([], ['--corrupt-on-error']),
      contents: (_, base) => {
        good = JSON.stringify({ provider: 'anthropic', url: `${base}/api/anthropic` });
        return good;
      },
    });
    const first = await fleet.healthy();
    // The agents may prove healthy before the first provider round has settled.
    await waitFor(
      async () => (await supervisor!.status()).providers?.[0]?.status === 'healthy',
      10_000,
      'anthropic healthy',
    );
    // Each has a last-known-good snapshot (its healthy config) before the outage.
    await waitFor(
      async () =>
        (
          await Promise.all(
            names.map((name) =>
              fs.access(join(fleet.stateDir, 'snapshots', name, 'last-good.json')).then(
                () => true,
                () => false,
              ),
            ),
          )
        ).every(Boolean),
      10_000,
      'a last-known-good snapshot of each agent',
    );
    fleet.fake.set('anthropic', false);
    // Each agent waits, again and again (backoff 0.3 s → 1 s), and is never restarted meanwhile.
    await waitFor(
      async () => {
        const waits = (await cellEvents(fleet.cell.dir)).filter((e) => e.event === 'provider_wait');
        return names.every((name) => waits.filter((e) => e.agent === name).length >= 3);
      },
      20_000,
      'three provider_wait events per agent',
    );
    const during = await supervisor!.status();
    expect(during.providers?.[0]).toMatchObject({ provider: 'anthropic', status: 'dead' });
    for (const agent of during.agents) {
      expect(agent).toMatchObject({ health: 'dead', restarts: 0, reasons: ['primary_dead'] });
      expect(agent.provider).toEqual({
        primary: 'anthropic',
        current: 'anthropic',
        status: 'dead',
      });
    }
    // What `pit status` reads with no daemon to ask: the matrix the daemon persisted (in the background).
    const persisted = await waitFor(
      async () => {
        const { status } = await readFleetStatus(fleet.config);
        return status.providers?.[0]?.status === 'dead' ? status : undefined;
      },
      10_000,
      'the dead provider in providers.json',
    );
    expect(persisted.providers?.[0]).toMatchObject({
      provider: 'anthropic',
      since: during.providers?.[0]?.since,
    });
    for (const agent of persisted.agents) expect(agent.reasons).toEqual(['primary_dead']);
    const viaMcp = await fleet.mcpProviders();
    expect(viaMcp).toMatchObject({
      providers: [
        {
          provider: 'anthropic',
          status: 'dead',
          evidence: [
            'status_url: status.indicator major',
            expect.stringContaining('agents: 3 report outage errors'),
          ],
        },
      ],
      agents: names.map((name) => ({ agent: name, reasons: ['primary_dead'] })),
    });
    const outage = await fleet.api.waitForMessage(
      CHAT,
      (m) => m.text.includes('provider anthropic is dead'),
      15_000,
    );
    for (const name of names) expect(outage.text).toContain(`${name} (waiting for it)`);

    fleet.fake.set('anthropic', true);
    const after = await fleet.healthy(
      new Map(first.agents.map((agent) => [agent.key, agent.pid!])),
    );
    // One revive each, after the outage: no restart storm.
    for (const agent of after.agents) expect(agent.restarts).toBe(1);
    // Each came back on its last known good config, not the one it corrupted.
    for (const name of names)
      expect(await fs.readFile(join(fleet.cell.dir, `${name}.json`), 'utf8')).toBe(good);
    const events = await cellEvents(fleet.cell.dir);
    expect(events.filter((e) => e.event === 'agent_revived')).toHaveLength(3);
    const lastWait = events.findLastIndex((e) => e.event === 'provider_wait');
    const firstRevive = events.findIndex((e) => e.event === 'agent_revived');
    expect(firstRevive).toBeGreaterThan(lastWait);
    await fleet.api.waitForMessage(
      CHAT,
      (m) => m.text.includes('provider anthropic is healthy again'),
      15_000,
    );
    const sent = await fleet.sent();
    expect(sent.map((m) => m.text.split('\n')[0])).toEqual([
      expect.stringContaining('provider anthropic is dead'),
      expect.stringContaining('provider anthropic is healthy again'),
    ]);
    // pit why tells it.
    const told = events.filter((e) => e.agent === 'alpha').map(describeEvent);
    expect(told).toContainEqual(
      expect.stringMatching(/^not restarted: provider anthropic dead; waiting until/),
    );
  });

  it('seed 003 cascade: provider errors, the agent corrupts its config and dies; switched to a healthy fallback, then back', async () => {
    const contents = (provider: string, base: string) =>
      JSON.stringify({ provider, url: `${base}/api/${provider}` });
    let base = '';
    const fleet = await providerFleet({
      names: ['scout'],
      providers: ['anthropic', 'openai'],
      agentToml: (name, cellDir, fakeBase) => {
        base = fakeBase;
        return agentToml(
          [
            'fallback_providers = ["openai"]',
            'provider_switch_back_s = 0.5',
            `[[agents.${name}.provider_files]]`,
            `path = "${name}.json"`,
            `contents = { anthropic = '${contents('anthropic', fakeBase)}', openai = '${contents('openai', fakeBase)}' }`,
          ],
          ['--corrupt-on-error'],
        )(name, cellDir);
      },
      contents: (_, fakeBase) => contents('anthropic', fakeBase),
    });
    const file = join(fleet.cell.dir, 'scout.json');
    const onAnthropic = contents('anthropic', base);
    const onOpenai = contents('openai', base);
    const first = await fleet.healthy();
    // Last known good is the primary's config.
    await waitFor(
      () =>
        fs.access(join(fleet.stateDir, 'snapshots', 'scout', 'last-good.json')).then(
          () => true,
          () => false,
        ),
      10_000,
      'a last-known-good snapshot',
    );
    fleet.fake.set('anthropic', false);
    const onFallback = await fleet.healthy(new Map(first.agents.map((a) => [a.key, a.pid!])));
    expect(onFallback.agents[0]!.provider).toEqual({
      primary: 'anthropic',
      current: 'openai',
      status: 'dead',
    });
    expect(await fs.readFile(file, 'utf8')).toBe(onOpenai);
    let events = await cellEvents(fleet.cell.dir);
    const rolledBack = events.find((e) => e.event === 'config_rolled_back');
    expect(rolledBack).toMatchObject({
      files: [{ path: file, new_sha256: sha256(onAnthropic) }],
    });
    const switched = events.filter((e) => e.event === 'provider_switched');
    expect(switched).toEqual([
      expect.objectContaining({
        from: 'anthropic',
        to: 'openai',
        direction: 'fallback',
        files: [
          { path: 'scout.json', old_sha256: sha256(onAnthropic), new_sha256: sha256(onOpenai) },
        ],
      }),
    ]);
    // The fallback's config is not last known good.
    const lastGood = await fs.readFile(
      join(fleet.stateDir, 'snapshots', 'scout', 'last-good.json'),
      'utf8',
    );
    fleet.fake.set('anthropic', true);
    await waitFor(
      async () =>
        (await cellEvents(fleet.cell.dir)).some(
          (e) => e.event === 'provider_switched' && e.direction === 'back',
        ),
      15_000,
      'switched back to anthropic',
    );
    const back = await fleet.healthy(new Map(onFallback.agents.map((a) => [a.key, a.pid!])));
    expect(back.agents[0]).toMatchObject({
      restarts: 1,
      provider: { primary: 'anthropic', current: 'anthropic', status: 'healthy' },
    });
    expect(await fs.readFile(file, 'utf8')).toBe(onAnthropic);
    events = await cellEvents(fleet.cell.dir);
    expect(events.filter((e) => e.event === 'provider_switched').at(-1)).toMatchObject({
      from: 'openai',
      to: 'anthropic',
      direction: 'back',
      files: [
        { path: 'scout.json', old_sha256: sha256(onOpenai), new_sha256: sha256(onAnthropic) },
      ],
    });
    expect(
      await fs.readFile(join(fleet.stateDir, 'snapshots', 'scout', 'last-good.json'), 'utf8'),
    ).toBe(lastGood);
    const told = events.filter((e) => e.agent === 'scout').map(describeEvent);
    expect(told).toContainEqual(
      expect.stringMatching(
        /^switched to fallback provider openai \(from anthropic\): scout\.json /,
      ),
    );
    expect(told).toContainEqual(
      expect.stringMatching(/^switched back to provider anthropic \(from openai\)/),
    );
  });
});
