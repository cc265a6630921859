/**
 * Approvals and death issues across hosts (issue #16: "fleet-wide, one per incident, not per
 * host"), with real processes only: a 3-node `nats-server` cluster, three `pit daemon`s sharing
 * one `[agents]` table and one `[issues]` repository (a local server speaking GitHub's REST API,
 * the real Octokit pointed at it), and an agent whose policy asks a human before a revive.
 *
 * The agent dies on its host (a request there, an issue opened); then that host's daemon is
 * SIGKILLed. The live host that wins the claim asks once (the other asks nothing), comments on
 * the open issue instead of opening another, and starts the agent when its request is approved.
 * The dead host, back, follows the current owner: its own old request is no longer pending.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  natsInstalled,
  startIssuesApi,
  startNatsCluster,
  tempDir,
  testAgentPath,
  waitFor,
  type TestIssuesApi,
  type TestNatsCluster,
} from '@pit/test-kit';
import {
  cleanup,
  getStatus,
  killDaemon,
  liveAgents,
  MARKER_FLAG,
  startDaemon,
  TOKEN,
  trackMarker,
  type DaemonProcess,
} from './harness.js';
import { clusterHostToml, runningOnce, stopHosts } from './cluster-hosts.js';

const installed = natsInstalled('the fleet-wide incident tests');

const LEASE_S = 3;
const ISSUES_TOKEN = 'issues-token-fleet-wide';
const AGENTS = ['alpha', 'bravo', 'charlie'];

interface Host {
  id: string;
  configPath: string;
  daemon?: DaemonProcess;
}

/** The pending approval requests a host's daemon lists for the agent. */
async function pendingFor(host: Host, agent: string): Promise<string[]> {
  const status = await getStatus(host.daemon!.url);
  return status.approvals
    .filter((approval) => approval.agent === agent || approval.agent?.endsWith(`/${agent}`))
    .map((approval) => approval.id);
}

describe.skipIf(!installed)('fleet-wide approvals and death issues', () => {
  let nats: TestNatsCluster | undefined;
  let api: TestIssuesApi | undefined;
  let hosts: Host[] = [];

  afterEach(async (test) => {
    await stopHosts(hosts, test.task.result?.state === 'fail');
    hosts = [];
    await nats?.stop();
    await api?.close();
    delete process.env.PIT_ISSUES_TOKEN;
    await cleanup();
  }, 60_000);

  /** NATS, the issues API and three hosts' daemons (alpha asks before a revive); the agents' marker. */
  const startHosts = async (): Promise<string> => {
    nats = await startNatsCluster(await tempDir('pit-incidents-nats-'), 3);
    api = await startIssuesApi({
      flavour: 'github',
      token: ISSUES_TOKEN,
      owner: 'ops',
      repo: 'fleet',
    });
    const shared = await tempDir('pit-incidents-');
    const marker = `incidents-${process.pid}-${Date.now().toString(36)}`;
    trackMarker(marker);
    const work = join(shared, 'work');
    await fs.mkdir(work, { recursive: true });
    for (const id of ['host-a', 'host-b', 'host-c']) {
      const base = join(shared, id);
      await fs.mkdir(join(base, 'missions'), { recursive: true });
      const lines = [
        ...clusterHostToml({ servers: nats.urls, hostId: id, leaseS: LEASE_S }),
        '[issues]',
        'provider = "github"',
        `base_url = "${api.baseUrl}"`,
        'owner = "ops"',
        'repo = "fleet"',
        'token_env = "PIT_ISSUES_TOKEN"',
        '[policy.agents.alpha]',
        'mode = "ask"',
        'approval = { channels = ["http"], timeout = "10m" }',
        ...AGENTS.flatMap((name) => [
          `[agents.${name}]`,
          'cell = "none"',
          `cwd = "${work}"`,
          `argv = ["${process.execPath}", "${testAgentPath}", "${MARKER_FLAG}", "${marker}:${name}"]`,
          'startup_grace_s = 10',
          'stop_grace_s = 2',
        ]),
      ];
      const configPath = join(base, 'pit.toml');
      await fs.writeFile(configPath, lines.join('\n'), { mode: 0o600 });
      hosts.push({ id, configPath });
    }
    // The daemons inherit the test's environment (the issues token comes from it, never a file).
    process.env.PIT_ISSUES_TOKEN = ISSUES_TOKEN;
    for (const host of hosts) host.daemon = await startDaemon(host.configPath, 30_000);
    return marker;
  };

  it('an ask-policy agent whose host dies: one request fleet-wide, one issue, started once when approved', async () => {
    const marker = await startHosts();
    const first = await waitFor(() => runningOnce(marker, 'alpha'), 30_000, 'alpha running once');
    const owner = hosts.find((host) => host.id === first.host)!;
    const peers = hosts.filter((host) => host !== owner);

    // A death on its host: one request there, one issue.
    process.kill(first.pid, 'SIGKILL');
    const firstRequest = await waitFor(
      async () => (await pendingFor(owner, 'alpha'))[0],
      20_000,
      `a request on ${owner.id}`,
    );
    const alphaIssues = () => api!.issues.filter((issue) => issue.title.includes('alpha'));
    const issue = await waitFor(() => alphaIssues()[0], 20_000, 'the death issue of alpha');
    for (const peer of peers) expect(await pendingFor(peer, 'alpha')).toEqual([]);

    // Its host dies: the claim's winner asks once; nothing else asks, nothing opens a second issue.
    await killDaemon(owner.daemon!);
    owner.daemon = undefined;
    const asked = await waitFor(
      async () => {
        for (const peer of peers) {
          const ids = await pendingFor(peer, 'alpha');
          if (ids.length > 0) return { host: peer, ids };
        }
        return undefined;
      },
      4 * LEASE_S * 1000,
      'a request on a live host after the takeover',
    );
    expect(asked.ids).toHaveLength(1);
    expect(asked.ids[0]).not.toBe(firstRequest);
    // The takeover's death report found the open issue: a comment on it, not a new one.
    await waitFor(
      () =>
        issue.comments.some((comment) => comment.body.startsWith('Died again')) ? true : undefined,
      20_000,
      'a comment on the open issue',
    );
    const other = peers.find((peer) => peer !== asked.host)!;
    expect(await pendingFor(other, 'alpha')).toEqual([]);
    expect(alphaIssues()).toHaveLength(1);
    expect(await liveAgents(marker).then((live) => live.get('alpha') ?? [])).toEqual([]);

    // The dead host comes back: it follows the current owner, its old request is not pending.
    owner.daemon = await startDaemon(owner.configPath, 30_000);
    await waitFor(
      async () => ((await pendingFor(owner, 'alpha')).length === 0 ? true : undefined),
      4 * LEASE_S * 1000,
      `${owner.id}'s old request withdrawn after it rejoined`,
    );

    // Approved where it was asked: alpha runs once, there, with a newer epoch.
    const response = await fetch(
      `${asked.host.daemon!.url}/api/approvals/${asked.ids[0]}/approve`,
      { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } },
    );
    expect(response.status).toBe(200);
    const revived = await waitFor(
      () => runningOnce(marker, 'alpha'),
      20_000,
      'alpha running again after the approval',
    );
    expect(revived.host).toBe(asked.host.id);
    expect(revived.epoch).toBeGreaterThan(first.epoch);
    expect(alphaIssues()).toHaveLength(1);
    for (const host of hosts) expect(await pendingFor(host, 'alpha')).toEqual([]);
  }, 180_000);

  it("an agent the operator stopped stays stopped when its host dies: the new owner reads the agent's record from the cluster", async () => {
    const marker = await startHosts();
    const first = await waitFor(() => runningOnce(marker, 'bravo'), 30_000, 'bravo running once');
    const owner = hosts.find((host) => host.id === first.host)!;
    const control = (host: Host, action: string) =>
      fetch(`${host.daemon!.url}/api/agents/bravo/${action}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}` },
      });
    expect((await control(owner, 'stop')).status).toBe(200);
    await waitFor(
      async () => (((await liveAgents(marker)).get('bravo') ?? []).length === 0 ? true : undefined),
      20_000,
      'bravo stopped',
    );
    await killDaemon(owner.daemon!);
    owner.daemon = undefined;
    const peers = hosts.filter((host) => host !== owner);
    // A live host takes bravo over (its lease lapsed) and holds it stopped.
    const holder = await waitFor(
      async () => {
        for (const peer of peers) {
          const status = await getStatus(peer.daemon!.url);
          const bravo = status.agents.find((agent) => agent.agent === 'bravo');
          if (bravo?.health === 'stopped') return peer;
        }
        return undefined;
      },
      4 * LEASE_S * 1000,
      'a live host holding bravo, stopped',
    );
    // Longer than a takeover takes (2T): bravo has not been started anywhere.
    await expect(
      waitFor(
        async () => (((await liveAgents(marker)).get('bravo') ?? []).length > 0 ? true : undefined),
        2 * LEASE_S * 1000,
        'bravo started by a host that took it over',
      ),
    ).rejects.toThrow(/timed out/);
    // Started where it is held: it runs once, with a newer epoch.
    expect((await control(holder, 'start')).status).toBe(200);
    const again = await waitFor(() => runningOnce(marker, 'bravo'), 20_000, 'bravo started again');
    expect(again.host).toBe(holder.id);
    expect(again.epoch).toBeGreaterThan(first.epoch);
  }, 180_000);
});
