import { createHash } from 'node:crypto';
import { constants, promises as fs, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import {
  appendEvent,
  atomicTempPath,
  isProcessAlive,
  cellPaths,
  fsyncDir,
  readJsonFile,
  withFileLock,
  writeJsonAtomic,
  type AnyCellEvent,
} from '@pit/cell-spec';
import {
  assertCheckpointName,
  CHECKPOINT_NAME_PATTERN,
  checkpointFiles,
  CheckpointManifestSchema,
  checkpointStamp,
  compareCheckpointNames,
  type CheckpointManifest,
} from './checkpoint-layout.js';
import { symlinkStaysInside } from './config-scan.js';
import { SnapshotError, toSnapshotError } from './errors.js';
import { describeKind, lstatOrUndefined } from './files.js';
import { silentLogger, type Logger } from './logger.js';

/** A checkpoint on disk. */
export interface Checkpoint {
  name: string;
  /** `checkpoints/<name>.tar.gz` */
  archive: string;
  /** `checkpoints/<name>.json` */
  manifestPath: string;
  manifest: CheckpointManifest;
}

/** Options of {@link createCheckpoint}. */
export interface CreateCheckpointOptions {
  /** Who asked (an agent, the daemon, an operator); goes into the manifest and the event. */
  createdBy: string;
  /** Why. @default 'checkpoint' */
  reason?: string;
  /** gzip level, 1 (fast) to 9 (small). @default 6 */
  gzipLevel?: number;
  logger?: Logger;
  /** Clock, for tests. @default () => new Date() */
  now?: () => Date;
  /** Where archives and manifests are kept (see {@link checkpointsDir}). @default the cell's `checkpoints/` */
  store?: string;
}

/**
 * The directory a cell's checkpoints are kept in: `store` when given (a supervisor keeps them
 * where the cell's agents cannot write, e.g. `<state_dir>/checkpoints/<uuid>`, so that an
 * archive or manifest an agent planted is never taken for one), else the cell's `checkpoints/`.
 */
export function checkpointsDir(cell: string, store?: string): string {
  return store ?? cellPaths(cell).checkpoints;
}

/** What {@link createCheckpoint} returns: the checkpoint and the `checkpoint_created` event as appended. */
export interface CreatedCheckpoint extends Checkpoint {
  event: AnyCellEvent;
}

const LOCK_NAME = '.lock';

/** Locks the cell's `checkpoints/` for a restore or a prune. */
export async function withCheckpointLock<T>(
  checkpointsDir: string,
  timeoutMs: number,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await withFileLock(join(checkpointsDir, LOCK_NAME), work, { timeoutMs, staleMs: 5000 });
  } catch (error) {
    throw toSnapshotError(error, join(checkpointsDir, LOCK_NAME), 'lock checkpoints');
  }
}

/**
 * Checks that `cell/workspace` is a real directory.
 * @throws {SnapshotError} SNAPSHOT_NOT_FOUND, SNAPSHOT_UNSAFE_PATH.
 */
async function assertWorkspace(workspace: string): Promise<Stats> {
  const stat = await lstatOrUndefined(workspace);
  if (stat === undefined)
    throw new SnapshotError(
      'SNAPSHOT_NOT_FOUND',
      `${workspace}: the cell has no workspace directory`,
    );
  if (!stat.isDirectory())
    throw new SnapshotError(
      'SNAPSHOT_UNSAFE_PATH',
      `${workspace}: expected the workspace directory, found ${describeKind(stat)}`,
    );
  return stat;
}

async function writeAll(handle: fs.FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

function drain(stream: import('tar').Pack): Promise<void> {
  return new Promise((resolve) => {
    stream.on('end', () => resolve());
    stream.on('error', () => resolve());
    stream.resume();
  });
}

/**
 * Archives the cell's `workspace/` as `checkpoints/<ts>.tar.gz` (streamed through gzip and
 * sha256 into a temporary file, fsynced, then published under its final name), writes the
 * manifest `checkpoints/<ts>.json`, and appends `checkpoint_created` to the cell's events.
 * Memory stays flat whatever the workspace size. Symlinks pointing out of the workspace,
 * FIFOs, sockets and devices are left out and listed in `manifest.skipped`.
 * @throws {SnapshotError} SNAPSHOT_NOT_FOUND (no workspace), SNAPSHOT_UNSAFE_PATH (workspace is a
 *   link), SNAPSHOT_IO (disk full: nothing is published, earlier checkpoints are untouched).
 * @example
 * const { name, manifest } = await createCheckpoint('/var/missions/3f2a…', { createdBy: 'forge', reason: 'before refactor' });
 */
export async function createCheckpoint(
  cell: string,
  options: CreateCheckpointOptions,
): Promise<CreatedCheckpoint> {
  if (typeof options?.createdBy !== 'string' || options.createdBy === '')
    throw new SnapshotError(
      'SNAPSHOT_INVALID',
      'createCheckpoint: createdBy: expected a non-empty string',
    );
  const level = options.gzipLevel ?? 6;
  if (!Number.isInteger(level) || level < 1 || level > 9)
    throw new SnapshotError(
      'SNAPSHOT_INVALID',
      `createCheckpoint: gzipLevel: ${level} must be an integer from 1 to 9`,
    );
  const logger = options.logger ?? silentLogger;
  const paths = { ...cellPaths(cell), checkpoints: checkpointsDir(cell, options.store) };
  await assertWorkspace(paths.workspace);
  await fs.mkdir(paths.checkpoints, { recursive: true, mode: 0o750 }).catch((error: unknown) => {
    throw toSnapshotError(error, paths.checkpoints, 'create directory');
  });
  const date = (options.now ?? (() => new Date()))();
  const stamp = checkpointStamp(date);
  const temp = atomicTempPath(join(paths.checkpoints, `${stamp}.tar.gz`));
  const skipped: Array<{ path: string; reason: string }> = [];
  let files = 0;
  let entries = 0;
  let unpacked = 0;
  let bytes = 0;
  const hash = createHash('sha256');
  let handle: fs.FileHandle | undefined;
  let published: string | undefined;
  let pack: import('tar').Pack | undefined;
  try {
    handle = await fs.open(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    const { Pack } = await import('tar');
    pack = new Pack({
      cwd: paths.workspace,
      gzip: { level },
      strict: true,
      // Bounded reads keep memory flat (the default reads up to 16 MiB of a large file at once).
      maxReadSize: 64 * 1024,
      filter: (path: string, stat: Stats | unknown) => {
        const info = stat as Stats;
        const relative = path.replace(/^\.\/?/, '');
        if (info.isFile()) {
          files += 1;
          unpacked += info.size;
        } else if (info.isSymbolicLink()) {
          const target = readlinkSync(join(paths.workspace, relative));
          if (
            target.startsWith('/') ||
            !symlinkStaysInside(join(paths.workspace, relative), target, paths.workspace)
          ) {
            skipped.push({
              path: relative,
              reason: `symbolic link to ${target} points out of the workspace`,
            });
            return false;
          }
        } else if (!info.isDirectory()) {
          skipped.push({ path: relative, reason: `${describeKind(info)} cannot be archived` });
          return false;
        }
        entries += 1;
        return true;
      },
    });
    pack.add('.');
    pack.end();
    for await (const chunk of pack as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
      await writeAll(handle, chunk);
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    // Publish under the first free name: link() fails instead of overwriting a concurrent checkpoint.
    for (let suffix = 1; published === undefined; suffix += 1) {
      const name = suffix === 1 ? stamp : `${stamp}-${suffix}`;
      const { archive, manifest } = checkpointFiles(paths.checkpoints, name);
      if ((await lstatOrUndefined(manifest)) !== undefined) continue;
      try {
        await fs.link(temp, archive);
        published = name;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || suffix > 1000) throw error;
      }
    }
    await fs.rm(temp, { force: true });
    await fsyncDir(paths.checkpoints);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await fs.rm(temp, { force: true }).catch(() => undefined);
    // node-tar cannot cancel a pack: let it run to the end so it closes every workspace file it holds open.
    if (pack !== undefined) await drain(pack);
    if (published !== undefined)
      await fs
        .rm(checkpointFiles(paths.checkpoints, published).archive, { force: true })
        .catch(() => undefined);
    throw toSnapshotError(error, paths.workspace, 'create checkpoint');
  }
  const name = published;
  const files_ = checkpointFiles(paths.checkpoints, name);
  const manifest: CheckpointManifest = {
    ts: date.toISOString(),
    name,
    sha256: hash.digest('hex'),
    bytes,
    files,
    entries,
    unpacked_bytes: unpacked,
    created_by: options.createdBy,
    reason: options.reason ?? 'checkpoint',
    skipped,
  };
  try {
    await writeJsonAtomic(files_.manifest, manifest);
  } catch (error) {
    await fs.rm(files_.archive, { force: true }).catch(() => undefined);
    throw toSnapshotError(error, files_.manifest, 'write checkpoint manifest');
  }
  if (skipped.length > 0)
    logger.warn('snapshot: checkpoint left out paths it cannot archive safely', {
      cell,
      checkpoint: name,
      skipped,
    });
  let event: AnyCellEvent;
  try {
    // Beneath the cell: a `logs/` an agent made a link is refused, not written through.
    event = await appendEvent(
      paths.events,
      {
        ts: manifest.ts,
        event: 'checkpoint_created',
        checkpoint: name,
        sha256: manifest.sha256,
        bytes,
        files,
        created_by: manifest.created_by,
        reason: manifest.reason,
      },
      { beneath: cell },
    );
  } catch (error) {
    throw toSnapshotError(
      error,
      paths.events,
      `checkpoint ${name} was written, but appending checkpoint_created failed`,
    );
  }
  logger.info('snapshot: checkpoint created', { cell, checkpoint: name, bytes, files });
  return { name, archive: files_.archive, manifestPath: files_.manifest, manifest, event };
}

/** A checkpoint that cannot be used, and why. */
export interface CheckpointProblem {
  name: string;
  path: string;
  reason: string;
}

/** What {@link listCheckpoints} found. */
export interface CheckpointList {
  /** Usable checkpoints, newest first. */
  checkpoints: Checkpoint[];
  /** Manifests that do not parse or whose archive is missing (reported, never silently skipped). */
  problems: CheckpointProblem[];
}

/**
 * Lists a cell's checkpoints, newest first by the creation time their manifests record (`ts`). A checkpoint exists once its manifest is written;
 * archives without one (a crash mid-write) are not listed.
 * @throws {SnapshotError} SNAPSHOT_IO when `checkpoints/` cannot be read (a missing one is an empty list).
 */
export async function listCheckpoints(
  cell: string,
  options: { store?: string } = {},
): Promise<CheckpointList> {
  const dir = checkpointsDir(cell, options.store);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      return { checkpoints: [], problems: [] };
    throw toSnapshotError(error, dir, 'list checkpoints');
  }
  const checkpoints: Checkpoint[] = [];
  const problems: CheckpointProblem[] = [];
  for (const file of names) {
    if (!file.endsWith('.json')) continue;
    const name = file.slice(0, -'.json'.length);
    if (!CHECKPOINT_NAME_PATTERN.test(name)) continue;
    const { archive, manifest: manifestPath } = checkpointFiles(dir, name);
    try {
      const manifest = await readJsonFile(manifestPath, CheckpointManifestSchema);
      if (manifest.name !== name)
        throw new SnapshotError(
          'SNAPSHOT_CORRUPT',
          `${manifestPath}: name: expected ${name}, found ${manifest.name}`,
        );
      const stat = await lstatOrUndefined(archive);
      if (stat === undefined || !stat.isFile())
        throw new SnapshotError(
          'SNAPSHOT_CORRUPT',
          `${archive}: archive of checkpoint ${name} is missing`,
        );
      checkpoints.push({ name, archive, manifestPath, manifest });
    } catch (error) {
      problems.push({
        name,
        path: manifestPath,
        reason: toSnapshotError(error, manifestPath, 'read checkpoint manifest').message,
      });
    }
  }
  // Newest by the creation time its manifest records, not by file name.
  checkpoints.sort(
    (a, b) =>
      Date.parse(b.manifest.ts) - Date.parse(a.manifest.ts) ||
      compareCheckpointNames(b.name, a.name),
  );
  return { checkpoints, problems };
}

/** Options of {@link pruneCheckpoints}. */
export interface PruneCheckpointsOptions {
  /** Keep at most this many (newest first). @default 5 */
  keep?: number;
  /** Also remove checkpoints older than this. (ms) The newest checkpoint is always kept. */
  maxAgeMs?: number;
  /** Archives without a manifest older than this are removed as leftovers of a crash. (ms) @default 3600000 */
  orphanGraceMs?: number;
  /** How long to wait for a restore in progress. (ms) @default 5000 */
  lockTimeoutMs?: number;
  logger?: Logger;
  /** Clock, for tests. @default () => new Date() */
  now?: () => Date;
  /** Where the checkpoints are kept (see {@link checkpointsDir}). */
  store?: string;
}

/** What {@link pruneCheckpoints} did. */
export interface PruneResult {
  /** Names of removed checkpoints. */
  removed: string[];
  /** Names of kept checkpoints, newest first. */
  kept: string[];
  /** Leftover files of crashed writers that were removed. */
  leftovers: string[];
}

/**
 * Applies retention by count and by age (never removing the newest checkpoint), and removes
 * leftovers of crashed writers. The manifest goes first, so a crash leaves at worst an orphan
 * archive, which a later prune removes.
 * @throws {SnapshotError} SNAPSHOT_INVALID (bad options), SNAPSHOT_LOCKED, SNAPSHOT_IO.
 */
export async function pruneCheckpoints(
  cell: string,
  options: PruneCheckpointsOptions = {},
): Promise<PruneResult> {
  const keep = options.keep ?? 5;
  if (!Number.isInteger(keep) || keep < 1)
    throw new SnapshotError(
      'SNAPSHOT_INVALID',
      `pruneCheckpoints: keep: ${keep} must be an integer ≥ 1`,
    );
  const now = (options.now ?? (() => new Date()))().getTime();
  const dir = checkpointsDir(cell, options.store);
  if ((await lstatOrUndefined(dir)) === undefined) return { removed: [], kept: [], leftovers: [] };
  return withCheckpointLock(dir, options.lockTimeoutMs ?? 5000, async () => {
    const { checkpoints } = await listCheckpoints(
      cell,
      options.store !== undefined ? { store: options.store } : {},
    );
    const removed: string[] = [];
    const kept: string[] = [];
    for (const [index, checkpoint] of checkpoints.entries()) {
      const tooOld =
        options.maxAgeMs !== undefined &&
        now - Date.parse(checkpoint.manifest.ts) > options.maxAgeMs;
      if (index === 0 || (index < keep && !tooOld)) {
        kept.push(checkpoint.name);
        continue;
      }
      try {
        await fs.rm(checkpoint.manifestPath, { force: true });
        await fs.rm(checkpoint.archive, { force: true });
      } catch (error) {
        throw toSnapshotError(error, checkpoint.archive, 'remove checkpoint');
      }
      removed.push(checkpoint.name);
    }
    const leftovers: string[] = [];
    const grace = options.orphanGraceMs ?? 3_600_000;
    const listed = new Set(checkpoints.map((checkpoint) => checkpoint.name));
    for (const file of await fs.readdir(dir).catch(() => [] as string[])) {
      const path = join(dir, file);
      const temp = /^\..+\.tar\.gz\.(\d+)\.[0-9a-f]{12}\.tmp$/.exec(file);
      if (temp) {
        if (!isProcessAlive(Number(temp[1]))) {
          await fs.rm(path, { force: true });
          leftovers.push(file);
        }
        continue;
      }
      if (!file.endsWith('.tar.gz')) continue;
      const name = file.slice(0, -'.tar.gz'.length);
      if (!CHECKPOINT_NAME_PATTERN.test(name) || listed.has(name) || removed.includes(name))
        continue;
      if ((await lstatOrUndefined(checkpointFiles(dir, name).manifest)) !== undefined) continue;
      const stat = await lstatOrUndefined(path);
      if (stat !== undefined && now - stat.mtimeMs > grace) {
        await fs.rm(path, { force: true });
        leftovers.push(file);
      }
    }
    await fsyncDir(dir).catch(() => undefined);
    if (removed.length > 0 || leftovers.length > 0)
      (options.logger ?? silentLogger).info('snapshot: pruned checkpoints', {
        cell,
        removed,
        leftovers,
      });
    return { removed, kept, leftovers };
  });
}

/**
 * Reads one checkpoint's manifest by name.
 * @throws {SnapshotError} SNAPSHOT_BAD_NAME, SNAPSHOT_NOT_FOUND, SNAPSHOT_CORRUPT.
 */
export async function readCheckpoint(
  cell: string,
  name: string,
  options: { store?: string } = {},
): Promise<Checkpoint> {
  const dir = checkpointsDir(cell, options.store);
  const { archive, manifest: manifestPath } = checkpointFiles(dir, assertCheckpointName(name));
  let manifest: CheckpointManifest;
  try {
    manifest = await readJsonFile(manifestPath, CheckpointManifestSchema);
  } catch (error) {
    const mapped = toSnapshotError(error, manifestPath, 'read checkpoint manifest');
    if (mapped.code === 'SNAPSHOT_NOT_FOUND')
      throw new SnapshotError(
        'SNAPSHOT_NOT_FOUND',
        `${manifestPath}: no checkpoint named ${name}`,
        { cause: error },
      );
    throw mapped;
  }
  if (manifest.name !== name)
    throw new SnapshotError(
      'SNAPSHOT_CORRUPT',
      `${manifestPath}: name: expected ${name}, found ${manifest.name}`,
    );
  return { name, archive, manifestPath, manifest };
}
