import { randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { assertAgentName, assertCellUuid } from './agent-name.js';
import { fsyncDir, writeJsonAtomic } from './atomic.js';
import { CellError, toCellError } from './errors.js';
import { formatIssues } from './format-issues.js';
import { serializeEvent } from './events.js';
import type { CellEventInput } from './event-kinds.js';
import type { IsolationLevel } from './isolation.js';
import { CellManifestSchema, type CellManifest } from './manifest.js';
import { cellPaths } from './paths.js';

/** Options of {@link provisionCell}. */
export interface ProvisionCellOptions {
  mission: string;
  created_by: string;
  /** The agents of the cell. Names must match `^[a-z0-9][a-z0-9._-]{0,63}$`. */
  agents?: Array<{ name: string; role: string; home?: string }>;
  name?: string;
  isolation?: IsolationLevel;
  issue?: string;
  repo?: string;
  /** Use this uuid instead of a new random one. */
  uuid?: string;
  /** Status of the new cell: `provisioning` leaves activation to the caller. @default 'active' */
  status?: 'provisioning' | 'active';
  /** Clock, for tests. */
  now?: Date;
}

/**
 * Prefix of the temporary directories provisioning builds in (`.provisioning-<uuid>.<random>`):
 * discovery never takes one for a cell, and lists it under `ignored`.
 */
export const PROVISIONING_PREFIX = '.provisioning-';

/**
 * Creates a whole cell under `root`: the tree of ARCHITECTURE.md, `cell.json`, and the
 * `cell_created` / `agent_joined` (/ `cell_activated`) events. It is built in a hidden
 * temporary directory inside `root` and renamed into place, so a crash never leaves a half
 * cell that discovery would take for a real one.
 * @returns the cell's directory and manifest.
 * @throws {CellError} CELL_BAD_NAME for a bad agent name (before anything is written),
 *   CELL_INVALID, CELL_EXISTS, CELL_IO.
 * @example
 * const { dir, manifest } = await provisionCell('.pit/missions', { mission: 'Port the parser', created_by: 'ops', agents: [{ name: 'forge', role: 'lead' }] });
 */
export async function provisionCell(
  root: string,
  options: ProvisionCellOptions,
): Promise<{ dir: string; manifest: CellManifest }> {
  const uuid = assertCellUuid(options.uuid ?? randomUUID());
  const now = (options.now ?? new Date()).toISOString();
  const agents = (options.agents ?? []).map((agent, index) => ({
    name: assertAgentName(agent.name, `agents.${index}.name`),
    role: agent.role,
    joined_at: now,
    ...(agent.home ? { home: agent.home } : {}),
  }));
  const status = options.status ?? 'active';
  const parsed = CellManifestSchema.safeParse({
    uuid,
    ...(options.name ? { name: options.name } : {}),
    mission: options.mission,
    created_at: now,
    created_by: options.created_by,
    status,
    agents,
    ...(options.isolation ? { isolation: { level: options.isolation } } : {}),
    ...(options.issue ? { issue: options.issue } : {}),
    ...(options.repo ? { repo: options.repo } : {}),
    revision: 0,
  });
  if (!parsed.success) {
    throw new CellError(
      'CELL_INVALID',
      `${join(root, uuid, 'cell.json')}: manifest rejected: ${formatIssues(parsed.error)}`,
    );
  }
  const manifest = parsed.data;
  const finalDir = join(root, uuid);
  // A random suffix: a leftover of a crashed attempt (or a concurrent one) is never reused or removed by mistake.
  const tempDir = join(root, `${PROVISIONING_PREFIX}${uuid}.${randomBytes(4).toString('hex')}`);
  const events: CellEventInput[] = [
    {
      ts: now,
      event: 'cell_created',
      uuid,
      mission: manifest.mission,
      created_by: manifest.created_by,
    },
    ...agents.map((agent): CellEventInput => ({
      ts: now,
      event: 'agent_joined',
      agent: agent.name,
      role: agent.role,
    })),
    ...(status === 'active' ? [{ ts: now, event: 'cell_activated' } as const] : []),
  ];
  let renaming = false;
  const eventLines = events
    .map((event) => serializeEvent(event, `${finalDir}/logs/events.jsonl`))
    .join('');
  try {
    await fs.mkdir(root, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
    const rootStat = await fs.stat(root);
    if (!rootStat.isDirectory())
      throw new CellError(
        'CELL_NOT_A_CELL',
        `${root}: expected the cells root to be a directory, found a file`,
      );
    if (
      await fs.lstat(finalDir).then(
        () => true,
        () => false,
      )
    )
      throw new CellError('CELL_EXISTS', `${finalDir}: a cell with this uuid already exists`);
    await fs.mkdir(tempDir);
    const paths = cellPaths(tempDir);
    for (const dir of [
      paths.workspace,
      paths.logs,
      paths.checkpoints,
      paths.bus,
      paths.busInbox,
      paths.heartbeats,
    ])
      await fs.mkdir(dir, { recursive: true });
    const handle = await fs.open(paths.events, 'wx', 0o644);
    try {
      await handle.writeFile(eventLines);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsyncDir(paths.logs);
    await writeJsonAtomic(paths.manifest, manifest);
    // rename(2) onto an existing empty directory would succeed: the lstat above is the guard,
    // and a non-empty cell there makes the rename fail (ENOTEMPTY) rather than replace it.
    renaming = true;
    await fs.rename(tempDir, finalDir);
    renaming = false;
    await fsyncDir(root);
  } catch (error) {
    await fs.rm(tempDir, { recursive: true, force: true }).catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    if (renaming && (code === 'ENOTEMPTY' || code === 'EEXIST'))
      throw new CellError('CELL_EXISTS', `${finalDir}: a cell with this uuid already exists`, {
        cause: error,
      });
    throw toCellError(error, finalDir, 'provision cell');
  }
  return { dir: finalDir, manifest };
}
