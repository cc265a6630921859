import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import {
  natsInstalled,
  startNatsCluster,
  tempDir,
  waitFor,
  type TestNatsCluster,
} from '@pit/test-kit';
import { silentLogger, type Logger } from '../logger.js';
import { joinCluster, type ClusterMember } from './cluster-member.js';
import { OWNERS_BUCKET, ownerKey } from './coordination.js';

const installed = natsInstalled('the cluster member tests');

describe.skipIf(!installed)('a cluster member over a real 3-node NATS JetStream cluster', () => {
  let cluster: TestNatsCluster;
  const members: ClusterMember[] = [];

  beforeAll(async () => {
    cluster = await startNatsCluster(await tempDir('pit-nats-member-'));
  }, 150_000);
  afterAll(async () => {
    await Promise.all(members.map((member) => member.close().catch(() => {})));
    await cluster?.stop();
  });

  it('lets go of (and stops here) an agent whose owner record another host wrote while it was held, and says so', async () => {
    const errors: Array<{ msg: string; fields: Record<string, unknown> | undefined }> = [];
    const logger: Logger = {
      ...silentLogger,
      error: (msg, fields) => void errors.push({ msg, fields }),
    };
    const member = await joinCluster({
      servers: cluster.urls,
      hostId: 'audit-a',
      leaseMs: 1_500,
      replicas: 3,
      onPartition: 'keep',
      logger,
    });
    members.push(member);
    const agent = 'host/audited';
    const stopped: string[] = [];
    member.start({
      placeable: () => [agent],
      resync: async () => {},
      stopLocal: async (key) => void stopped.push(key),
    });
    await waitFor(() => member.supervises(agent, false), 15_000, 'audit-a to hold the agent');
    // Another host's record over this host's, written at the current revision as a claim would
    // (what a takeover based on a stale view of the live hosts once did).
    const nc = await connect({ servers: cluster.urls });
    try {
      const owners = await new Kvm(nc).open(OWNERS_BUCKET);
      const entry = (await owners.get(ownerKey(agent)))!;
      await owners.update(
        ownerKey(agent),
        JSON.stringify({ agent, host: 'audit-b', claimed_at: Date.now() }),
        entry.revision,
      );
    } finally {
      await nc.close();
    }
    await waitFor(() => !member.supervises(agent, false), 15_000, 'audit-a to let the agent go');
    expect(stopped).toEqual([agent]);
    expect(errors).toContainEqual({
      msg: expect.stringMatching(/owned by another host/),
      fields: expect.objectContaining({ agent, owner: 'audit-b' }),
    });
    expect((await member.view()).remote[agent]).toMatchObject({ host: 'audit-b' });
  }, 40_000);
});
