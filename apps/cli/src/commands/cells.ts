import {
  cellPaths,
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
} from '@pit/cell-spec';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import { renderTable, type Output } from '../output.js';

/** What the cell commands need to know. */
export interface CellsContext {
  cellsRoot: string;
  output: Output;
  /** Who is acting (recorded as `created_by`). */
  actor: string;
}

/** `pit cells list [--all] [--json]` */
export async function listCells(
  context: CellsContext,
  options: { all?: boolean; json?: boolean },
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
          cells: cells.map((cell) => ({ dir: cell.dir, ...cell.manifest })),
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
    for (const problem of found.problems)
      context.output.err(`problem: ${describeDiscoveryProblem(problem)}`);
  }
  return found.problems.length > 0 ? EXIT.problems : EXIT.ok;
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
  const { dir, manifest } = await provisionCell(context.cellsRoot, {
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
  uuid: string,
  options: { reason?: string },
): Promise<number> {
  const dir = join(context.cellsRoot, assertCellUuid(uuid, 'UUID'));
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
