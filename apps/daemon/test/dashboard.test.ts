import { existsSync, promises as fs } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cleanup,
  natsServerPath,
  reapLater,
  startNatsCluster,
  spawnTsx,
  tempDir,
  testAgentPath,
  waitFor,
  within,
} from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { makeCell } from './helpers.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) =>
  existsSync(path),
);
const reason = CHROMIUM
  ? `headless ${CHROMIUM}`
  : 'skipped: no Chromium (apt-get install -y chromium)';
if (!CHROMIUM) console.warn(`dashboard test ${reason}`);

const RUN_DAEMON = fileURLToPath(new URL('./fixtures/run-daemon.ts', import.meta.url));
const TOKEN = 'dashboard-token-0123456789-0123456789abcdef';
let browser: Browser | undefined;
const pids = new Set<number>();
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  await browser?.close();
  browser = undefined;
  for (const close of closers.splice(0)) await close();
  for (const pid of pids) reapLater(pid);
  pids.clear();
  await cleanup();
});

/** Starts the daemon fixture (`args`: the config path, then flags) and waits until it serves. */
async function startDashboardDaemon(args: string[]) {
  const daemon = spawnTsx(RUN_DAEMON, args, {
    env: { ...process.env, PIT_TEST_TOKEN: TOKEN },
  });
  const ready = await waitFor(
    () => /^(READY|FAILED) .*$/m.exec(daemon.output())?.[0],
    30_000,
    'the daemon',
  );
  expect(ready).toMatch(/^READY/);
  return { daemon, url: ready.split(' ')[1]! };
}

/** Headless Chromium, quiet (no background traffic). */
function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM!,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

describe('the dashboard (GET /)', () => {
  it.skipIf(!CHROMIUM)(
    `shows an agent stopped in the test (SIGSTOP) turn red then green again, and an approval pressed on the page revives an agent (${reason})`,
    async () => {
      const base = await tempDir('pit-dash-');
      const cell = await makeCell([{ name: 'forge' }, { name: 'anvil' }], join(base, 'missions'));
      const config = [
        '[daemon]',
        'state_dir = "state"',
        '[daemon.http]',
        'listen = "127.0.0.1:0"',
        'token_env = "PIT_TEST_TOKEN"',
        '[cells]',
        'root = "missions"',
        'heartbeat_stale_s = 3', // forge's death is a stale heartbeat (the test agent beats every 100 ms)
        'poll_interval_s = 0.2',
        'resurrect_after_s = 0',
        '[checkpoints]',
        'interval_s = 0',
        '[bus]',
        'listen = "127.0.0.1:0"',
        '[policy.agents.forge]',
        'dead_after = "3s"', // an inferred death (stale heartbeat) stays red this long
        '[policy.agents.anvil]',
        'mode = "ask"',
        'approval = { channels = ["http"], timeout = "10m" }',
        ...['forge', 'anvil'].flatMap((name) => [
          `[agents.${name}]`,
          `argv = ["${process.execPath}", "${testAgentPath}"]`,
          'startup_grace_s = 10',
          'stop_grace_s = 1',
          `[agents.${name}.probes]`,
          'failure_threshold = 1',
        ]),
      ].join('\n');
      const configPath = join(base, 'pit.toml');
      await fs.writeFile(configPath, config, { mode: 0o600 });
      const { daemon, url } = await startDashboardDaemon([configPath]);

      browser = await launchChromium();
      const page = await browser.newPage();
      await page.goto(url);
      const row = (agent: string, state: string) =>
        page.locator(
          `section[data-cell="${cell.uuid}"] tr[data-agent="${agent}"][data-state="${state}"]`,
        );
      await row('forge', 'healthy').waitFor({ timeout: 30_000 });
      await row('anvil', 'healthy').waitFor({ timeout: 30_000 });
      // The page re-renders every second: query and read the colour in one step, retrying until the row is there.
      const colorOf = (agent: string, state: string) =>
        waitFor(
          () =>
            page.evaluate(
              ([name, health]) => {
                const view = globalThis as unknown as {
                  document: { querySelector(selector: string): unknown };
                  getComputedStyle(element: unknown): { backgroundColor: string };
                };
                const node = view.document.querySelector(
                  `tr[data-agent="${name}"][data-state="${health}"] .state`,
                );
                return node ? view.getComputedStyle(node).backgroundColor : '';
              },
              [agent, state],
            ),
          10_000,
          `${agent} shown ${state}`,
        );
      const pidOf = async (agent: string) =>
        Number(await page.locator(`tr[data-agent="${agent}"] td:nth-child(5)`).textContent());
      const forgePid = await pidOf('forge');
      const anvilPid = await pidOf('anvil');
      pids.add(forgePid).add(anvilPid);
      expect(await colorOf('forge', 'healthy')).toBe('rgb(31, 157, 85)');

      // Silent, not gone (an exit the Pit sees is restarted at once): its heartbeat goes stale and
      // the death is inferred, which waits dead_after.
      process.kill(forgePid, 'SIGSTOP');
      await row('forge', 'dead').waitFor({ timeout: 20_000 });
      expect(await colorOf('forge', 'dead')).toBe('rgb(229, 62, 62)');
      await row('forge', 'healthy').waitFor({ timeout: 30_000 });
      const revivedPid = await pidOf('forge');
      pids.add(revivedPid);
      expect(revivedPid).not.toBe(forgePid);
      await page
        .locator('tr[data-agent="forge"] .events')
        .filter({ hasText: 'agent_revived' })
        .waitFor({ timeout: 20_000 });

      process.kill(anvilPid, 'SIGKILL');
      const approve = page.locator('tr[data-agent="anvil"] button.approve');
      await approve.waitFor({ timeout: 20_000 });
      // Without the token the page says so and nothing happens.
      await approve.click();
      await page
        .locator('#message')
        .filter({ hasText: 'enter the API token first' })
        .waitFor({ timeout: 5000 });
      await page.fill('#token', TOKEN);
      await page.click('#token-form button');
      await page.locator('tr[data-agent="anvil"] button.approve').click();
      await page.locator('#message').filter({ hasText: 'approved' }).waitFor({ timeout: 10_000 });
      await row('anvil', 'healthy').waitFor({ timeout: 30_000 });
      pids.add(await pidOf('anvil'));

      // The control buttons, with the token saved: stop shows the agent stopped; start brings it back.
      await page.locator('tr[data-agent="forge"] button[data-control="stop"]').click();
      await row('forge', 'stopped').waitFor({ timeout: 20_000 });
      await page.locator('tr[data-agent="forge"] button[data-control="start"]').click();
      await row('forge', 'healthy').waitFor({ timeout: 30_000 });
      const startedPid = await pidOf('forge');
      pids.add(startedPid);
      expect(startedPid).not.toBe(revivedPid);
      if (process.env.PIT_DASHBOARD_SCREENSHOT)
        await page.screenshot({ path: process.env.PIT_DASHBOARD_SCREENSHOT, fullPage: true });

      daemon.kill('SIGTERM');
      await within(new Promise((resolve) => daemon.once('exit', resolve)), 20_000, 'daemon exit');
    },
  );

  it.skipIf(!CHROMIUM)(
    `seeds the last events and the restart timeline from the server at load, shows an agent's log tail behind the token, and the provider matrix in the agents' colours (${reason})`,
    async () => {
      // A local stand-in for a provider's status page, flipped by the test.
      let indicator = 'none';
      const statusPage = createServer((_, response) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ status: { indicator } }));
      });
      await new Promise<void>((resolve) => statusPage.listen(0, '127.0.0.1', resolve));
      closers.push(
        () =>
          new Promise((resolve) => {
            statusPage.closeAllConnections();
            statusPage.close(() => resolve());
          }),
      );
      const statusUrl = `http://127.0.0.1:${(statusPage.address() as AddressInfo).port}/status`;
      const base = await tempDir('pit-dash-');
      const cell = await makeCell([{ name: 'forge' }], join(base, 'missions'));
      const config = [
        '[daemon]',
        'state_dir = "state"',
        '[daemon.http]',
        'listen = "127.0.0.1:0"',
        'token_env = "PIT_TEST_TOKEN"',
        '[cells]',
        'root = "missions"',
        'poll_interval_s = 0.2',
        '[checkpoints]',
        'interval_s = 0',
        '[bus]',
        'enabled = false',
        '[providers.anthropic]',
        `status_url = "${statusUrl}"`,
        'interval_s = 0.2',
        '[agents.forge]',
        `argv = ["${process.execPath}", "${testAgentPath}"]`,
        'startup_grace_s = 10',
        'stop_grace_s = 1',
      ].join('\n');
      const configPath = join(base, 'pit.toml');
      await fs.writeFile(configPath, config, { mode: 0o600 });
      const { daemon, url } = await startDashboardDaemon([configPath, '--stop-agents-on-exit']);
      const events = join(cell.dir, 'logs', 'events.jsonl');
      const eventsText = () => fs.readFile(events, 'utf8').catch(() => '');
      const pidOf = async () =>
        Number(
          /agent forge started pid (\d+)/.exec(
            (await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8').catch(() => ''))
              .split('--- pit: starting')
              .at(-1) ?? '',
          )?.[1] ?? 0,
        ) || undefined;
      const first = await waitFor(pidOf, 20_000, 'forge started');
      pids.add(first);
      // A death the daemon sees and its revival, written by the daemon before the page opens.
      process.kill(first, 'SIGKILL');
      await waitFor(
        async () => (await eventsText()).includes('"agent_revived"') || undefined,
        20_000,
        'the revival in the event log',
      );
      const second = await waitFor(
        async () => ((await pidOf()) !== first ? await pidOf() : undefined),
        20_000,
        'forge started again',
      );
      pids.add(second);

      browser = await launchChromium();
      const page = await browser.newPage();
      // No live stream: what the page shows of the past comes from the seed.
      await page.route('**/api/events?*', (route) => route.abort());
      await page.goto(url);
      await page
        .locator(`section[data-cell="${cell.uuid}"] tr[data-agent="forge"] .events`)
        .filter({ hasText: 'agent_revived' })
        .waitFor({ timeout: 20_000 });
      await page
        .locator('#timeline circle[data-kind="death"][data-agent="forge"]')
        .waitFor({ timeout: 10_000 });
      await page
        .locator('#timeline rect[data-kind="revival"][data-agent="forge"]')
        .waitFor({ timeout: 10_000 });

      // The provider matrix, from the same /api/status: state in the agents' colours, since, evidence.
      const provider = (state: string) =>
        page.locator(
          `#providers-box:not([hidden]) tr[data-provider="anthropic"][data-state="${state}"]`,
        );
      await provider('healthy').waitFor({ timeout: 20_000 });
      const providerColour = (state: string) =>
        waitFor(
          () =>
            page.evaluate((health) => {
              const view = globalThis as unknown as {
                document: { querySelector(selector: string): unknown };
                getComputedStyle(element: unknown): { backgroundColor: string };
              };
              const node = view.document.querySelector(
                `tr[data-provider="anthropic"][data-state="${health}"] .state`,
              );
              return node ? view.getComputedStyle(node).backgroundColor : '';
            }, state),
          10_000,
          `anthropic shown ${state}`,
        );
      expect(await providerColour('healthy')).toBe('rgb(31, 157, 85)');
      indicator = 'minor';
      await provider('degraded')
        .filter({ hasText: 'status_url: status.indicator minor' })
        .waitFor({ timeout: 20_000 });
      expect(await providerColour('degraded')).toBe('rgb(214, 158, 46)');
      indicator = 'major';
      await provider('dead').waitFor({ timeout: 20_000 });
      expect(await providerColour('dead')).toBe('rgb(229, 62, 62)');
      expect(
        await page.locator('tr[data-provider="anthropic"] td:nth-child(3)').textContent(),
      ).toMatch(/^\d+ s$/);

      // The log tail: refused without the token, shown with it (both runs' output, across the restart).
      const logButton = page.locator('tr[data-agent="forge"] button[data-log="forge"]');
      await logButton.click();
      await page
        .locator('#message')
        .filter({ hasText: 'enter the API token first' })
        .waitFor({ timeout: 5000 });
      const refused = await page.evaluate(async (cellId) => {
        const response = await fetch(`/api/agents/${cellId}%2Fforge/log?lines=10`);
        return response.status;
      }, cell.uuid);
      expect(refused).toBe(401);
      await page.fill('#token', TOKEN);
      await page.click('#token-form button');
      await logButton.click();
      const view = page.locator('#log-box[data-agent="forge"] #log-view');
      await view
        .filter({ hasText: `agent forge started pid ${first}` })
        .waitFor({ timeout: 10_000 });
      await view
        .filter({ hasText: `agent forge started pid ${second}` })
        .waitFor({ timeout: 10_000 });
      // Below stdout, its stderr log (logs/forge.err.log: each run's start header, at least).
      await view
        .filter({ hasText: /--- stderr ---\n--- pit: starting forge/ })
        .waitFor({ timeout: 10_000 });

      daemon.kill('SIGTERM');
      await within(new Promise((resolve) => daemon.once('exit', resolve)), 20_000, 'daemon exit');
    },
  );
  it.skipIf(!CHROMIUM || !natsServerPath())(
    `shows the cluster's hosts with their lease age and each agent's owner host and epoch, the epoch the agent itself was given (${reason}; needs nats-server)`,
    async () => {
      const base = await tempDir('pit-dash-cluster-');
      const nats = await startNatsCluster(join(base, 'nats'));
      closers.push(() => nats.stop());
      await fs.mkdir(join(base, 'missions'));
      const config = [
        '[daemon]',
        'state_dir = "state"',
        '[daemon.http]',
        'listen = "127.0.0.1:0"',
        'token_env = "PIT_TEST_TOKEN"',
        '[cells]',
        'root = "missions"',
        'poll_interval_s = 0.2',
        '[checkpoints]',
        'interval_s = 0',
        '[bus]',
        'enabled = false',
        '[cluster]',
        `servers = [${nats.urls.map((u) => `"${u}"`).join(', ')}]`,
        'host_id = "dash-host"',
        'lease_s = 3',
        '[agents.scout]',
        'cell = "none"',
        `cwd = "${base}"`,
        `argv = ["${process.execPath}", "${testAgentPath}"]`,
        'startup_grace_s = 10',
        'stop_grace_s = 1',
      ].join('\n');
      const configPath = join(base, 'pit.toml');
      await fs.writeFile(configPath, config, { mode: 0o600 });
      const { daemon, url } = await startDashboardDaemon([configPath]);
      browser = await launchChromium();
      const page = await browser.newPage();
      await page.goto(url);
      const owner = page.locator('tr[data-agent="scout"] .owner');
      await owner.waitFor({ timeout: 30_000 });
      // This host's row: its lease age (renewed every T/3, so under T) and the one agent it holds.
      const hostRow = page.locator('#hosts-box:not([hidden]) tr[data-host="dash-host"]');
      await waitFor(
        async () =>
          /^dash-host \(this host\)[0-2]\.\d s\d+1$/.test((await hostRow.textContent()) ?? ''),
        15_000,
        'dash-host listed with its lease age and one agent',
      );
      // The owner can be shown before the agent's pid (its start still under way): wait for it.
      const pid = await waitFor(
        async () => {
          const cell = await page.locator('tr[data-agent="scout"] td:nth-child(5)').textContent();
          const shown = Number((cell ?? '').split(' ')[0]);
          return Number.isInteger(shown) && shown > 0 ? shown : undefined;
        },
        15_000,
        'scout’s pid on the page',
      );
      pids.add(pid);
      // The epoch shown is the one the agent runs under (its own environment says so).
      const environ = await fs.readFile(`/proc/${pid}/environ`, 'utf8');
      const epoch = /(?:^|\0)PIT_EPOCH=(\d+)/.exec(environ)?.[1];
      expect(epoch).toBeDefined();
      expect((await owner.textContent())!.trim()).toBe(`dash-host@${epoch}`);
      expect(await page.locator('#hosts-note').textContent()).toContain('this host: dash-host');

      daemon.kill('SIGTERM');
      await within(new Promise((resolve) => daemon.once('exit', resolve)), 20_000, 'daemon exit');
    },
    // Longer than its own bounded waits (owner 30 s, host row 15 s, exit 20 s), so a slow step fails
    // naming what it waited for, not as a bare test timeout.
    90_000,
  );
});
