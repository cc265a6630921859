import { promises as fs, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { CellUuidSchema } from './agent-name.js';
import { DESTROYING_PREFIX } from './destroy.js';
import { PitError } from './errors.js';
import { CellStatusSchema, SUPERVISED_STATUSES } from './lifecycle.js';
import { readFileSafe, readFileSafeSync } from './atomic.js';
import { MANIFEST_MAX_BYTES, parseManifest, type CellManifest } from './manifest.js';
import { PROVISIONING_PREFIX } from './provision.js';

/** A cell found by {@link discoverCells}. */
export interface DiscoveredCell {
  uuid: string;
  dir: string;
  manifest: CellManifest;
  /**
   * Present when `cell.json` is in the seed format: the fields it left out, which the Pit
   * defaulted (`created_at`, `agents.0.role`, …; see `parseManifest`).
   */
  defaulted?: string[];
}

/** Something wrong found under the root. Nothing is silently skipped. */
export interface DiscoveryProblem {
  path: string;
  /** A stable kind, for grouping and tests. */
  kind:
    | 'not_a_directory'
    | 'bad_dirname'
    | 'unreadable'
    | 'corrupt_manifest'
    | 'unknown_status'
    | 'uuid_mismatch'
    | 'missing_manifest';
  /** Human-readable: what is wrong and what was expected. */
  reason: string;
}

/**
 * One line for a problem: its reason, led by its path unless the reason already starts with it
 * (a manifest's own parse error names the file; `cannot read the cells root` does not).
 * @example
 * for (const problem of discovery.problems) logger.warn(describeDiscoveryProblem(problem));
 */
export function describeDiscoveryProblem(problem: DiscoveryProblem): string {
  return problem.reason.startsWith(problem.path)
    ? problem.reason
    : `${problem.path}: ${problem.reason}`;
}

/** A hidden entry under the root that is deliberately not a cell (listed, so nothing is skipped silently). */
export interface DiscoveryIgnored {
  path: string;
  /** Why it is not a cell: a cell being provisioned (or left by a crash while provisioning), one being destroyed, or another hidden entry. */
  reason: string;
}

/** The result of {@link discoverCells}. */
export interface Discovery {
  /** Active and frozen cells: the ones to supervise, sorted by uuid. */
  supervised: DiscoveredCell[];
  /** Valid cells in other statuses (provisioning, archived, destroyed), sorted by uuid. */
  unsupervised: DiscoveredCell[];
  /** Everything wrong under the root, each with its path and reason. */
  problems: DiscoveryProblem[];
  /** Hidden entries (`.provisioning-*`, `.destroying-*`, other dot-files): not cells, not problems. */
  ignored: DiscoveryIgnored[];
}

/** Options of {@link discoverCells}. */
export interface DiscoverCellsOptions {
  /** How many manifests are read at once when reading through the thread pool (`sliceMs: 0`). @default 64 */
  concurrency?: number;
  /**
   * Manifests are small: reading them with synchronous calls is several times faster than
   * round trips through libuv's thread pool (10,000 cells: ~0.3 s instead of ~1 s and more
   * under load). They are read in slices of at most this many milliseconds, yielding to the
   * event loop between slices, so timers and sockets are never held up for longer. `0` reads
   * every manifest asynchronously instead (`concurrency` at a time). @default 4 (ms)
   */
  sliceMs?: number;
}

/**
 * Lists the cells under `root`: the supervised ones (active, frozen), the others, and every
 * problem found (corrupt manifest, uuid/dirname mismatch, unknown status, unreadable dir, a
 * file or symlink where a cell should be), each with its path and reason. Hidden entries
 * (names starting with `.`, such as cells being provisioned) are never cells: they are listed
 * under `ignored`. A missing root is an empty discovery; an unreadable root is a problem.
 * Never throws for what it finds.
 * @example
 * const { supervised, problems } = await discoverCells('/var/missions');
 */
export async function discoverCells(
  root: string,
  options: DiscoverCellsOptions = {},
): Promise<Discovery> {
  const result: Discovery = { supervised: [], unsupervised: [], problems: [], ignored: [] };
  let entries: Dirent[];
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return result;
    result.problems.push({
      path: root,
      kind: 'unreadable',
      reason: `cannot read the cells root: ${(error as Error).message}`,
    });
    return result;
  }
  const candidates: Dirent[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.'))
      result.ignored.push({ path: join(root, entry.name), reason: ignoredReason(entry.name) });
    else candidates.push(entry);
  }
  candidates.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  result.ignored.sort((a, b) => (a.path < b.path ? -1 : 1));
  const found: Array<DiscoveredCell | DiscoveryProblem | undefined> = new Array(candidates.length);
  const sliceMs = options.sliceMs ?? 4;
  if (sliceMs > 0) {
    let sliceStart = performance.now();
    for (let index = 0; index < candidates.length; index += 1) {
      if (performance.now() - sliceStart >= sliceMs) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
      found[index] = inspect(root, candidates[index]!, (path) =>
        readFileSafeSync(path, { maxBytes: MANIFEST_MAX_BYTES }),
      );
    }
  } else {
    let next = 0;
    const worker = async () => {
      while (next < candidates.length) {
        const index = next++;
        const entry = candidates[index]!;
        const manifestPath = join(root, entry.name, 'cell.json');
        // Read first (asynchronously) when the entry can be a cell; inspect then judges synchronously.
        const read = precheck(root, entry)
          ? undefined
          : await readFileSafe(manifestPath, { maxBytes: MANIFEST_MAX_BYTES }).then(
              (buffer) => ({ buffer }),
              (error: unknown) => ({ error }),
            );
        found[index] = inspect(root, entry, () => {
          if (read === undefined) throw new Error('unreachable: a prechecked entry is never read');
          if ('error' in read) throw read.error;
          return read.buffer;
        });
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(options.concurrency ?? 64, candidates.length) }, worker),
    );
  }
  for (const item of found) {
    if (!item) continue;
    if ('kind' in item) result.problems.push(item);
    else if (SUPERVISED_STATUSES.includes(item.manifest.status)) result.supervised.push(item);
    else result.unsupervised.push(item);
  }
  return result;
}

/** A problem known from the directory entry alone (not a directory, not a uuid), or undefined. */
function precheck(root: string, entry: Dirent): DiscoveryProblem | undefined {
  const dir = join(root, entry.name);
  if (!entry.isDirectory()) {
    const what = entry.isSymbolicLink()
      ? 'a symbolic link (cells must be real directories)'
      : 'a file';
    return {
      path: dir,
      kind: 'not_a_directory',
      reason: `expected a cell directory, found ${what}`,
    };
  }
  if (!CellUuidSchema.safeParse(entry.name).success) {
    return {
      path: dir,
      kind: 'bad_dirname',
      reason: 'directory name must be a lower-case version-4 UUID',
    };
  }
  return undefined;
}

function inspect(
  root: string,
  entry: Dirent,
  read: (path: string) => Buffer,
): DiscoveredCell | DiscoveryProblem {
  const problem = precheck(root, entry);
  if (problem) return problem;
  const dir = join(root, entry.name);
  const manifestPath = join(dir, 'cell.json');
  let text: string | undefined;
  try {
    // The dirent already says this is a real directory: read the manifest without another lstat.
    text = read(manifestPath).toString('utf8');
    const { manifest, defaulted } = parseManifest(text, manifestPath);
    if (manifest.uuid !== entry.name) {
      return {
        path: manifestPath,
        kind: 'uuid_mismatch',
        reason: `${manifestPath}: uuid: ${manifest.uuid} does not match the directory name ${entry.name}`,
      };
    }
    return {
      uuid: manifest.uuid,
      dir,
      manifest,
      ...(defaulted.length > 0 ? { defaulted } : {}),
    };
  } catch (error) {
    const code = PitError.is(error) ? error.code : undefined;
    const message = error instanceof Error ? error.message : String(error);
    if (code === 'CELL_NOT_FOUND')
      return {
        path: manifestPath,
        kind: 'missing_manifest',
        reason: `${manifestPath}: missing; expected the cell's manifest`,
      };
    if (code === 'CELL_IO') return { path: dir, kind: 'unreadable', reason: message };
    const status = code === 'CELL_INVALID' && text !== undefined ? unknownStatus(text) : undefined;
    if (status !== undefined) {
      return {
        path: manifestPath,
        kind: 'unknown_status',
        reason: `${manifestPath}: status: ${JSON.stringify(status)} is not one of ${CellStatusSchema.options.join(', ')} (${message})`,
      };
    }
    return { path: manifestPath, kind: 'corrupt_manifest', reason: message };
  }
}

function ignoredReason(name: string): string {
  if (name.startsWith(PROVISIONING_PREFIX))
    return 'a cell being provisioned, or left by a provisioning that crashed: not a cell';
  if (name.startsWith(DESTROYING_PREFIX))
    return 'a cell being destroyed, or left by a destroy that crashed: not a cell';
  return 'a hidden entry: not a cell';
}

/** The `status` of a manifest's JSON when it is present but not one this version knows. */
function unknownStatus(text: string): unknown {
  try {
    const raw: unknown = JSON.parse(text);
    if (typeof raw !== 'object' || raw === null || !('status' in raw)) return undefined;
    const status = (raw as { status: unknown }).status;
    return CellStatusSchema.safeParse(status).success ? undefined : status;
  } catch {
    return undefined;
  }
}
