import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  natsInstalled,
  startNatsCluster,
  tempDir,
  waitFor,
  type TestNatsCluster,
} from '@pit/test-kit';
import {
  createDirectoryParticipantStore,
  createToken,
  MissionBus,
  type BusLogger,
} from '../src/index.js';
import { createJetStreamEventLog, createJetStreamRoleStores } from '../src/jetstream.js';

const installed = natsInstalled('the shared bus roles tests');

/** A logger that keeps its warnings, to check what a bad value in the bucket is reported as. */
function keptWarnings(): { logger: BusLogger; warnings: Array<Record<string, unknown>> } {
  const warnings: Array<Record<string, unknown>> = [];
  const ignore = () => {};
  return {
    warnings,
    logger: {
      debug: ignore,
      info: ignore,
      error: ignore,
      warn: (message, fields) => warnings.push({ message, ...fields }),
    },
  };
}

describe.skipIf(!installed)('bus roles shared through a JetStream KV bucket', () => {
  let cluster: TestNatsCluster;
  const connections: NatsConnection[] = [];
  const buses: MissionBus[] = [];

  /** One host's bus instance of the mission: its own cell copy, state directory and connection. */
  const openHost = async (
    missionId: string,
    options: { bucket: string; stateDir?: string; logger?: BusLogger },
  ) => {
    const nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, timeout: 2_000 });
    connections.push(nc);
    const stateDir = options.stateDir ?? (await tempDir('pit-jsroles-state-'));
    const roles = createJetStreamRoleStores({
      connection: nc,
      replicas: 3,
      bucket: options.bucket,
      ...(options.logger ? { logger: options.logger } : {}),
    });
    const bus = await MissionBus.open({
      cellDir: await tempDir('pit-jsroles-cell-'),
      config: { mission: { id: missionId, title: 'shared roles' } },
      authority: roles('3f2a0c1e-mission', createDirectoryParticipantStore(stateDir)),
      eventLog: createJetStreamEventLog({ connection: nc, replicas: 3 }),
      ...(options.logger ? { logger: options.logger } : {}),
    });
    buses.push(bus);
    return { bus, stateDir, nc };
  };

  beforeAll(async () => {
    cluster = await startNatsCluster(await tempDir('pit-jsroles-nats-'));
  }, 150_000);
  afterAll(async () => {
    for (const bus of buses) await bus.close().catch(() => {});
    for (const nc of connections) await nc.close().catch(() => {});
    await cluster?.stop();
  });

  it("a lead's grant through one host holds on every host, on a host opened later, and tokens stay per host", async () => {
    const a = await openHost('mission-roles', { bucket: 'roles_grant' });
    const b = await openHost('mission-roles', { bucket: 'roles_grant' });
    await a.bus.registerParticipant({
      name: 'lead',
      role: 'lead',
      token_sha256: createToken().sha256,
    });
    await a.bus.registerParticipant({ name: 'smith', role: 'write' });
    await waitFor(() => b.bus.roleOf('smith') === 'write', 10_000, 'host b to hold smith as write');
    expect(b.bus.roleOf('lead')).toBe('lead');

    // The lead takes smith's write access away through host a: host b refuses smith's publish.
    await a.bus.grant('lead', { participant: 'smith', role: 'read' });
    await waitFor(() => b.bus.roleOf('smith') === 'read', 10_000, "host b to see the lead's grant");
    expect(() => b.bus.authorize('smith', 'publish')).toThrow(/smith/);
    await expect(
      b.bus.publish('smith', { topic: 'work', payload: { after: 'grant' } }),
    ).rejects.toMatchObject({ code: 'BUS_FORBIDDEN' });

    // A host that opens the mission afterwards (one taking an agent over) holds the grant at once.
    const c = await openHost('mission-roles', { bucket: 'roles_grant' });
    expect(c.bus.roleOf('smith')).toBe('read');
    expect(
      c.bus
        .participants()
        .map((p) => p.name)
        .sort(),
    ).toEqual(['lead', 'smith']);

    // Removing a participant through host c removes it everywhere.
    await c.bus.removeParticipant('smith');
    await waitFor(
      () => a.bus.roleOf('smith') === undefined && b.bus.roleOf('smith') === undefined,
      10_000,
      'hosts a and b to see smith removed',
    );

    // Tokens are per host: host a's token of lead is in a's state directory only.
    const stored = async (dir: string) =>
      JSON.parse(await readFile(join(dir, 'participants.json'), 'utf8')) as {
        participants: Record<string, { token_sha256?: string; role: string | null }>;
      };
    expect((await stored(a.stateDir)).participants.lead?.token_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect((await stored(c.stateDir)).participants.lead?.token_sha256).toBeUndefined();
    const kv = await new Kvm(a.nc).open('roles_grant');
    const value = (await kv.get('3f2a0c1e-mission.lead'))?.json<Record<string, unknown>>();
    expect(value).toEqual({ role: 'lead', granted_by: '@pit' });
  }, 60_000);

  it('roles one host kept before the mission was shared reach the bucket; a value that is not a role is reported, never applied', async () => {
    const { logger, warnings } = keptWarnings();
    // Host a ran single-host first: its store already holds roles (a lead's grant among them).
    const stateDir = await tempDir('pit-jsroles-state-');
    await createDirectoryParticipantStore(stateDir).save({
      version: 1,
      participants: {
        lead: { role: 'lead', granted_by: '@pit' },
        smith: { role: 'audit', granted_by: 'lead' },
      },
    });
    const a = await openHost('mission-migrate', { bucket: 'roles_migrate', stateDir });
    expect(a.bus.roleOf('smith')).toBe('audit');
    const b = await openHost('mission-migrate', { bucket: 'roles_migrate', logger });
    expect(b.bus.roleOf('smith')).toBe('audit');
    expect(b.bus.roleOf('lead')).toBe('lead');

    // Something with NATS access writes a value that is not a role: ignored, named in a warning.
    const kv = await new Kvm(a.nc).open('roles_migrate');
    await kv.put('3f2a0c1e-mission.smith', JSON.stringify({ role: 'owner', granted_by: 'x' }));
    await waitFor(
      () => warnings.some((warning) => warning.key === '3f2a0c1e-mission.smith'),
      10_000,
      'host b to report the bad value',
    );
    expect(warnings.find((warning) => warning.key === '3f2a0c1e-mission.smith')).toMatchObject({
      message: expect.stringMatching(/not one; it is ignored/),
      problem: expect.stringMatching(/role/),
    });
    expect(b.bus.roleOf('smith')).toBe('audit');
    // The next real change after it applies again, everywhere.
    await a.bus.grant('lead', { participant: 'smith', role: 'write' });
    await waitFor(() => b.bus.roleOf('smith') === 'write', 10_000, 'host b to see the next grant');
  }, 60_000);

  it("a role written just after the bucket's leader node is killed -9 lands, and another host's watch sees it", async () => {
    const b = await openHost('mission-roles-kill', { bucket: 'roles_kill' });
    const nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, timeout: 2_000 });
    connections.push(nc);
    const writer = createJetStreamRoleStores({ connection: nc, bucket: 'roles_kill' })(
      '3f2a0c1e-mission',
      createDirectoryParticipantStore(await tempDir('pit-jsroles-state-')),
    );
    const roster = (role: 'write' | 'audit') => ({
      version: 1 as const,
      participants: { smith: { role, granted_by: 'lead' } },
    });
    await writer.load();
    await writer.save(roster('write'));
    await waitFor(() => b.bus.roleOf('smith') === 'write', 10_000, 'host b to hold smith as write');
    const leader = (await (await jetstreamManager(nc)).streams.info('KV_roles_kill')).cluster
      ?.leader;
    const victim = leader ? Number(/^n(\d+)$/.exec(leader)?.[1] ?? 0) : 0;
    await cluster.kill(victim);
    try {
      await writer.save(roster('audit'));
      await waitFor(() => b.bus.roleOf('smith') === 'audit', 30_000, 'host b to see the change');
    } finally {
      await cluster.start(victim);
    }
  }, 90_000);

  it('a change written over one made meanwhile by another host lands (compare-and-set, read again, written again)', async () => {
    const nc = await connect({ servers: cluster.urls, timeout: 2_000 });
    connections.push(nc);
    const store = createJetStreamRoleStores({ connection: nc, replicas: 3, bucket: 'roles_cas' })(
      'mission-cas',
      createDirectoryParticipantStore(await tempDir('pit-jsroles-state-')),
    );
    await store.save({
      version: 1,
      participants: { smith: { role: 'write', granted_by: '@pit' } },
    });
    expect(await store.load()).toMatchObject({ participants: { smith: { role: 'write' } } });
    // Another host changes smith after this store last read it.
    const kv = await new Kvm(nc).open('roles_cas');
    await kv.put('mission-cas.smith', JSON.stringify({ role: 'audit', granted_by: 'lead' }));
    await store.save({ version: 1, participants: { smith: { role: 'read', granted_by: 'lead' } } });
    expect((await kv.get('mission-cas.smith'))?.json()).toEqual({
      role: 'read',
      granted_by: 'lead',
    });
  }, 30_000);
});
