import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { natsInstalled, startNatsCluster, tempDir, type TestNatsCluster } from '@pit/test-kit';
import type { CheckpointManifest } from '@pit/snapshot';
import { silentLogger, type Logger } from '../logger.js';
import {
  deleteCellRecord,
  getCellArchive,
  listCellRecords,
  putCellCheckpoint,
  putCellDefinition,
  type CellDefinition,
} from './cell-store.js';

const installed = natsInstalled('the cell store tests');

const UUID = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const cell: CellDefinition = {
  uuid: UUID,
  manifest: {
    mission: 'store test',
    created_at: '2026-12-04T00:00:00.000Z',
    created_by: 'test',
  },
  agents: [{ name: 'forge', role: 'lead' }],
};

describe.skipIf(!installed)('cells’ checkpoints in a real JetStream object store', () => {
  let cluster: TestNatsCluster;
  let nc: NatsConnection;
  let store: ObjectStore;

  beforeAll(async () => {
    cluster = await startNatsCluster(await tempDir('pit-nats-cells-'));
    nc = await connect({ servers: cluster.urls });
    store = await new Objm(jetstream(nc)).create('pit_cells_test', { replicas: 3 });
  }, 150_000);
  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  it('keeps one object per cell: a definition only when there is none, then the newest checkpoint, checked against its manifest on the way back', async () => {
    expect(await putCellDefinition(store, cell, 'host-a')).toBe(true);
    expect(await putCellDefinition(store, cell, 'host-a')).toBe(false);
    const [bare] = await listCellRecords(store, silentLogger);
    expect(bare).toMatchObject({ uuid: UUID, host: 'host-a', agents: cell.agents });
    expect(bare!.checkpoint).toBeUndefined();

    const dir = await tempDir('pit-cells-archive-');
    const archive = join(dir, 'a.tar.gz');
    const bytes = Buffer.from('not really a tarball, but bytes');
    await fs.writeFile(archive, bytes);
    const manifest: CheckpointManifest = {
      ts: '2026-12-04T00:00:01.000Z',
      name: '2026-12-04T00-00-01.000Z',
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.byteLength,
      files: 1,
      entries: 1,
      unpacked_bytes: 10,
      created_by: 'pit-daemon',
      reason: 'periodic',
      skipped: [],
    };
    expect(
      await putCellCheckpoint(store, cell, 'host-b', { archive, manifest }, silentLogger),
    ).toBe(true);
    const [record] = await listCellRecords(store, silentLogger);
    expect(record).toMatchObject({ host: 'host-b', checkpoint: manifest });
    expect(Buffer.from(await getCellArchive(store, record!))).toEqual(bytes);
    // A record whose archive is not the one its manifest names is refused.
    await expect(
      getCellArchive(store, { ...record!, checkpoint: { ...manifest, sha256: 'f'.repeat(64) } }),
    ).rejects.toThrow(/is not checkpoint 2026-12-04T00-00-01\.000Z/);
    // Only the host that wrote the record removes it (a cell that left that host).
    expect(await deleteCellRecord(store, UUID, 'host-a')).toBe(false);
    expect(await deleteCellRecord(store, UUID, 'host-b')).toBe(true);
    expect((await store.info(UUID))?.deleted ?? true).toBe(true);
    expect(await listCellRecords(store, silentLogger)).toEqual([]);
    expect(await putCellDefinition(store, cell, 'host-c')).toBe(true);
    await putCellCheckpoint(store, cell, 'host-b', { archive, manifest }, silentLogger);
  });

  it('ignores, and names, an object whose metadata is not a cell record', async () => {
    const warnings: Array<Record<string, unknown> | undefined> = [];
    const logger: Logger = { ...silentLogger, warn: (_msg, fields) => void warnings.push(fields) };
    const other = '1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    await store.putBlob(
      {
        name: other,
        metadata: { pit_cell: JSON.stringify({ version: 1, uuid: other, extra: 1 }) },
      },
      new Uint8Array(0),
    );
    await store.putBlob(
      {
        name: '2a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
        metadata: {
          pit_cell: JSON.stringify({ ...(await listCellRecords(store, silentLogger))[0] }),
        },
      },
      new Uint8Array(0),
    );
    const records = await listCellRecords(store, logger);
    expect(records.map((record) => record.uuid)).toEqual([UUID]);
    expect(warnings).toContainEqual(
      expect.objectContaining({ object: other, error: expect.stringMatching(/pit_cell/) }),
    );
    expect(warnings).toContainEqual(
      expect.objectContaining({ error: expect.stringMatching(/uuid: expected the object's name/) }),
    );
  });
});
