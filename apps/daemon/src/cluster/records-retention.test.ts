import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  natsInstalled,
  startNatsCluster,
  tempDir,
  waitFor,
  type TestNatsCluster,
} from '@pit/test-kit';
import type { AgentState } from '@pit/cell-spec';
import { silentLogger } from '../logger.js';
import { RECORDS_BUCKET } from './agent-records.js';
import { putCellDefinition } from './cell-store.js';
import { openCoordination, OWNERS_BUCKET, ownerKey, type Coordination } from './coordination.js';
import { RECORDS_RETENTION_MS, sweepRecords } from './records-retention.js';

const installed = natsInstalled('the shared records retention tests');

const DAY_MS = 24 * 60 * 60 * 1000;
const stoppedState: AgentState = {
  health: 'unknown',
  revive_attempts: 0,
  restarts: [],
  stopped: { at: '2026-11-20T00:00:00.000Z', by: 'operator' },
};

describe.skipIf(!installed)('retention of the shared agent records (real NATS JetStream)', () => {
  let cluster: TestNatsCluster;
  const opened: Coordination[] = [];
  // One lease for every host: the first to open the hosts bucket sets its TTL.
  const open = async (hostId: string, options: { lagMs?: number } = {}) => {
    const lag = options.lagMs ?? 0;
    const coordination = await openCoordination({
      servers: cluster.urls,
      hostId,
      leaseTtlMs: 1_500,
      requestTimeoutMs: 2_000,
      // A clock `lag` behind: what this host writes looks that old to the sweeper.
      now: () => performance.timeOrigin + performance.now() - lag,
    });
    opened.push(coordination);
    return coordination;
  };
  /** Claims the agent, writes its record under the claim's epoch, and (unless `keep`) releases it. */
  const writeRecord = async (host: Coordination, agent: string, keep = false) => {
    const claim = await host.claim(agent);
    if (!claim.ok) throw new Error(`${host.hostId} could not claim ${agent}: ${claim.message}`);
    expect(await host.records.write(agent, claim.epoch, stoppedState)).toEqual({ ok: true });
    if (!keep) expect(await host.release(agent, claim.epoch)).toBe(true);
    return claim.epoch;
  };
  /** A bucket's subjects (the records' by default): a removed record leaves no delete marker behind. */
  const storedKeys = async (bucket = RECORDS_BUCKET) => {
    const nc = await connect({ servers: cluster.urls });
    try {
      const jsm = await jetstreamManager(nc);
      const prefix = `$KV.${bucket}.`;
      const info = await jsm.streams.info(`KV_${bucket}`, {
        subjects_filter: `${prefix}>`,
      });
      return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
    } finally {
      await nc.close();
    }
  };

  beforeAll(async () => {
    cluster = await startNatsCluster(await tempDir('pit-nats-records-'));
  }, 150_000);
  afterAll(async () => {
    await Promise.all(
      opened.map((coordination) => coordination.close({ leave: false }).catch(() => {})),
    );
    await cluster?.stop();
  });

  it('removes only the records nothing anchors (no owner, not configured, no cell in the store, older than the retention), fenced, marker included', async () => {
    const sweeper = await open('sweep-a');
    // Its writes are 8 days old by the sweeper's clock: past the 7-day retention.
    const old = await open('sweep-old', { lagMs: 8 * DAY_MS });
    // A host that held an agent and died without leaving: its owner record stays until a takeover.
    const dead = await open('sweep-dead', { lagMs: 8 * DAY_MS });
    const keptCell = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    const goneCell = '1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    const agents = {
      removedFromConfig: 'host/gone',
      goneCellAgent: `${goneCell}/forge`,
      ownedByLiveHost: 'host/owned',
      ownedByDeadHost: 'host/dead-owner',
      configuredHere: 'host/configured',
      inKnownCell: `${keptCell}/forge`,
      recent: 'host/recent',
      dotted: 'host/v1.2',
    };
    await writeRecord(old, agents.removedFromConfig);
    await writeRecord(old, agents.goneCellAgent);
    await writeRecord(old, agents.dotted);
    await writeRecord(old, agents.ownedByLiveHost, true);
    await writeRecord(dead, agents.ownedByDeadHost, true);
    await writeRecord(old, agents.configuredHere);
    await writeRecord(old, agents.inKnownCell);
    await writeRecord(sweeper, agents.recent);
    expect(
      await putCellDefinition(
        sweeper.cellStore,
        {
          uuid: keptCell,
          manifest: {
            mission: 'kept',
            created_at: '2026-11-20T00:00:00.000Z',
            created_by: 'test',
          },
          agents: [{ name: 'forge', role: 'lead' }],
        },
        'sweep-old',
      ),
    ).toBe(true);
    await dead.close({ leave: false });
    await waitFor(
      async () => !(await sweeper.liveHosts()).some((lease) => lease.host === 'sweep-dead'),
      15_000,
      "sweep-dead's lease to expire",
    );

    const result = await sweepRecords({
      coordination: sweeper,
      configured: new Set([agents.configuredHere]),
      cellKnown: async (uuid) => {
        const info = await sweeper.cellStore.info(uuid);
        return info !== null && !info.deleted;
      },
      live: new Set((await sweeper.liveHosts()).map((lease) => lease.host)),
      retentionMs: RECORDS_RETENTION_MS,
      now: Date.now,
      logger: silentLogger,
    });

    const removed = [agents.removedFromConfig, agents.goneCellAgent, agents.dotted];
    expect([...result.removed].sort()).toEqual([...removed].sort());
    expect(result.kept).toBe(5);
    for (const agent of removed) {
      expect(await sweeper.records.read(agent)).toBeUndefined();
      // The sweeper's claim was released: nobody owns it.
      expect(await sweeper.owner(agent)).toBeUndefined();
    }
    for (const agent of [
      agents.ownedByLiveHost,
      agents.ownedByDeadHost,
      agents.configuredHere,
      agents.inKnownCell,
      agents.recent,
    ])
      expect((await sweeper.records.read(agent))?.state.stopped).toEqual(stoppedState.stopped);
    const stored = await storedKeys();
    for (const agent of removed) expect(stored).not.toContain(ownerKey(agent));
    expect(stored).toContain(ownerKey(agents.recent));

    // An agent taken up again after its record was removed writes a new one.
    await writeRecord(sweeper, agents.removedFromConfig);
    expect(await sweeper.records.read(agents.removedFromConfig)).toMatchObject({
      host: 'sweep-a',
    });
  }, 60_000);

  it('refuses a removal under an older epoch than the owner record’s or the record’s', async () => {
    const a = await open('fence-a');
    const b = await open('fence-b');
    const agent = 'host/fenced-remove';
    const epochA = await writeRecord(a, agent);
    // b owns it now, under a newer epoch, and has not written the record yet.
    const claimB = await b.claim(agent);
    expect(claimB.ok).toBe(true);
    const epochB = claimB.ok ? claimB.epoch : 0;
    expect(await a.records.remove(agent, epochA)).toEqual({
      ok: false,
      reason: 'stale_epoch',
      current: expect.objectContaining({ host: 'fence-b', epoch: epochB }),
    });
    expect(await b.records.write(agent, epochB, stoppedState)).toEqual({ ok: true });
    await b.release(agent, epochB);
    // No owner any more: the record's own epoch still refuses the older one.
    expect(await a.records.remove(agent, epochA)).toMatchObject({
      ok: false,
      reason: 'stale_epoch',
      current: { host: 'fence-b', epoch: epochB },
    });
    expect(await a.records.read(agent)).toMatchObject({ host: 'fence-b', epoch: epochB });
    // The sweep's claim is only of an agent nobody owns, this host included.
    const held = await a.claim(agent);
    expect(held.ok).toBe(true);
    expect(await a.claim(agent, { unowned: true })).toMatchObject({
      ok: false,
      reason: 'owned',
      owner: { host: 'fence-a' },
    });
    await a.release(agent, held.ok ? held.epoch : 0);
    // Under a newer epoch it goes, and a second removal finds nothing.
    const claimA = await a.claim(agent, { unowned: true });
    expect(claimA.ok).toBe(true);
    const epochA2 = claimA.ok ? claimA.epoch : 0;
    expect(await a.records.remove(agent, epochA2)).toEqual({ ok: true, removed: true });
    expect(await a.records.remove(agent, epochA2)).toEqual({ ok: true, removed: false });
    expect(await a.records.read(agent)).toBeUndefined();
  }, 40_000);

  it('purges the delete markers releases leave in pit_owners once old enough, never an owner record', async () => {
    const host = await open('markers-a');
    const released = 'host/marker-released';
    const reclaimed = 'host/marker-reclaimed';
    const held = 'host/marker-held';
    const claimOf = async (agent: string) => {
      const claim = await host.claim(agent);
      if (!claim.ok) throw new Error(`cannot claim ${agent}: ${claim.message}`);
      return claim.epoch;
    };
    expect(await host.release(released, await claimOf(released))).toBe(true);
    expect(await host.release(reclaimed, await claimOf(reclaimed))).toBe(true);
    const reclaimedEpoch = await claimOf(reclaimed);
    const heldEpoch = await claimOf(held);
    // Every key released (a stop, a sweep's own claim) leaves a marker that nats-server 2.9 keeps.
    expect(await storedKeys(OWNERS_BUCKET)).toContain(ownerKey(released));

    // Younger than the threshold: kept.
    expect(await host.purgeReleased(60 * 60 * 1000)).toBe(0);
    expect(await storedKeys(OWNERS_BUCKET)).toContain(ownerKey(released));

    const purged = await host.purgeReleased(0);
    expect(purged).toBeGreaterThanOrEqual(1);
    const stored = await storedKeys(OWNERS_BUCKET);
    expect(stored).not.toContain(ownerKey(released));
    // Owner records stay, with their epochs, and a later claim still counts on from them.
    expect(await host.owner(reclaimed)).toMatchObject({ host: 'markers-a', epoch: reclaimedEpoch });
    expect(await host.owner(held)).toMatchObject({ host: 'markers-a', epoch: heldEpoch });
    const again = await claimOf(released);
    expect(again).toBeGreaterThan(heldEpoch);
    expect(await host.isCurrent(released, again)).toBe(true);
  }, 40_000);
});
