/**
 * Cells' checkpoints in the cluster's JetStream object store (`pit_cells`, issue #16), so that a
 * live host can rebuild the cell of a host that is gone. One object per cell, named by its uuid:
 * its data is the newest workspace checkpoint archive the daemon took of the cell (empty when it
 * has none yet), and its `pit_cell` metadata a {@link CellRecord}: the checkpoint's manifest and
 * the cell's definition as the daemon accepted it (the manifest's identity, and only the agents
 * the operator granted the cell, never anything else an agent wrote in `cell.json`).
 *
 * Only a daemon writes a record, and only for a cell whose agents it holds (their owner records
 * name it): a host that lost its cell's agents to a takeover never overwrites the new owner's
 * newer checkpoint with its own. A record read back is parsed strictly and its archive checked
 * against the sha256 and size the record names before anything is restored from it. It decides
 * nothing about takeovers (cluster-member.ts does).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { ObjectStore } from '@nats-io/obj';
import { z } from 'zod';
import {
  AgentNameSchema,
  CellUuidSchema,
  IsolationLevelSchema,
  type CellManifest,
} from '@pit/cell-spec';
import { CheckpointManifestSchema, type CheckpointManifest } from '@pit/snapshot';
import type { Logger } from '../logger.js';

/** The largest archive put in the store (bytes): a bigger checkpoint stays on its host only. */
export const CELL_ARCHIVE_MAX_BYTES = 512 * 1024 * 1024;

/** A cell as the daemon holds it, with the agents the operator granted it (a store record's `cell` and `agents`). */
export interface CellDefinition {
  uuid: string;
  manifest: Pick<
    CellManifest,
    'name' | 'mission' | 'created_at' | 'created_by' | 'isolation' | 'issue' | 'repo'
  >;
  /** The granted agents, with their role in the cell. */
  agents: Array<{ name: string; role: string }>;
}

/** A record's `pit_cell` metadata (JSON). */
export const CellRecordSchema = z.strictObject({
  version: z.literal(1),
  uuid: CellUuidSchema,
  /** The host that wrote it (it held the cell's agents then). */
  host: z.string().regex(/^[\w-]+$/),
  /** When it was written (ISO-8601 UTC). */
  written_at: z.string(),
  cell: z.strictObject({
    name: z.string().min(1).max(200).optional(),
    mission: z.string().min(1),
    created_at: z.string(),
    created_by: z.string().min(1),
    isolation: z.strictObject({ level: IsolationLevelSchema }).optional(),
    issue: z.string().min(1).optional(),
    repo: z.string().min(1).optional(),
  }),
  agents: z
    .array(z.strictObject({ name: AgentNameSchema, role: z.string().min(1).max(200) }))
    .min(1)
    .max(1000),
  /** The checkpoint whose archive is the object's data; absent: none was taken yet. */
  checkpoint: CheckpointManifestSchema.optional(),
});
export type CellRecord = z.infer<typeof CellRecordSchema>;

const METADATA_KEY = 'pit_cell';

function recordOf(
  cell: CellDefinition,
  host: string,
  checkpoint: CheckpointManifest | undefined,
): CellRecord {
  const { manifest } = cell;
  return {
    version: 1,
    uuid: cell.uuid,
    host,
    written_at: new Date().toISOString(),
    cell: {
      ...(manifest.name !== undefined ? { name: manifest.name } : {}),
      mission: manifest.mission,
      created_at: manifest.created_at,
      created_by: manifest.created_by,
      ...(manifest.isolation ? { isolation: manifest.isolation } : {}),
      ...(manifest.issue !== undefined ? { issue: manifest.issue } : {}),
      ...(manifest.repo !== undefined ? { repo: manifest.repo } : {}),
    },
    agents: cell.agents,
    ...(checkpoint ? { checkpoint } : {}),
  };
}

/**
 * Puts the cell's newest checkpoint (archive and manifest) in the store, replacing the previous
 * one. The caller has checked that this host holds the cell's agents.
 * @returns false when the archive is over {@link CELL_ARCHIVE_MAX_BYTES} (logged, nothing put).
 * @throws Error when the archive cannot be read or NATS does not answer.
 */
export async function putCellCheckpoint(
  store: ObjectStore,
  cell: CellDefinition,
  host: string,
  checkpoint: { archive: string; manifest: CheckpointManifest },
  logger: Logger,
): Promise<boolean> {
  if (checkpoint.manifest.bytes > CELL_ARCHIVE_MAX_BYTES) {
    logger.warn('cluster: a checkpoint too large for the object store stays on this host only', {
      cell: cell.uuid,
      checkpoint: checkpoint.manifest.name,
      bytes: checkpoint.manifest.bytes,
      max_bytes: CELL_ARCHIVE_MAX_BYTES,
    });
    return false;
  }
  const data = await fs.readFile(checkpoint.archive);
  const record = recordOf(cell, host, checkpoint.manifest);
  await store.putBlob(
    { name: cell.uuid, metadata: { [METADATA_KEY]: JSON.stringify(record) } },
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  );
  return true;
}

/**
 * Puts a record taken over from another host again as this host's (the same checkpoint, the
 * agents taken up here), so that peers see the cell's new host at once, before its first
 * checkpoint here.
 */
export async function putTakenOver(
  store: ObjectStore,
  record: CellRecord,
  archive: Uint8Array | undefined,
  host: string,
  agents: string[],
): Promise<void> {
  const next: CellRecord = {
    ...record,
    host,
    written_at: new Date().toISOString(),
    agents: record.agents.filter((agent) => agents.includes(agent.name)),
  };
  if (!archive) delete next.checkpoint;
  await store.putBlob(
    { name: record.uuid, metadata: { [METADATA_KEY]: JSON.stringify(next) } },
    archive ?? new Uint8Array(0),
  );
}

/**
 * Puts the cell's definition without a checkpoint when the store has no object for it yet, so
 * that a takeover can at least say that the cell had none.
 * @returns whether it was put.
 */
export async function putCellDefinition(
  store: ObjectStore,
  cell: CellDefinition,
  host: string,
): Promise<boolean> {
  const info = await store.info(cell.uuid);
  if (info && !info.deleted) return false;
  const record = recordOf(cell, host, undefined);
  await store.putBlob(
    { name: cell.uuid, metadata: { [METADATA_KEY]: JSON.stringify(record) } },
    new Uint8Array(0),
  );
  return true;
}

/**
 * Whether the store's record of the cell carries a checkpoint (false when there is no record, or
 * one this version cannot read).
 */
export async function cellHasCheckpoint(store: ObjectStore, uuid: string): Promise<boolean> {
  const info = await store.info(uuid);
  if (!info || info.deleted) return false;
  const parsed = parseRecord(uuid, info.metadata?.[METADATA_KEY]);
  return parsed.ok && parsed.record.checkpoint !== undefined;
}

/**
 * Removes the cell's object when the record is this host's (the cell left this host: destroyed,
 * archived, frozen or no longer granted), so that no takeover rebuilds it. Another host's record
 * (a newer owner's) is left. @returns whether it was removed.
 */
export async function deleteCellRecord(
  store: ObjectStore,
  uuid: string,
  host: string,
): Promise<boolean> {
  const info = await store.info(uuid);
  if (!info || info.deleted) return false;
  const parsed = parseRecord(uuid, info.metadata?.[METADATA_KEY]);
  if (parsed.ok && parsed.record.host !== host) return false;
  await store.delete(uuid);
  return true;
}

/**
 * Every record in the store; an object whose metadata does not parse is skipped, and logged once
 * per object and content (`warned` remembers which, across passes).
 */
export async function listCellRecords(
  store: ObjectStore,
  logger: Logger,
  warned: Set<string> = new Set(),
): Promise<CellRecord[]> {
  const records: CellRecord[] = [];
  for (const info of await store.list()) {
    if (info.deleted) continue;
    const parsed = parseRecord(info.name, info.metadata?.[METADATA_KEY]);
    if (parsed.ok) records.push(parsed.record);
    else if (!warned.has(`${info.name}\0${info.digest}`)) {
      warned.add(`${info.name}\0${info.digest}`);
      logger.warn('cluster: a cell record in the object store is ignored', {
        store: info.bucket,
        object: info.name,
        error: parsed.error,
      });
    }
  }
  return records;
}

function parseRecord(
  name: string,
  text: string | undefined,
): { ok: true; record: CellRecord } | { ok: false; error: string } {
  if (text === undefined) return { ok: false, error: `metadata ${METADATA_KEY}: missing` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `metadata ${METADATA_KEY}: not JSON (${String(error)})` };
  }
  const parsed = CellRecordSchema.safeParse(value);
  if (!parsed.success)
    return {
      ok: false,
      error: `metadata ${METADATA_KEY}: ${parsed.error.issues
        .slice(0, 3)
        .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
        .join('; ')}`,
    };
  if (parsed.data.uuid !== name)
    return {
      ok: false,
      error: `uuid: expected the object's name ${name}, found ${parsed.data.uuid}`,
    };
  return { ok: true, record: parsed.data };
}

/**
 * The archive of the record's checkpoint, checked against the size and sha256 the record names.
 * @throws Error when the object is gone, was replaced by another checkpoint meanwhile (the next
 *   pass reads the newer record), or does not match.
 */
export async function getCellArchive(store: ObjectStore, record: CellRecord): Promise<Uint8Array> {
  const checkpoint = record.checkpoint;
  if (!checkpoint) throw new Error(`cell ${record.uuid}: the record names no checkpoint`);
  const data = await store.getBlob(record.uuid);
  if (!data) throw new Error(`cell ${record.uuid}: no object in the store`);
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (data.byteLength !== checkpoint.bytes || sha256 !== checkpoint.sha256)
    throw new Error(
      `cell ${record.uuid}: the archive in the store is not checkpoint ${checkpoint.name} (expected ${checkpoint.bytes} bytes, sha256 ${checkpoint.sha256}; found ${data.byteLength} bytes, sha256 ${sha256})`,
    );
  return data;
}
