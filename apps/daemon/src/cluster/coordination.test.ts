import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  natsInstalled,
  startNatsCluster,
  tempDir,
  waitFor,
  type TestNatsCluster,
} from '@pit/test-kit';
import { silentLogger, type Logger } from '../logger.js';
import { openCoordination, rankHosts, type Coordination } from './coordination.js';

const installed = natsInstalled('the cluster coordination tests');

describe.skipIf(!installed)(
  'cluster coordination over a real 3-node NATS JetStream cluster',
  () => {
    let cluster: TestNatsCluster;
    const opened: Coordination[] = [];
    const open = async (hostId: string, leaseTtlMs = 1_500) => {
      const coordination = await openCoordination({
        servers: cluster.urls,
        hostId,
        leaseTtlMs,
        requestTimeoutMs: 1_000,
      });
      opened.push(coordination);
      return coordination;
    };

    beforeAll(async () => {
      cluster = await startNatsCluster(await tempDir('pit-nats-'));
    }, 150_000);
    afterAll(async () => {
      await Promise.all(
        opened.map((coordination) => coordination.close({ leave: false }).catch(() => {})),
      );
      await cluster?.stop();
    });

    it('every host sees the live hosts; a host that stops renewing is gone after the lease', async () => {
      const a = await open('lease-a');
      const b = await open('lease-b');
      await waitFor(
        async () => (await a.liveHosts()).some((lease) => lease.host === 'lease-b'),
        10_000,
        'lease-a to see lease-b',
      );
      // lease-b dies without leaving: its key expires with the bucket TTL.
      await b.close({ leave: false });
      await waitFor(
        async () => !(await a.liveHosts()).some((lease) => lease.host === 'lease-b'),
        15_000,
        "lease-b's lease to expire",
      );
      expect((await a.liveHosts()).some((lease) => lease.host === 'lease-a')).toBe(true);
    }, 40_000);

    it('of many concurrent claims on one agent exactly one wins; the winner re-claims with a higher epoch', async () => {
      const hosts = await Promise.all(['race-a', 'race-b', 'race-c'].map((id) => open(id)));
      await waitFor(
        async () =>
          (await hosts[0]!.liveHosts()).filter((l) => l.host.startsWith('race-')).length === 3,
        10_000,
        'the three hosts to be live',
      );
      const agent = '0c6b3f7e-1111-4222-8333-944455556666/forge';
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, index) => hosts[index % 3]!.claim(agent)),
      );
      const winners = results.filter((result) => result.ok);
      // One host wins; a host may win twice only by re-claiming what it already owns (a later
      // incarnation on the same host), never two hosts.
      const owner = await hosts[0]!.owner(agent);
      expect(owner).toBeDefined();
      const owningHost = hosts.find((host) => host.hostId === owner!.host)!;
      expect(winners.length).toBeGreaterThanOrEqual(1);
      for (const [index, result] of results.entries())
        if (result.ok) expect(hosts[index % 3]!.hostId).toBe(owner!.host);
        else expect(['owned', 'lost']).toContain(result.reason);
      const epochs = winners.map((result) => (result.ok ? result.epoch : 0));
      expect(new Set(epochs).size).toBe(epochs.length);
      expect(owner!.epoch).toBe(Math.max(...epochs));

      const again = await owningHost.claim(agent);
      expect(again.ok && again.epoch > owner!.epoch).toBe(true);
      expect(await owningHost.isCurrent(agent, owner!.epoch)).toBe(false);
      expect(await owningHost.isCurrent(agent, again.ok ? again.epoch : 0)).toBe(true);
      // A live owner keeps it: the others are refused.
      const other = hosts.find((host) => host !== owningHost)!;
      expect(await other.claim(agent)).toMatchObject({ ok: false, reason: 'owned' });
    }, 40_000);

    it('takes over an agent whose owner host has expired, with a higher epoch; the old owner is no longer current', async () => {
      const old = await open('take-old');
      const heir = await open('take-heir');
      const agent = '0c6b3f7e-1111-4222-8333-944455556666/anvil';
      const first = await old.claim(agent);
      expect(first.ok).toBe(true);
      expect(await heir.claim(agent)).toMatchObject({ ok: false, reason: 'owned' });
      await old.close({ leave: false });
      const taken = await waitFor(
        async () => {
          const result = await heir.claim(agent);
          return result.ok ? result : undefined;
        },
        15_000,
        'the heir to take the agent over once the old lease expired',
      );
      expect(taken.takeover).toBe(true);
      expect(taken.epoch).toBeGreaterThan(first.ok ? first.epoch : 0);
      expect((await heir.owner(agent))?.host).toBe('take-heir');
    }, 40_000);

    it('a live set read before the owner joined does not let a host take a live owner’s agent', async () => {
      const early = await open('stale-a');
      // Read before stale-b exists: a placement pass holds such a set for its whole length.
      const staleLive = new Set((await early.liveHosts()).map((lease) => lease.host));
      const late = await open('stale-b');
      expect(staleLive.has('stale-b')).toBe(false);
      const agent = 'host/stale-set';
      const first = await late.claim(agent);
      expect(first.ok).toBe(true);
      const second = await early.claim(agent, { live: staleLive });
      expect(second).toMatchObject({ ok: false, reason: 'owned', owner: { host: 'stale-b' } });
      expect(await late.isCurrent(agent, (first as { epoch: number }).epoch)).toBe(true);
    }, 30_000);

    it('keeps granting after one NATS node is killed, and a release only works at the current epoch', async () => {
      const host = await open('survivor', 3_000);
      const agent = '0c6b3f7e-1111-4222-8333-944455556666/quill';
      await cluster.kill(0);
      try {
        const claimed = await waitFor(
          async () => {
            const result = await host.claim(agent);
            return result.ok ? result : undefined;
          },
          20_000,
          'a claim to succeed with one node of three down',
        );
        expect(await host.release(agent, claimed.epoch - 1)).toBe(false);
        expect(await host.release(agent, claimed.epoch)).toBe(true);
        expect(await host.owner(agent)).toBeUndefined();
      } finally {
        await cluster.start(0);
      }
    }, 60_000);

    it('a host cut off from NATS fences itself within the lease and claims nothing; it rejoins when NATS is back', async () => {
      const fencedAt: number[] = [];
      const rejoined: number[] = [];
      const host = await open('cutoff', 1_500);
      host.onFence(() => fencedAt.push(Date.now()));
      host.onRejoin(() => rejoined.push(Date.now()));
      await waitFor(() => !host.fenced(), 5_000, 'the host to hold its lease');
      const before = rejoined.length;
      await Promise.all([0, 1, 2].map((index) => cluster.kill(index)));
      const cut = Date.now();
      try {
        await waitFor(() => fencedAt.length > 0, 10_000, 'the host to fence itself');
        // Its fence timer fires 2T/3 (1 s) after the last renewal, which landed before the cut;
        // the rest of the bound is for a loaded machine's late timers.
        expect(fencedAt[0]! - cut).toBeLessThan(2_500);
        expect(await host.claim('0c6b3f7e-1111-4222-8333-944455556666/ink')).toMatchObject({
          ok: false,
          reason: 'fenced',
        });
      } finally {
        await Promise.all([0, 1, 2].map((index) => cluster.start(index)));
      }
      await waitFor(() => rejoined.length > before, 30_000, 'the host to rejoin');
      expect(host.fenced()).toBe(false);
    }, 90_000);

    it('a renewal that failed is tried again at once: NATS back within 2T/3 of the last renewal, the lease never lapses at the fence', async () => {
      // T = 45 s: the first renewal after joining is due 15 s in, the fence 30 s in. Every node
      // is killed at once, so that renewal fails; the nodes are started again and the next try
      // must land while the last renewal still holds (the fence program kills this host's agents
      // when it no longer does). Waiting for the next tick instead (T/3 later, at the fence
      // itself) lets the lease lapse there.
      const said: string[] = [];
      const logger: Logger = {
        ...silentLogger,
        info: (message) => void said.push(message),
        warn: (message) => void said.push(message),
      };
      const renewals: Array<{ at: number; validMs: number }> = [];
      const host = await openCoordination({
        servers: cluster.urls,
        hostId: 'retry',
        leaseTtlMs: 45_000,
        requestTimeoutMs: 1_000,
        logger,
      });
      opened.push(host);
      host.onRenew((validMs) => void renewals.push({ at: performance.now(), validMs }));
      renewals.push({ at: performance.now(), validMs: host.safeForMs() });
      const fencedAt: number[] = [];
      host.onFence(() => fencedAt.push(Date.now()));
      await Promise.all([0, 1, 2].map((index) => cluster.kill(index)));
      try {
        await waitFor(
          () => said.includes('cluster lease not renewed: trying again'),
          25_000,
          'a renewal to fail',
        );
      } finally {
        await Promise.all([0, 1, 2].map((index) => cluster.start(index)));
      }
      await waitFor(() => renewals.length >= 2, 25_000, 'a renewal to land again');
      const [joined, next] = renewals;
      expect(next!.at - joined!.at, 'the renewal landed after the lease had lapsed').toBeLessThan(
        joined!.validMs,
      );
      expect(fencedAt).toEqual([]);
      expect(host.fenced()).toBe(false);
      expect(said).toContain('cluster lease renewed again');
      expect(
        said.filter((message) => message === 'cluster lease not renewed: trying again'),
      ).toHaveLength(1);
    }, 90_000);

    it("shares an agent's record across hosts; a write that carries an older epoch is refused", async () => {
      const a = await open('records-a', 60_000);
      const b = await open('records-b', 60_000);
      const agent = 'host/records-agent';
      const first = await a.claim(agent);
      expect(first.ok).toBe(true);
      const epochA = first.ok ? first.epoch : 0;
      const stopped = { at: new Date().toISOString(), by: 'operator' };
      expect(
        await a.records.write(agent, epochA, {
          health: 'healthy',
          revive_attempts: 0,
          restarts: [],
          pid: 4242,
          stopped,
        }),
      ).toEqual({ ok: true });
      // Another host reads what outlives the host: the stop, never the process.
      const read = await b.records.read(agent);
      expect(read).toMatchObject({ host: 'records-a', epoch: epochA });
      expect(read!.state.stopped).toEqual(stopped);
      expect(read!.state.pid).toBeUndefined();
      expect(read!.state.health).toBe('unknown');
      // b takes it over (a newer epoch): a's writes under its old epoch are refused from now on,
      // whether b has written a record yet or not.
      const owned = await b.claim(agent);
      expect(owned).toMatchObject({ ok: false, reason: 'owned' });
      await a.release(agent, epochA);
      const second = await b.claim(agent);
      expect(second.ok).toBe(true);
      const epochB = second.ok ? second.epoch : 0;
      const fresh = { health: 'unknown' as const, revive_attempts: 0, restarts: [] };
      expect(await a.records.write(agent, epochA, fresh)).toEqual({
        ok: false,
        reason: 'stale_epoch',
        current: expect.objectContaining({ host: 'records-b', epoch: epochB }),
      });
      expect(await b.records.write(agent, epochB, fresh)).toEqual({ ok: true });
      await b.release(agent, epochB);
      // With no owner any more, the record's own epoch still refuses the older writer.
      expect(await a.records.write(agent, epochA, { ...fresh, stopped })).toMatchObject({
        ok: false,
        reason: 'stale_epoch',
        current: { host: 'records-b', epoch: epochB },
      });
      expect((await a.records.read(agent))!.state.stopped).toBeUndefined();
    }, 40_000);

    it('ranks hosts for a takeover the same way everywhere', () => {
      const order = rankHosts('cell/forge', ['a', 'b', 'c', 'd']);
      expect(rankHosts('cell/forge', ['d', 'c', 'b', 'a'])).toEqual(order);
      expect(new Set(order).size).toBe(4);
      expect(rankHosts('cell/forge', order.slice(1))).toEqual(order.slice(1));
    });
  },
);

describe.skipIf(!installed)('opening coordination while the NATS cluster forms', () => {
  const recording = () => {
    const lines: string[] = [];
    const log = (level: string) => (message: string, fields?: Record<string, unknown>) =>
      void lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
    return {
      lines,
      logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    };
  };
  let cluster: TestNatsCluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('waits, saying so once, until a node that joins late lets the R3 buckets be placed', async () => {
    // Two nodes of three: they elect a meta leader, but an R3 bucket has no third peer yet
    // ("no suitable peers for placement"), as when daemons start with their NATS nodes.
    cluster = await startNatsCluster(await tempDir('pit-nats-forming-'), 3, { down: [2] });
    const { lines, logger } = recording();
    const opening = openCoordination({
      servers: cluster.urls.slice(0, 2),
      hostId: 'forming-a',
      leaseTtlMs: 1_500,
      requestTimeoutMs: 1_000,
      logger,
    });
    // Opening must still be waiting (not failed) when it says so.
    await Promise.race([
      opening,
      waitFor(
        () => lines.some((line) => line.includes('waiting for the NATS JetStream cluster')),
        15_000,
        'opening to wait for the cluster',
      ),
    ]);
    await cluster.start(2);
    const coordination = await opening;
    try {
      expect((await coordination.claim('host/late')).ok).toBe(true);
      expect(lines.filter((line) => line.includes('waiting for the NATS')).length).toBe(1);
      expect(
        lines.some((line) =>
          line.startsWith('info cluster: the NATS JetStream cluster has formed'),
        ),
      ).toBe(true);
    } finally {
      await coordination.close({ leave: false });
      await cluster.stop();
      cluster = undefined;
    }
  }, 60_000);

  it('fails, naming what it waited for, when the cluster does not form in time', async () => {
    cluster = await startNatsCluster(await tempDir('pit-nats-unformed-'), 3, { down: [2] });
    const startedAt = Date.now();
    await expect(
      openCoordination({
        servers: cluster.urls.slice(0, 2),
        hostId: 'unformed-a',
        leaseTtlMs: 1_500,
        requestTimeoutMs: 500,
        formingWaitMs: 2_000,
      }),
    ).rejects.toThrow(
      /did not form within 2000 ms \(could not create the bucket pit_hosts: .*(no suitable peers|timeout)/i,
    );
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    await cluster.stop();
    cluster = undefined;
  }, 60_000);
});
