import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CellUuidSchema } from './agent-name.js';
import { PitError } from './errors.js';
import { SUPERVISED_STATUSES } from './lifecycle.js';
import { readManifest, type CellManifest } from './manifest.js';

/** A cell found by {@link discoverCells}. */
export interface DiscoveredCell {
  uuid: string;
  dir: string;
  manifest: CellManifest;
}

/** Something wrong found under the root. Nothing is silently skipped. */
export interface DiscoveryProblem {
  path: string;
  /** A stable kind, for grouping and tests. */
  kind: 'not_a_directory' | 'bad_dirname' | 'unreadable' | 'corrupt_manifest' | 'uuid_mismatch' | 'missing_manifest';
  /** Human-readable: what is wrong and what was expected. */
  reason: string;
}

/** The result of {@link discoverCells}. */
export interface Discovery {
  /** Active and frozen cells: the ones to supervise. */
  supervised: DiscoveredCell[];
  /** Valid cells in other statuses (provisioning, archived). */
  unsupervised: DiscoveredCell[];
  problems: DiscoveryProblem[];
}

/** Options of {@link discoverCells}. */
export interface DiscoverCellsOptions {
  /** How many manifests are read at once. @default 64 */
  concurrency?: number;
}

/**
 * Lists the cells under `root`: the supervised ones (active, frozen), the others, and every
 * problem found (corrupt manifest, uuid/dirname mismatch, unknown status, unreadable dir, a
 * file where a cell should be), each with its path and reason. Hidden entries (names starting
 * with `.`, such as cells being provisioned) are not cells and are not reported.
 * A missing root is an empty discovery.
 * @example
 * const { supervised, problems } = await discoverCells('/var/missions');
 */
export async function discoverCells(root: string, options: DiscoverCellsOptions = {}): Promise<Discovery> {
  const result: Discovery = { supervised: [], unsupervised: [], problems: [] };
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return result;
    result.problems.push({ path: root, kind: 'unreadable', reason: `cannot read the cells root: ${(error as Error).message}` });
    return result;
  }
  const candidates = entries.filter((entry) => !entry.name.startsWith('.')).sort((a, b) => a.name.localeCompare(b.name));
  const found: Array<DiscoveredCell | DiscoveryProblem | undefined> = new Array(candidates.length);
  let next = 0;
  const worker = async () => {
    while (next < candidates.length) {
      const index = next++;
      found[index] = await inspect(root, candidates[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 64, candidates.length) }, worker));
  for (const item of found) {
    if (!item) continue;
    if ('kind' in item) result.problems.push(item);
    else if (SUPERVISED_STATUSES.includes(item.manifest.status)) result.supervised.push(item);
    else result.unsupervised.push(item);
  }
  return result;
}

async function inspect(root: string, entry: import('node:fs').Dirent): Promise<DiscoveredCell | DiscoveryProblem> {
  const dir = join(root, entry.name);
  if (!entry.isDirectory()) {
    const what = entry.isSymbolicLink() ? 'a symbolic link (cells must be real directories)' : 'a file';
    return { path: dir, kind: 'not_a_directory', reason: `expected a cell directory, found ${what}` };
  }
  if (!CellUuidSchema.safeParse(entry.name).success) {
    return { path: dir, kind: 'bad_dirname', reason: 'directory name must be a lower-case version-4 UUID' };
  }
  try {
    const manifest = await readManifest(dir);
    if (manifest.uuid !== entry.name) {
      return { path: join(dir, 'cell.json'), kind: 'uuid_mismatch', reason: `uuid: ${manifest.uuid} does not match the directory name ${entry.name}` };
    }
    return { uuid: manifest.uuid, dir, manifest };
  } catch (error) {
    const code = PitError.is(error) ? error.code : undefined;
    const message = error instanceof Error ? error.message : String(error);
    if (code === 'CELL_NOT_FOUND') return { path: join(dir, 'cell.json'), kind: 'missing_manifest', reason: 'cell.json is missing' };
    if (code === 'CELL_IO') return { path: dir, kind: 'unreadable', reason: message };
    return { path: join(dir, 'cell.json'), kind: 'corrupt_manifest', reason: message };
  }
}
