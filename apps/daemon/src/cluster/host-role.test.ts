import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  natsInstalled,
  startNatsCluster,
  tempDir,
  waitFor,
  type TestNatsCluster,
} from '@pit/test-kit';
import { silentLogger } from '../logger.js';
import { openCoordination, type Coordination } from './coordination.js';
import { holdRole, roleKey, type HeldRole } from './host-role.js';

const installed = natsInstalled('the cluster role tests');

describe.skipIf(!installed)(
  'a role one host holds at a time, over a real 3-node NATS cluster',
  () => {
    let cluster: TestNatsCluster;
    const opened: Coordination[] = [];
    const roles: HeldRole[] = [];
    const LEASE_MS = 1_500;

    beforeAll(async () => {
      cluster = await startNatsCluster(await tempDir('pit-nats-role-'));
    }, 150_000);
    afterAll(async () => {
      await Promise.all(roles.map((role) => role.stop().catch(() => {})));
      await Promise.all(
        opened.map((coordination) => coordination.close({ leave: false }).catch(() => {})),
      );
      await cluster?.stop();
    });

    /** A host trying to hold `role`; `events` records its gains and losses in order. */
    const host = async (hostId: string, role: string) => {
      const coordination = await openCoordination({
        servers: cluster.urls,
        hostId,
        leaseTtlMs: LEASE_MS,
        requestTimeoutMs: 1_000,
      });
      opened.push(coordination);
      const events: string[] = [];
      const held = holdRole({
        coordination,
        role,
        everyMs: LEASE_MS / 3,
        logger: silentLogger,
        onGain: () => void events.push('gain'),
        onLose: () => void events.push('lose'),
      });
      roles.push(held);
      return { hostId, coordination, held, events };
    };

    it('exactly one of three hosts holds it; when the holder dies another takes it within the lease and a tick', async () => {
      const hosts = await Promise.all(
        ['role-a', 'role-b', 'role-c'].map((id) => host(id, 'poller')),
      );
      const holder = await waitFor(
        () => hosts.find((candidate) => candidate.held.held()),
        10_000,
        'a holder',
      );
      expect(hosts.filter((candidate) => candidate.held.held())).toHaveLength(1);
      expect((await holder.coordination.owner(roleKey('poller')))?.host).toBe(holder.hostId);

      // The holder dies without leaving: its lease key expires after T; a live host claims the role.
      const died = Date.now();
      await holder.coordination.close({ leave: false });
      const rest = hosts.filter((candidate) => candidate !== holder);
      // Within the lease and a tick (T + T/3 = 2 s here); the bound leaves a loaded machine room.
      const next = await waitFor(
        () => rest.find((candidate) => candidate.held.held()),
        4 * LEASE_MS + 2_000,
        'another host holding the role',
      );
      expect(Date.now() - died).toBeLessThan(4 * LEASE_MS + 2_000);
      expect(rest.filter((candidate) => candidate.held.held())).toHaveLength(1);
      expect(next.events).toEqual(['gain']);

      // A clean stop hands the role over at the next tick, not after a lease.
      await next.held.stop();
      expect(next.events).toEqual(['gain', 'lose']);
      const third = rest.find((candidate) => candidate !== next)!;
      // At its next tick (T/3) and a claim of a few R3 round trips: far less than the lease that
      // a death takes (above), with room for a loaded machine.
      await waitFor(
        () => (third.held.held() ? true : undefined),
        10_000,
        'the third host holding it',
      );
      expect(third.events).toEqual(['gain']);
    }, 40_000);

    it('a holder whose event loop stalled past its lease does not report the role held, before any timer of its own has run', async () => {
      const stalled = await host('role-stall', 'stall-poller');
      await waitFor(() => (stalled.held.held() ? true : undefined), 10_000, 'the role held');
      // The loop is blocked (a long GC, a swapped-out process) for the whole lease T: its key
      // has expired at the other hosts, which may claim the role now. No timer has run yet.
      const until = Date.now() + LEASE_MS + 100;
      while (Date.now() < until) {
        // blocking on purpose: this is the stall
      }
      expect(stalled.coordination.fenced()).toBe(true);
      expect(stalled.held.held()).toBe(false);
      expect(stalled.events).toEqual(['gain']);
      // Then the fence timer gives it up, and once its lease is renewed it holds the role again.
      await waitFor(
        () => (stalled.events.length >= 3 && stalled.held.held() ? true : undefined),
        10_000,
        'the role lost and held again',
      );
      expect(stalled.events).toEqual(['gain', 'lose', 'gain']);
    }, 30_000);
  },
);
