/**
 * Forged and stale approvals over the daemon's HTTP API: no token, a wrong token, an unknown id,
 * the id of an expired request, a replayed decision on an id already decided. Each is refused and
 * nothing is done (the agent is not revived, no second revive).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import {
  cellEvents,
  cleanup,
  getStatus,
  liveAgents,
  makeFleet,
  startDaemon,
  stopDaemon,
  TOKEN,
} from './harness.js';

afterEach(cleanup);

const decide = (
  url: string,
  id: string,
  decision: 'approve' | 'deny',
  authorization?: string,
  body: unknown = {},
) =>
  fetch(`${url}/api/approvals/${id}/${decision}`, {
    method: 'POST',
    headers: authorization === undefined ? {} : { authorization },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });

describe('forged approvals over HTTP', () => {
  it('refuses a missing or wrong token, an unknown id, an expired id and a replayed decision; none of them revives anything', async () => {
    const fleet = await makeFleet({
      agents: ['forge', 'brief'],
      extra: [
        '[policy.defaults]',
        'mode = "ask"',
        'backoff = { initial = "100ms", cap = "500ms", jitter = 0 }',
        '[policy.agents.forge]',
        'approval = { channels = ["http"], timeout = "1h" }',
        '[policy.agents.brief]',
        'approval = { channels = ["http"], timeout = "2s", on_timeout = "record_only" }',
      ].join('\n'),
    });
    const daemon = await startDaemon(fleet.configPath);
    const healthy = async (name: string) =>
      waitFor(
        async () => {
          const agent = (await getStatus(daemon.url)).agents.find((item) => item.agent === name);
          return agent?.health === 'healthy' && agent.pid ? agent.pid : undefined;
        },
        30_000,
        `${name} healthy`,
      );
    const forgePid = await healthy('forge');
    const briefPid = await healthy('brief');
    const pendingOf = (name: string) =>
      waitFor(
        async () =>
          (await getStatus(daemon.url)).agents.find((item) => item.agent === name)
            ?.pending_approval,
        30_000,
        `an approval request for ${name}`,
      );
    const revivals = async (name: string) =>
      (await cellEvents(fleet.cellDir)).filter(
        (event) => event.agent === name && event.event === 'agent_revived',
      ).length;
    const notRevived = async (name: string) => {
      expect((await liveAgents(fleet.marker)).get(name) ?? []).toEqual([]);
      expect(await revivals(name)).toBe(0);
    };

    process.kill(forgePid, 'SIGKILL');
    process.kill(briefPid, 'SIGKILL');
    const forgeRequest = await pendingOf('forge');
    const briefRequest = await pendingOf('brief');

    // No token, a wrong token (same length and not), a token in the wrong scheme: 401, logged.
    for (const authorization of [
      undefined,
      'Bearer wrong',
      `Bearer ${TOKEN.replace(/.$/, 'X')}`,
      `Basic ${TOKEN}`,
      TOKEN,
    ]) {
      for (const decision of ['approve', 'deny'] as const) {
        const response = await decide(daemon.url, forgeRequest, decision, authorization);
        expect(response.status, `${decision} with ${authorization ?? 'no authorization'}`).toBe(
          401,
        );
      }
    }
    await waitFor(
      () => (daemon.output().match(/approval refused: not authorized/g) ?? []).length >= 10,
      10_000,
      'each unauthorized attempt logged',
    );
    expect(
      (await getStatus(daemon.url)).agents.find((item) => item.agent === 'forge')?.pending_approval,
    ).toBe(forgeRequest);
    await notRevived('forge');

    // A valid token claiming to be someone else: the decision would be recorded under the
    // token's identity, so a claimed `by` is refused (400) and nothing is decided.
    const claimed = await decide(daemon.url, forgeRequest, 'approve', `Bearer ${TOKEN}`, {
      by: 'mallory',
    });
    expect(claimed.status).toBe(400);
    await notRevived('forge');

    // An id nobody issued.
    expect((await decide(daemon.url, 'forged-0000', 'approve', `Bearer ${TOKEN}`)).status).toBe(
      404,
    );

    // The expired request: once it expired, approving it is refused and the agent stays down.
    await waitFor(
      async () => !(await getStatus(daemon.url)).approvals.some((item) => item.id === briefRequest),
      30_000,
      'brief’s request to expire',
    );
    // (The agent's status keeps `pending_approval` naming the expired request: reported, not asserted here.)
    expect(
      (await getStatus(daemon.url)).agents.find((item) => item.agent === 'brief')?.last_decision
        ?.action,
    ).toBe('record_only');
    const late = await decide(daemon.url, briefRequest, 'approve', `Bearer ${TOKEN}`);
    expect(late.status).toBe(409);
    expect(((await late.json()) as { reason?: string }).reason).toBeDefined();
    await notRevived('brief');

    // The genuine approval revives forge once; the replay (approve or deny) is refused and changes nothing.
    expect((await decide(daemon.url, forgeRequest, 'approve', `Bearer ${TOKEN}`)).status).toBe(200);
    const revived = await healthy('forge');
    expect(revived).not.toBe(forgePid);
    for (const decision of ['approve', 'deny', 'approve'] as const)
      expect((await decide(daemon.url, forgeRequest, decision, `Bearer ${TOKEN}`)).status).toBe(
        409,
      );
    // Still one forge, the same one, revived once; brief still down.
    await waitFor(async () => (await revivals('forge')) === 1, 10_000, 'forge revived once');
    expect((await liveAgents(fleet.marker)).get('forge')).toEqual([revived]);
    expect((await getStatus(daemon.url)).agents.find((item) => item.agent === 'forge')?.pid).toBe(
      revived,
    );
    await notRevived('brief');
    await stopDaemon(daemon);
    expect(await revivals('forge')).toBe(1);
  });
});
