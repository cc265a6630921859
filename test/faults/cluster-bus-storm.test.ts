/**
 * The mission bus of a clustered daemon through a revive storm and the loss of a NATS node
 * (issue #16), with real processes only: a 3-node `nats-server` cluster on 127.0.0.1, three
 * `pit daemon`s, and a cell on host-a whose four agents publish numbered messages on their
 * mission's bus (replicated JetStream stream) through host-a's WebSocket bus, with the credentials
 * and `PIT_EPOCH` the daemon gave them. Each agent resumes from the last number the bus
 * acknowledged, publishing it again under the same event id when it is not sure. All four are
 * SIGKILLed at once and a NATS node is killed with them: every agent must run again exactly once
 * (never two live copies, one revive each), and the mission's log must hold every number of
 * every agent exactly once, in order, each event with the epoch of the incarnation that wrote it.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { provisionCell } from '@pit/cell-spec';
import {
  natsInstalled,
  startNatsCluster,
  tempDir,
  waitFor,
  type TestNatsCluster,
} from '@pit/test-kit';
import {
  cellEvents,
  cleanup,
  MARKER_FLAG,
  startDaemon,
  trackMarker,
  type DaemonProcess,
} from './harness.js';
import {
  clusterHostToml,
  runningOnce,
  startSampler,
  stopHosts,
  type Incarnation,
} from './cluster-hosts.js';
import { busLog, publisherScript, reached } from './cluster-bus.js';

const installed = natsInstalled('the cluster bus storm test');

/**
 * The host lease T, s: longer than NATS takes to elect new leaders after a node dies (2–4 s), so
 * no host fences itself (at 2T/3 without a renewal) and every revive here is one of the storm's.
 * With T = 3 s a host sometimes fenced, stopped its agents and revived them again, as designed.
 */
const LEASE_S = 10;
const CELL = '7d2e9c41-6a5b-4c3d-9e8f-1a2b3c4d5e6f';
const AGENTS = ['pub1', 'pub2', 'pub3', 'pub4'];

describe.skipIf(!installed)('the mission bus through a revive storm and a NATS node kill', () => {
  let nats: TestNatsCluster | undefined;
  let hosts: Array<{ id: string; configPath: string; daemon?: DaemonProcess }> = [];
  let sampler: ReturnType<typeof startSampler> | undefined;

  afterEach(async (test) => {
    await sampler?.stop();
    sampler = undefined;
    await stopHosts(hosts, test.task.result?.state === 'fail');
    hosts = [];
    await nats?.stop();
    await cleanup();
  }, 60_000);

  it('kill -9 of every publishing agent and of a NATS node at once: each agent revived exactly once; every number of every agent in the log once, in order, under its incarnation’s epoch', async () => {
    nats = await startNatsCluster(await tempDir('pit-busstorm-nats-'), 3);
    const shared = await tempDir('pit-busstorm-');
    const marker = `busstorm-${process.pid}-${Date.now().toString(36)}`;
    trackMarker(marker);
    const script = join(shared, 'publisher.mjs');
    await fs.writeFile(script, publisherScript());
    for (const id of ['host-a', 'host-b', 'host-c']) {
      const base = join(shared, id);
      await fs.mkdir(join(base, 'missions'), { recursive: true });
      const lines = [
        ...clusterHostToml({ servers: nats.urls, hostId: id, leaseS: LEASE_S, bus: true }),
        '[policy.defaults]',
        'rollback_before_restart = false',
        'backoff = { initial = 0, jitter = 0 }',
        '[policy.fleet_brake]',
        'enabled = false',
        ...AGENTS.flatMap((name) => [
          `[agents.${name}]`,
          `argv = ["${process.execPath}", "${script}", "${MARKER_FLAG}", "${marker}:${name}"]`,
          'startup_grace_s = 10',
          'stop_grace_s = 2',
        ]),
      ];
      const configPath = join(base, 'pit.toml');
      await fs.writeFile(configPath, lines.join('\n'), { mode: 0o600 });
      hosts.push({ id, configPath });
    }
    const cellDir = (
      await provisionCell(join(shared, 'host-a', 'missions'), {
        uuid: CELL,
        mission: 'count out loud',
        created_by: 'test',
        agents: AGENTS.map((name) => ({ name, role: 'counter' })),
      })
    ).dir;
    for (const host of hosts) host.daemon = await startDaemon(host.configPath);
    sampler = startSampler(marker);

    const everyOnce = async (): Promise<Map<string, Incarnation> | undefined> => {
      const found = new Map<string, Incarnation>();
      for (const agent of AGENTS) {
        const incarnation = await runningOnce(marker, agent);
        if (!incarnation) return undefined;
        found.set(agent, incarnation);
      }
      return found;
    };
    const before = await waitFor(everyOnce, 30_000, 'every publisher running once');
    const atKill = await waitFor(
      async () => {
        const counts = await reached(cellDir);
        return AGENTS.every((agent) => (counts.get(agent) ?? 0) >= 10) ? counts : undefined;
      },
      30_000,
      'every publisher publishing',
    );

    // The storm: every publisher SIGKILLed, and a NATS node with them.
    const killedAt = Date.now();
    for (const incarnation of before.values()) process.kill(incarnation.pid, 'SIGKILL');
    await nats.kill(0);

    const after = await waitFor(
      async () => {
        const now = await everyOnce();
        return now && AGENTS.every((agent) => now.get(agent)!.pid !== before.get(agent)!.pid)
          ? now
          : undefined;
      },
      60_000,
      'every publisher running again, once',
    );
    await waitFor(
      async () => {
        const counts = await reached(cellDir);
        return AGENTS.every((agent) => (counts.get(agent) ?? 0) >= (atKill.get(agent) ?? 0) + 10)
          ? true
          : undefined;
      },
      60_000,
      'every publisher publishing again, past where it was',
    );

    // Each agent revived exactly once, by host-a, under a newer epoch.
    const revives = (await cellEvents(cellDir)).filter(
      (event) =>
        (event.event === 'agent_revived' || event.event === 'agent_started') &&
        Date.parse(event.ts) >= killedAt,
    );
    for (const agent of AGENTS) {
      const own = revives.filter((event) => (event as { agent?: string }).agent === agent);
      expect(own, `${agent}: one revive, not ${JSON.stringify(own)}`).toHaveLength(1);
      expect(after.get(agent)!.host).toBe('host-a');
      expect(after.get(agent)!.epoch).toBeGreaterThan(before.get(agent)!.epoch);
    }

    // The log: sequence numbers without a gap, every event id once, each agent's numbers 1, 2, 3, …
    // in order, and each event under the epoch of the incarnation that wrote it.
    const log = await busLog(cellDir);
    expect(log.map((event) => event.seq)).toEqual(log.map((_, index) => log[0]!.seq + index));
    expect(new Set(log.map((event) => event.id)).size).toBe(log.length);
    for (const agent of AGENTS) {
      const own = log.filter((event) => event.sender === agent && event.topic === 'count');
      expect(own.map((event) => event.payload?.n)).toEqual(own.map((_, index) => index + 1));
      const epochs = own.map((event) => event.epoch);
      expect(new Set(epochs)).toEqual(new Set([before.get(agent)!.epoch, after.get(agent)!.epoch]));
      expect(epochs).toEqual([...epochs].sort((a, b) => a! - b!));
    }
    expect(sampler!.doubles()).toEqual([]);
  }, 240_000);
});
