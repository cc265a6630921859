import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import {
  natsInstalled,
  startNatsCluster,
  tempDir,
  waitFor,
  type TestNatsCluster,
} from '@pit/test-kit';
import type { AgentState } from '@pit/cell-spec';
import { RECORDS_BUCKET } from './agent-records.js';
import { putCellDefinition, type CellDefinition, type CellRecord } from './cell-store.js';
import { joinCluster, type ClusterMember } from './cluster-member.js';
import {
  CELLS_STORE,
  OWNERS_BUCKET,
  openCoordination,
  ownerKey,
  type Coordination,
} from './coordination.js';

const installed = natsInstalled('the cluster member records tests');

const stoppedState: AgentState = {
  health: 'unknown',
  revive_attempts: 0,
  restarts: [],
  stopped: { at: '2026-12-04T00:00:00.000Z', by: 'operator' },
};

describe.skipIf(!installed)(
  'a cluster member’s shared records and cell listings (real NATS)',
  () => {
    let cluster: TestNatsCluster;
    let nc: NatsConnection;
    const members: ClusterMember[] = [];
    const coordinations: Coordination[] = [];
    /** Whether the KV `bucket` holds a value (not a delete marker) for the agent. */
    const present = async (bucket: string, agent: string) => {
      const entry = await (await new Kvm(nc).open(bucket)).get(ownerKey(agent));
      return entry !== null && entry.operation === 'PUT' && entry.length > 0;
    };

    beforeAll(async () => {
      cluster = await startNatsCluster(await tempDir('pit-nats-member-records-'));
      nc = await connect({ servers: cluster.urls });
    }, 150_000);
    // Each test's hosts leave: the next test's hosts are then the only live ones.
    afterEach(async () => {
      await Promise.all(members.splice(0).map((member) => member.close().catch(() => {})));
      await Promise.all(
        coordinations.splice(0).map((coordination) => coordination.close().catch(() => {})),
      );
    });
    afterAll(async () => {
      await nc?.close();
      await cluster?.stop();
    });

    it('lets go of an agent that left its config once no process of it runs here; its shared record goes after the retention, a configured one stays', async () => {
      const member = await joinCluster({
        servers: cluster.urls,
        hostId: 'retain-a',
        leaseMs: 1_500,
        replicas: 3,
        onPartition: 'keep',
        recordsRetentionMs: 1,
      });
      members.push(member);
      const [kept, removed, running] = ['host/kept', 'host/removed', 'host/running'];
      let placeable = [kept, removed, running];
      const letGo: string[] = [];
      member.onLetGo((key) => void letGo.push(key));
      member.start({
        placeable: () => placeable,
        resync: async () => {},
        stopLocal: async () => {},
      });
      await waitFor(
        () => placeable.every((agent) => member.supervises(agent, false)),
        15_000,
        'retain-a to hold the three agents',
      );
      for (const agent of placeable) await member.share(agent, stoppedState);
      for (const agent of placeable) expect(await present(RECORDS_BUCKET, agent)).toBe(true);
      member.started({ key: running, pid: process.pid, startTime: 0 });
      // Both leave the config; one still has a process here.
      placeable = [kept];
      await waitFor(
        async () =>
          !(await present(OWNERS_BUCKET, removed)) && !(await present(RECORDS_BUCKET, removed)),
        15_000,
        'the removed agent’s owner record, then its shared record, to go',
      );
      expect(member.supervises(running, false)).toBe(true);
      expect(await present(OWNERS_BUCKET, running)).toBe(true);
      expect(await present(RECORDS_BUCKET, running)).toBe(true);
      // Its process ends: it is let go, and its record goes at a later sweep.
      member.ended(running);
      await waitFor(
        async () => !member.supervises(running, false) && !(await present(RECORDS_BUCKET, running)),
        15_000,
        'the agent whose process ended to be let go and its record to go',
      );
      expect(letGo).toEqual([removed, running]);
      expect(member.supervises(kept, false)).toBe(true);
      expect(await present(OWNERS_BUCKET, kept)).toBe(true);
      expect(await present(RECORDS_BUCKET, kept)).toBe(true);
      expect((await member.sharedRecord(kept))?.state.stopped).toEqual(stoppedState.stopped);
    }, 60_000);

    it('lists the cell object store only when a takeover may be due, and still takes a dead host’s cell over', async () => {
      const uuid = '3a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
      const cell: CellDefinition = {
        uuid,
        manifest: { mission: 'listed', created_at: '2026-12-04T00:00:00.000Z', created_by: 'test' },
        agents: [{ name: 'forge', role: 'lead' }],
      };
      // Every listing of the store creates a consumer on its stream; every placement pass reads
      // the hosts bucket's stream info once: both requests seen on the wire.
      let listings = 0;
      let passes = 0;
      const subscriptions = [
        nc.subscribe(`$JS.API.CONSUMER.CREATE.OBJ_${CELLS_STORE}`, {
          callback: () => void listings++,
        }),
        nc.subscribe(`$JS.API.CONSUMER.CREATE.OBJ_${CELLS_STORE}.>`, {
          callback: () => void listings++,
        }),
        nc.subscribe('$JS.API.STREAM.INFO.KV_pit_hosts', { callback: () => void passes++ }),
      ];
      try {
        await nc.flush();
        const host = await openCoordination({
          servers: cluster.urls,
          hostId: 'list-a',
          // 3 s, not less: a renewal late by a lease on a loaded machine would make list-a look
          // gone for a moment, and list-b list (or even take over) in the steady state.
          leaseTtlMs: 3_000,
        });
        coordinations.push(host);
        const claim = await host.claim(`${uuid}/forge`);
        expect(claim.ok).toBe(true);
        expect(await putCellDefinition(host.cellStore, cell, 'list-a')).toBe(true);

        const member = await joinCluster({
          servers: cluster.urls,
          hostId: 'list-b',
          leaseMs: 3_000,
          replicas: 3,
          onPartition: 'keep',
        });
        members.push(member);
        const local: CellDefinition[] = [];
        const materialised: Array<{ record: CellRecord; from: string; at: number }> = [];
        member.start({
          placeable: () => [],
          resync: async () => {},
          stopLocal: async () => {},
          cells: () => local,
          materialise: async (record, _archive, from) => {
            materialised.push({ record, from, at: Date.now() });
            local.push({ uuid: record.uuid, manifest: record.cell, agents: record.agents });
            return record.agents.map((agent) => agent.name);
          },
        });
        // Steady state: both hosts live, list-a holds its cell. Nothing to take over.
        await waitFor(() => passes >= 8, 20_000, 'list-b to make eight placement passes');
        expect(listings).toBeGreaterThanOrEqual(1);
        expect(listings).toBeLessThanOrEqual(2);
        expect(materialised).toEqual([]);

        // list-a dies without leaving: its lease expires, list-b lists again and takes the cell.
        const died = Date.now();
        await host.close({ leave: false });
        coordinations.splice(coordinations.indexOf(host), 1);
        await waitFor(() => materialised.length > 0, 20_000, 'list-b to take the cell over');
        expect(materialised).toHaveLength(1);
        expect(materialised[0]!).toMatchObject({ from: 'list-a', record: { uuid } });
        // Within 2× the detection threshold (the lease, 3 s) after it expired, with slack for a loaded machine.
        expect(materialised[0]!.at - died).toBeLessThan(3_000 + 2 * 3_000 + 2_000);
        expect(member.supervises(`${uuid}/forge`, false)).toBe(true);
        // Settled again: passes go on without listing.
        const settledListings = listings;
        const settledPasses = passes;
        await waitFor(() => passes >= settledPasses + 6, 20_000, 'six more passes');
        expect(listings - settledListings).toBeLessThanOrEqual(1);
      } finally {
        for (const subscription of subscriptions) subscription.unsubscribe();
      }
    }, 90_000);
  },
);
