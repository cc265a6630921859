/**
 * A cell's mission bus through a cell takeover (issue #16), with real processes only: a 3-node
 * `nats-server` cluster on 127.0.0.1 and three `pit daemon`s. A cell on host-a has one agent that
 * publishes numbered messages on its mission's bus (a replicated JetStream stream) through
 * host-a's WebSocket bus, resuming from the last number acknowledged (kept in its workspace, so a
 * restored checkpoint sends it back a little). host-a's daemon is SIGKILLed: the cell is rebuilt
 * on a live host from its checkpoint, the agent runs there under a newer epoch and publishes
 * through that host's bus, and the mission's log, read on the new host, holds every number once,
 * in order, each under the epoch of the incarnation that wrote it.
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
  cleanup,
  killDaemon,
  MARKER_FLAG,
  startDaemon,
  trackMarker,
  type DaemonProcess,
} from './harness.js';
import { clusterHostToml, runningOnce, startSampler, stopHosts } from './cluster-hosts.js';
import { busLog, publisherScript, reached } from './cluster-bus.js';

const installed = natsInstalled('the cluster cell bus test');

/** The host lease T, s. */
const LEASE_S = 3;
const CELL = '3f6a1b2c-7d8e-4f90-a1b2-c3d4e5f6a7b8';
const AGENT = 'scribe';

describe.skipIf(!installed)(
  'a cell’s mission bus after its host dies, over a 3-node NATS cluster',
  () => {
    let nats: TestNatsCluster | undefined;
    let hosts: Array<{ id: string; base: string; configPath: string; daemon?: DaemonProcess }> = [];
    let sampler: ReturnType<typeof startSampler> | undefined;

    afterEach(async (test) => {
      await sampler?.stop();
      sampler = undefined;
      await stopHosts(hosts, test.task.result?.state === 'fail');
      hosts = [];
      await nats?.stop();
      await cleanup();
    }, 60_000);

    it('the agent publishes on through the new host’s bus: every number once, in order, under each incarnation’s epoch', async () => {
      nats = await startNatsCluster(await tempDir('pit-cellbus-nats-'), 3);
      const shared = await tempDir('pit-cellbus-');
      const marker = `cellbus-${process.pid}-${Date.now().toString(36)}`;
      trackMarker(marker);
      const script = join(shared, 'publisher.mjs');
      await fs.writeFile(script, publisherScript());
      for (const id of ['host-a', 'host-b', 'host-c']) {
        const base = join(shared, id);
        await fs.mkdir(join(base, 'missions'), { recursive: true });
        const lines = [
          ...clusterHostToml({
            servers: nats.urls,
            hostId: id,
            leaseS: LEASE_S,
            bus: true,
            checkpointEveryS: 1,
          }),
          `[agents.${AGENT}]`,
          `cell = "${CELL}"`,
          `argv = ["${process.execPath}", "${script}", "${MARKER_FLAG}", "${marker}:${AGENT}"]`,
          'startup_grace_s = 10',
          'stop_grace_s = 2',
        ];
        const configPath = join(base, 'pit.toml');
        await fs.writeFile(configPath, lines.join('\n'), { mode: 0o600 });
        hosts.push({ id, base, configPath });
      }
      const hostA = hosts[0]!;
      const cellA = (
        await provisionCell(join(hostA.base, 'missions'), {
          uuid: CELL,
          mission: 'count out loud',
          created_by: 'test',
          agents: [{ name: AGENT, role: 'counter' }],
        })
      ).dir;
      for (const host of hosts) host.daemon = await startDaemon(host.configPath);
      sampler = startSampler(marker);

      const before = await waitFor(
        async () => {
          const now = await runningOnce(marker, AGENT);
          return now?.host === hostA.id ? now : undefined;
        },
        30_000,
        `${AGENT} running once on ${hostA.id}`,
      );
      await waitFor(
        async () => {
          const n = (await reached(cellA)).get(AGENT) ?? 0;
          return n >= 20 ? n : undefined;
        },
        30_000,
        `${AGENT} publishing`,
      );
      // A checkpoint of the workspace (its .acked file) taken after that, in the object store.
      const puts = () =>
        hostA.daemon!.output().match(/checkpoint put in the object store/g)?.length ?? 0;
      const seen = puts();
      await waitFor(() => puts() > seen || undefined, 15_000, 'a checkpoint in the object store');

      await killDaemon(hostA.daemon!);
      hostA.daemon = undefined;
      const after = await waitFor(
        async () => {
          const now = await runningOnce(marker, AGENT);
          return now && now.host !== hostA.id ? now : undefined;
        },
        4 * LEASE_S * 1000,
        `${AGENT} running again on a live host`,
      );
      expect(after.epoch).toBeGreaterThan(before.epoch);
      const owner = hosts.find((host) => host.id === after.host)!;
      const cellB = join(owner.base, 'missions', CELL);
      // Past the numbers the old incarnation published: the new one repeats those under their
      // ids (stored once, under the old epoch) before it publishes numbers of its own.
      await waitFor(
        async () => {
          const fresh = (await busLog(cellB)).filter(
            (event) =>
              event.sender === AGENT && event.topic === 'count' && event.epoch === after.epoch,
          );
          return fresh.length >= 20 ? true : undefined;
        },
        30_000,
        `${AGENT} publishing new numbers through ${after.host}'s bus under epoch ${after.epoch}`,
      );

      // The log as the new host holds it: no gap in the sequence, every id once, the numbers
      // 1, 2, 3, … in order, each under the epoch of the incarnation that wrote it.
      const log = await busLog(cellB);
      expect(log.map((event) => event.seq)).toEqual(log.map((_, index) => log[0]!.seq + index));
      expect(new Set(log.map((event) => event.id)).size).toBe(log.length);
      const own = log.filter((event) => event.sender === AGENT && event.topic === 'count');
      expect(own.map((event) => event.payload?.n)).toEqual(own.map((_, index) => index + 1));
      const epochs = own.map((event) => event.epoch);
      expect(new Set(epochs)).toEqual(new Set([before.epoch, after.epoch]));
      expect(epochs).toEqual([...epochs].sort((a, b) => a! - b!));
      expect(sampler!.doubles()).toEqual([]);
    }, 180_000);
  },
);
