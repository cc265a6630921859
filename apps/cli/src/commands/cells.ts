import { randomUUID } from 'node:crypto';
import {
  appendEvent,
  assertAgentName,
  cellPaths,
  updateManifest,
  destroyCell,
  describeDiscoveryProblem,
  discoverCells,
  provisionCell,
  readManifest,
  transitionCell,
  assertCellUuid,
  IsolationLevelSchema,
  type CellStatus,
  type CellManifest,
  type DiscoveredCell,
} from '@pit/cell-spec';
import { join } from 'node:path';
import { grant, migration, updateMembers, withdraw, type MembersChange } from '@pit/daemon';
import { resolveCellUuid } from '../cell-ref.js';
import { UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import { renderTable, type Output } from '../output.js';

/** What the cell commands need to know. */
export interface CellsContext {
  cellsRoot: string;
  output: Output;
  /** Who is acting (recorded as `created_by`). */
  actor: string;
  /** The daemon's state directory, where cell membership is recorded (members.json). */
  stateDir: () => Promise<string>;
}

/**
 * Records grants in the daemon's members file; the first writer also records the cells that
 * exist (the same one-time migration the daemon does at its first start).
 */
async function recordMembers(context: CellsContext, change: MembersChange): Promise<void> {
  const stateDir = await context.stateDir();
  const found = await discoverCells(context.cellsRoot);
  await updateMembers(
    stateDir,
    change,
    migration(
      found.supervised.map((cell) => ({
        uuid: cell.uuid,
        agents: cell.manifest.agents.map((agent) => agent.name),
      })),
      new Date(),
    ),
  );
}

/** `pit cells list [--all] [--json] [--verbose]` */
export async function listCells(
  context: CellsContext,
  options: { all?: boolean; json?: boolean; verbose?: boolean },
): Promise<number> {
  const found = await discoverCells(context.cellsRoot);
  const cells = [...found.supervised, ...(options.all ? found.unsupervised : [])].sort((a, b) =>
    a.manifest.created_at.localeCompare(b.manifest.created_at),
  );
  if (options.json) {
    context.output.out(
      JSON.stringify(
        {
          root: context.cellsRoot,
          cells: cells.map((cell) => ({
            dir: cell.dir,
            ...cell.manifest,
            ...(options.verbose ? { defaulted: cell.defaulted ?? [] } : {}),
          })),
          problems: found.problems,
        },
        null,
        2,
      ),
    );
  } else {
    if (cells.length === 0)
      context.output.out(
        `no ${options.all ? '' : 'supervised '}cells under ${context.cellsRoot}${options.all ? '' : ' (--all shows archived and provisioning ones)'}`,
      );
    else
      context.output.out(
        renderTable(
          ['UUID', 'STATUS', 'NAME', 'AGENTS', 'MISSION'],
          cells.map((cell) => [
            cell.uuid,
            cell.manifest.status,
            cell.manifest.name,
            cell.manifest.agents.map((agent) => `${agent.name}:${agent.role}`).join(','),
            truncate(cell.manifest.mission, 50),
          ]),
        ),
      );
    if (options.verbose) for (const line of defaultedLines(cells)) context.output.out(line);
    for (const problem of found.problems)
      context.output.err(`problem: ${describeDiscoveryProblem(problem)}`);
  }
  return found.problems.length > 0 ? EXIT.problems : EXIT.ok;
}

/** One line per cell: the seed-format fields of its cell.json that the Pit defaulted. */
function defaultedLines(cells: DiscoveredCell[]): string[] {
  return cells.map((cell) =>
    cell.defaulted
      ? `${cell.uuid}: defaulted (seed-format cell.json): ${cell.defaulted.map((path) => `${path}=${JSON.stringify(valueAt(cell.manifest, path))}`).join(', ')}`
      : `${cell.uuid}: nothing defaulted`,
  );
}

/** The value at a dotted path (`agents.0.role`) of a manifest. */
function valueAt(manifest: CellManifest, path: string): unknown {
  let value: unknown = manifest;
  for (const key of path.split('.')) value = (value as Record<string, unknown>)[key];
  return value;
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** Parses `NAME[:ROLE]`; the role defaults to `write` (the first agent's to `lead`). */
export function parseAgentSpec(spec: string, index: number): { name: string; role: string } {
  const [name, role, ...rest] = spec.split(':');
  if (!name || rest.length > 0 || role === '')
    throw new UsageError(`--agent ${JSON.stringify(spec)}: expected NAME or NAME:ROLE`);
  return { name, role: role ?? (index === 0 ? 'lead' : 'write') };
}

/** `pit cell create --mission TEXT --agent NAME[:ROLE]... [--name N] [--isolation 1|2|3]` */
export async function createCell(
  context: CellsContext,
  options: { mission: string; agent?: string[]; name?: string; isolation?: string; json?: boolean },
): Promise<number> {
  const agents = (options.agent ?? []).map(parseAgentSpec);
  let isolation: 1 | 2 | 3 | undefined;
  if (options.isolation !== undefined) {
    const parsed = IsolationLevelSchema.safeParse(Number(options.isolation));
    if (!parsed.success)
      throw new UsageError(`--isolation ${JSON.stringify(options.isolation)}: expected 1, 2 or 3`);
    isolation = parsed.data;
  }
  // Membership is recorded before the cell appears, so that a daemon never sees it ungranted;
  // names are checked first, so that a bad one fails before anything is written.
  agents.forEach((agent, index) => assertAgentName(agent.name, `agents.${index}.name`));
  const uuid = randomUUID();
  await recordMembers(
    context,
    grant(
      uuid,
      agents.map((agent) => agent.name),
      'create',
      new Date(),
    ),
  );
  const { dir, manifest } = await provisionCell(context.cellsRoot, {
    uuid,
    mission: options.mission,
    created_by: context.actor,
    agents,
    ...(options.name ? { name: options.name } : {}),
    ...(isolation ? { isolation } : {}),
  });
  if (options.json) context.output.out(JSON.stringify({ dir, ...manifest }, null, 2));
  else context.output.out(`created cell ${manifest.uuid} (${manifest.status}) at ${dir}`);
  return EXIT.ok;
}

const TARGET_STATUS: Record<'freeze' | 'resume' | 'archive', CellStatus> = {
  freeze: 'frozen',
  resume: 'active',
  archive: 'archived',
};

/** `pit cell freeze|resume|archive UUID` */
export async function moveCell(
  context: CellsContext,
  action: 'freeze' | 'resume' | 'archive',
  ref: string,
  options: { reason?: string },
): Promise<number> {
  const uuid = await resolveCellUuid(context.cellsRoot, ref, 'UUID');
  const dir = join(context.cellsRoot, uuid);
  const manifest: CellManifest = await transitionCell(
    dir,
    TARGET_STATUS[action],
    options.reason ? { reason: options.reason } : {},
  );
  context.output.out(`cell ${uuid} is now ${manifest.status}`);
  return EXIT.ok;
}

/** `pit cell destroy UUID [--force]` */
export async function removeCell(
  context: CellsContext,
  uuid: string,
  options: { force?: boolean },
): Promise<number> {
  const dir = join(context.cellsRoot, assertCellUuid(uuid, 'UUID'));
  const manifest = await readManifest(dir);
  await destroyCell(context.cellsRoot, uuid, { force: options.force ?? false });
  context.output.out(`destroyed cell ${uuid} (${manifest.mission}); ${cellPaths(dir).dir} is gone`);
  return EXIT.ok;
}

/** `pit cell join UUID AGENT [--role ROLE]`: the operator lets an agent into a cell. */
export async function joinCell(
  context: CellsContext,
  ref: string,
  agent: string,
  options: { role: string },
): Promise<number> {
  const uuid = await resolveCellUuid(context.cellsRoot, ref, 'UUID');
  const dir = join(context.cellsRoot, uuid);
  const name = assertAgentName(agent, 'AGENT');
  await readManifest(dir);
  await recordMembers(context, grant(uuid, [name], 'join', new Date()));
  let added = false;
  await updateManifest(dir, (manifest) => {
    if (manifest.agents.some((entry) => entry.name === name)) return;
    manifest.agents.push({ name, role: options.role, joined_at: new Date().toISOString() });
    added = true;
  });
  if (added)
    await appendEvent(cellPaths(dir).events, {
      event: 'agent_joined',
      agent: name,
      role: options.role,
    });
  context.output.out(
    `${name} may run in cell ${uuid}${added ? '' : ' (already listed in cell.json)'}`,
  );
  return EXIT.ok;
}

/** `pit cell leave UUID AGENT`: the operator withdraws an agent from a cell. */
export async function leaveCell(
  context: CellsContext,
  ref: string,
  agent: string,
): Promise<number> {
  const uuid = await resolveCellUuid(context.cellsRoot, ref, 'UUID');
  const dir = join(context.cellsRoot, uuid);
  const name = assertAgentName(agent, 'AGENT');
  await recordMembers(context, withdraw(uuid, name));
  let removed = false;
  await updateManifest(dir, (manifest) => {
    const kept = manifest.agents.filter((entry) => entry.name !== name);
    removed = kept.length !== manifest.agents.length;
    manifest.agents = kept;
  });
  if (removed)
    await appendEvent(cellPaths(dir).events, {
      event: 'agent_left',
      agent: name,
      reason: `pit cell leave by ${context.actor}`,
    });
  context.output.out(`${name} no longer runs in cell ${uuid}`);
  return EXIT.ok;
}
