/**
 * Telegram approvals in a cluster whose hosts share one bot (issue #16), with real processes
 * only: a 3-node `nats-server` cluster, three `pit daemon`s with the same `[telegram]` section,
 * and a local server speaking the Telegram Bot API (the real grammY client pointed at it), which
 * like Telegram allows one `getUpdates` per bot and ends the one in progress with 409 Conflict.
 *
 * Only the host holding the `telegram-poller` role polls (no 409 anywhere); a button pressed for a
 * request another host holds reaches that host, which checks the presser against its own
 * `[telegram] approvers` (a stranger is refused) and carries the approval out once. When the
 * polling host dies, a live host takes polling over within about the lease, and answers still
 * arrive.
 *
 * host-a runs no agents (a host with chat duties only), so that the requests are held by another
 * host than the one that polls: it starts first and takes the role.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  natsInstalled,
  startNatsCluster,
  startTelegramBotApi,
  tempDir,
  testAgentPath,
  waitFor,
  type TelegramUser,
  type TestNatsCluster,
  type TestTelegramBotApi,
} from '@pit/test-kit';
import {
  cleanup,
  getStatus,
  killDaemon,
  MARKER_FLAG,
  startDaemon,
  trackMarker,
  type DaemonProcess,
} from './harness.js';
import { clusterHostToml, runningOnce, type Incarnation, stopHosts } from './cluster-hosts.js';

const installed = natsInstalled('the cluster Telegram approval tests');

const LEASE_S = 3;
const BOT_TOKEN = '123456:cluster-telegram-token-never-logged';
const CHAT = -1001234567890;
const approver: TelegramUser = { id: 111, is_bot: false, first_name: 'Ada', username: 'ada' };
const stranger: TelegramUser = { id: 666, is_bot: false, first_name: 'Mallory' };

interface Host {
  id: string;
  base: string;
  configPath: string;
  daemon?: DaemonProcess;
}

/** The pending approval requests a host's daemon lists for alpha. */
async function pendingAlpha(host: Host): Promise<string[]> {
  const status = await getStatus(host.daemon!.url);
  return status.approvals
    .filter((approval) => approval.agent === 'alpha' || approval.agent?.endsWith('/alpha'))
    .map((approval) => approval.id);
}

/** A request as the holder's approvals file records it. */
async function recorded(
  host: Host,
  id: string,
): Promise<{ status: string; decided_via?: string; decided_by?: string } | undefined> {
  const file = JSON.parse(
    await fs.readFile(join(host.base, 'state', 'approvals.json'), 'utf8'),
  ) as {
    requests: Array<{ id: string; status: string; decided_via?: string; decided_by?: string }>;
  };
  return file.requests.find((request) => request.id === id);
}

describe.skipIf(!installed)('Telegram approvals across a cluster sharing one bot', () => {
  let nats: TestNatsCluster | undefined;
  let telegram: TestTelegramBotApi | undefined;
  let hosts: Host[] = [];

  afterEach(async (test) => {
    await stopHosts(hosts, test.task.result?.state === 'fail');
    hosts = [];
    await nats?.stop();
    await telegram?.close();
    delete process.env.PIT_TELEGRAM_TOKEN;
    await cleanup();
  }, 60_000);

  it('one poller; a press reaches the holding host, is checked there and acted on once; polling moves when the poller dies', async () => {
    nats = await startNatsCluster(await tempDir('pit-tg-cluster-nats-'), 3);
    telegram = await startTelegramBotApi({ token: BOT_TOKEN });
    const api = telegram;
    const shared = await tempDir('pit-tg-cluster-');
    const marker = `tg-cluster-${process.pid}-${Date.now().toString(36)}`;
    trackMarker(marker);
    const work = join(shared, 'work');
    await fs.mkdir(work, { recursive: true });
    for (const id of ['host-a', 'host-b', 'host-c']) {
      const base = join(shared, id);
      await fs.mkdir(join(base, 'missions'), { recursive: true });
      const lines = [
        ...clusterHostToml({ servers: nats.urls, hostId: id, leaseS: LEASE_S }),
        '[telegram]',
        `chat_id = ${CHAT}`,
        `approvers = [${approver.id}]`,
        `api_root = "${api.apiRoot}"`,
        'poll_timeout_seconds = 2',
        ...(id === 'host-a'
          ? []
          : [
              '[policy.agents.alpha]',
              'mode = "ask"',
              'approval = { channels = ["telegram"], timeout = "10m" }',
              '[agents.alpha]',
              'cell = "none"',
              `cwd = "${work}"`,
              `argv = ["${process.execPath}", "${testAgentPath}", "${MARKER_FLAG}", "${marker}:alpha"]`,
              'startup_grace_s = 10',
              'stop_grace_s = 2',
            ]),
      ];
      const configPath = join(base, 'pit.toml');
      await fs.writeFile(configPath, lines.join('\n'), { mode: 0o600 });
      hosts.push({ id, base, configPath });
    }
    // The daemons inherit the bot token from the test's environment, never from a file.
    process.env.PIT_TELEGRAM_TOKEN = BOT_TOKEN;
    const [hostA, hostB, hostC] = hosts as [Host, Host, Host];
    hostA.daemon = await startDaemon(hostA.configPath, 30_000);
    await waitFor(
      () => (/this host polls the bot now/.test(hostA.daemon!.output()) ? true : undefined),
      4 * LEASE_S * 1000,
      'host-a polling',
    );
    [hostB.daemon, hostC.daemon] = await Promise.all([
      startDaemon(hostB.configPath, 30_000),
      startDaemon(hostC.configPath, 30_000),
    ]);
    const first = await waitFor(() => runningOnce(marker, 'alpha'), 30_000, 'alpha running once');
    const holder = hosts.find((host) => host.id === first.host)!;
    expect(holder).not.toBe(hostA);

    /** alpha dies; its host asks once, on Telegram; returns the request and its message. */
    const dies = async (incarnation: Incarnation) => {
      const owner = hosts.find((host) => host.id === incarnation.host)!;
      process.kill(incarnation.pid, 'SIGKILL');
      const id = await waitFor(
        async () => (await pendingAlpha(owner))[0],
        20_000,
        `a request on ${owner.id}`,
      );
      const message = await api.waitForMessage(CHAT, (candidate) => candidate.text.includes(id));
      for (const host of hosts)
        if (host !== owner && host.daemon) expect(await pendingAlpha(host)).toEqual([]);
      return { owner, id, message };
    };
    /** Presses a button and waits for its answer. */
    const press = async (from: TelegramUser, messageId: number, data: string) => {
      const query = api.pressButton({ from, chatId: CHAT, messageId, data });
      return (await api.waitForAnswer(query, 15_000)).text;
    };

    // One request fleet-wide, held by alpha's host; host-a polls.
    const asked = await dies(first);
    expect(asked.owner).toBe(holder);
    // Requests are sent with buttons (their outcome later removes them): count the sends.
    const requests = () =>
      api.calls.filter((call) => call.method === 'sendMessage' && call.params.reply_markup);
    expect(requests()).toHaveLength(1);

    // A stranger's press is forwarded, and refused by the holder (its own approvers).
    expect(await press(stranger, asked.message.message_id, `a:${asked.id}`)).toBe(
      'Not authorised.',
    );
    expect(await pendingAlpha(holder)).toEqual([asked.id]);
    expect(holder.daemon!.output()).toMatch(/refused not_approver from 666/);

    // The approver's press reaches the holder: approved once, alpha started once, there.
    expect(await press(approver, asked.message.message_id, `a:${asked.id}`)).toBe('Approved.');
    const revived = await waitFor(
      () => runningOnce(marker, 'alpha'),
      20_000,
      'alpha running again after the approval',
    );
    expect(revived.host).toBe(holder.id);
    expect(await recorded(holder, asked.id)).toMatchObject({
      status: 'approved',
      decided_via: 'telegram',
      decided_by: '111 (@ada)',
    });
    // A second press is refused as already decided: acted on once.
    expect(await press(approver, asked.message.message_id, `a:${asked.id}`)).toMatch(
      /^Already decided/,
    );
    expect(await runningOnce(marker, 'alpha')).toMatchObject({ pid: revived.pid });

    // The poller dies: a live host polls within about the lease, and answers still arrive.
    await killDaemon(hostA.daemon!);
    hostA.daemon = undefined;
    const taker = await waitFor(
      () =>
        [hostB, hostC].find((host) => /this host polls the bot now/.test(host.daemon!.output())),
      4 * LEASE_S * 1000,
      'host-b or host-c polling after host-a died',
    );
    expect(taker).toBeDefined();
    const again = await dies(revived);
    expect(requests()).toHaveLength(2);
    // Answered by a text reply naming the agent, whichever host now polls: the holder replies.
    api.sendText({ from: approver, chatId: CHAT, text: 'skip alpha' });
    await api.waitForMessage(
      CHAT,
      (message) => message.text === `Denied: alpha (${again.id}).`,
      15_000,
    );
    await waitFor(
      async () => ((await recorded(again.owner, again.id))?.status === 'denied' ? true : undefined),
      10_000,
      'the second request denied',
    );
    // One getUpdates at a time, all along: no host fought over the bot.
    expect(api.conflicts()).toBe(0);
  }, 180_000);
});
