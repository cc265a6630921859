/**
 * A cell taken over from a host that is gone, rebuilt here (issue #16): the cells this host
 * describes to its peers (from its fleet: only the agents the operator granted, the manifest's
 * identity), and the materialisation of a peer's cell from its record and archive in the
 * cluster's object store (cell-store.ts). Materialising provisions the cell in a hidden
 * `.provisioning-takeover-<uuid>/` of this host's cells root (discovery ignores it), keeps the checkpoint in the daemon's
 * own store (`<state_dir>/checkpoints/<uuid>/`, checkpoint-store.ts), restores the workspace from
 * it (with the `[checkpoints]` restore limits: the archive is the agent's work, never trusted),
 * grants the record's agents the cell in `members.json` (`by: "takeover"`), and only then moves
 * the cell to `<root>/<uuid>`, where discovery takes it up (so no agent starts before its
 * workspace is back). The config still
 * decides: an agent the config pins elsewhere or keeps out of cells is not started here. It claims
 * nothing (cluster-member.ts claimed the agents before asking).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cellPaths, PROVISIONING_PREFIX, provisionCell, writeJsonAtomic } from '@pit/cell-spec';
import { resolvePolicy } from '@pit/policy';
import { restoreCheckpoint, type CheckpointManifest } from '@pit/snapshot';
import { checkpointStore } from '../checkpoint-store.js';
import { grant, updateMembers } from '../membership.js';
import type { SupervisorContext } from '../supervisor-context.js';
import type { CellDefinition, CellRecord } from './cell-store.js';

/** This host's active cells with the agents it supervises in them. */
export function localCells(context: SupervisorContext): CellDefinition[] {
  const cells = new Map<string, CellDefinition>();
  for (const slot of context.fleet.slots.values()) {
    if (!slot.cell || slot.cell.manifest.status !== 'active') continue;
    let cell = cells.get(slot.cell.uuid);
    if (!cell) {
      cell = { uuid: slot.cell.uuid, manifest: slot.cell.manifest, agents: [] };
      cells.set(slot.cell.uuid, cell);
    }
    cell.agents.push({ name: slot.name, role: slot.cell.role });
  }
  return [...cells.values()];
}

/** The definition of one local cell, or undefined when this host supervises none of its agents. */
export function localCell(context: SupervisorContext, uuid: string): CellDefinition | undefined {
  return localCells(context).find((cell) => cell.uuid === uuid);
}

/**
 * Rebuilds the cell of `record` here from `archive` (see the module header). Without one (the
 * record has no checkpoint), only the agents whose policy substitutes them are taken up, in a
 * cell with an empty workspace: their death is then decided here as any other (the substitute
 * takes the work over); the others are left dead, and it says so.
 * @returns the names of the agents it takes up (the rest are let go by the caller).
 * @throws Error (CellError, SnapshotError, DaemonError) when it cannot: nothing is started then.
 */
export async function materialiseCell(
  context: SupervisorContext,
  record: CellRecord,
  archive: Uint8Array | undefined,
  from: string,
): Promise<string[]> {
  const checkpoint = archive ? record.checkpoint : undefined;
  const agents = agentsToTakeUp(context, record, checkpoint !== undefined, from);
  if (agents.length === 0) return [];
  const root = context.config.cells.root;
  const dir = cellPaths(root, record.uuid).dir;
  const exists = await fs.lstat(dir).then(
    () => true,
    () => false,
  );
  // Built where discovery does not look (a `.provisioning-` directory of the cells root, on the
  // same file system) and moved into place once restored and granted: the agent never starts
  // before its workspace is back.
  const staging = join(root, `${PROVISIONING_PREFIX}takeover-${record.uuid}`);
  const built = exists ? dir : join(staging, record.uuid);
  if (!exists) {
    await fs.rm(staging, { recursive: true, force: true });
    await fs.mkdir(staging, { recursive: true, mode: 0o700 });
    await provisionCell(staging, {
      uuid: record.uuid,
      mission: record.cell.mission,
      created_by: record.cell.created_by,
      agents,
      ...(record.cell.name !== undefined ? { name: record.cell.name } : {}),
      ...(record.cell.isolation ? { isolation: record.cell.isolation.level } : {}),
      ...(record.cell.issue !== undefined ? { issue: record.cell.issue } : {}),
      ...(record.cell.repo !== undefined ? { repo: record.cell.repo } : {}),
      status: 'active',
    });
  }
  if (checkpoint && archive)
    await restoreInto(context, built, record.uuid, checkpoint, archive, from);
  await updateMembers(
    context.stateDir,
    grant(
      record.uuid,
      agents.map((agent) => agent.name),
      'takeover',
      new Date(context.now()),
    ),
  );
  if (!exists) {
    await fs.rename(built, dir);
    await fs.rm(staging, { recursive: true, force: true });
  }
  context.logger.info('cluster: rebuilt a cell taken over from a host that is gone', {
    cell: record.uuid,
    dir,
    previous_host: from,
    checkpoint: checkpoint?.name ?? null,
    ...(checkpoint ? { checkpoint_at: checkpoint.ts } : {}),
    agents: agents.map((agent) => agent.name),
  });
  return agents.map((agent) => agent.name);
}

/** The record's agents to take up: all of them with a checkpoint, else those the policy substitutes (logged). */
function agentsToTakeUp(
  context: SupervisorContext,
  record: CellRecord,
  withCheckpoint: boolean,
  from: string,
): CellRecord['agents'] {
  if (withCheckpoint) return record.agents;
  const agents = record.agents.filter(
    (agent) => resolvePolicy({ config: context.policy, agent: agent.name }).mode === 'substitute',
  );
  const left = record.agents.filter((agent) => !agents.includes(agent));
  context.logger.error(
    'cluster: a cell of a host that is gone has no checkpoint in the object store',
    {
      cell: record.uuid,
      previous_host: from,
      ...(agents.length > 0 ? { substituted_per_policy: agents.map((agent) => agent.name) } : {}),
      ...(left.length > 0 ? { left_dead: left.map((agent) => agent.name) } : {}),
    },
  );
  return agents;
}

/** Keeps the checkpoint in the daemon's own store and restores the cell's workspace from it. */
async function restoreInto(
  context: SupervisorContext,
  cellDir: string,
  uuid: string,
  checkpoint: CheckpointManifest,
  archive: Uint8Array,
  from: string,
): Promise<void> {
  const store = checkpointStore(context.stateDir, uuid);
  await fs.mkdir(store, { recursive: true, mode: 0o700 });
  const archivePath = join(store, `${checkpoint.name}.tar.gz`);
  // The archive first, its manifest last: a checkpoint exists once its manifest does.
  const temp = `${archivePath}.${process.pid}.tmp`;
  await fs.writeFile(temp, archive, { mode: 0o600 });
  await fs.rename(temp, archivePath);
  await writeJsonAtomic(join(store, `${checkpoint.name}.json`), checkpoint, { mode: 0o600 });
  await restoreCheckpoint(cellDir, {
    store,
    checkpoint: checkpoint.name,
    restoredBy: 'pit-daemon',
    reason: `cluster takeover from host ${from}`,
    logger: context.logger,
    maxBytes: context.config.checkpoints.restore_max_bytes,
    maxEntries: context.config.checkpoints.restore_max_entries,
  });
}
