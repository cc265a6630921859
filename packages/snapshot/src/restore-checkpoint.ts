import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { appendEvent, cellPaths, fsyncDir, type AnyCellEvent } from '@pit/cell-spec';
import { ArchiveEntryChecker, type EntryProblem } from './archive-entry.js';
import { readCheckpoint, withCheckpointLock, listCheckpoints, type Checkpoint } from './checkpoint.js';
import { SnapshotError, toSnapshotError } from './errors.js';
import { lstatOrUndefined } from './files.js';
import { silentLogger, type Logger } from './logger.js';

/** Options of {@link restoreCheckpoint}. */
export interface RestoreCheckpointOptions {
  /** The checkpoint to restore (its name, e.g. `2026-11-22T17-43-00.123Z`). @default the newest */
  checkpoint?: string;
  /** Who asked; goes into the `checkpoint_restored` event. */
  restoredBy?: string;
  /** Why; goes into the event. */
  reason?: string;
  /** Tar-bomb limit: most entries. @default 1000000 */
  maxEntries?: number;
  /** Tar-bomb limit: most bytes of file content once unpacked. (bytes) @default 17179869184 (16 GiB) */
  maxBytes?: number;
  /** fsync every restored file and directory before the swap (durable across power loss). @default true */
  fsync?: boolean;
  /** How long to wait for another restore or prune of the same cell. (ms) @default 5000 */
  lockTimeoutMs?: number;
  logger?: Logger;
  /** Clock, for tests. @default () => new Date() */
  now?: () => Date;
}

/** What {@link restoreCheckpoint} did. */
export interface RestoredCheckpoint {
  checkpoint: Checkpoint;
  /** Entries extracted. */
  entries: number;
  /** Bytes of file content extracted. */
  bytes: number;
  /** The `checkpoint_restored` event as appended. */
  event: AnyCellEvent;
}

const STAGING_PREFIX = '.workspace-restore-';
const PREVIOUS_PREFIX = '.workspace-previous-';

/**
 * Puts a cell's workspace back in order after a restore was interrupted: a workspace moved
 * aside but not replaced is moved back; unfinished extractions and kept-aside old workspaces
 * are removed. Called by {@link restoreCheckpoint} before it starts.
 */
export async function recoverWorkspace(cell: string, logger: Logger = silentLogger): Promise<void> {
  const paths = cellPaths(cell);
  const names = await fs.readdir(paths.dir).catch((error: unknown) => {
    throw toSnapshotError(error, paths.dir, 'list cell');
  });
  const previous = names.filter((name) => name.startsWith(PREVIOUS_PREFIX));
  if ((await lstatOrUndefined(paths.workspace)) === undefined && previous.length > 0) {
    const stats = await Promise.all(previous.map(async (name) => ({ name, stat: await lstatOrUndefined(join(paths.dir, name)) })));
    const newest = stats.filter((item) => item.stat?.isDirectory()).sort((a, b) => (b.stat?.mtimeMs ?? 0) - (a.stat?.mtimeMs ?? 0))[0];
    if (newest !== undefined) {
      await fs.rename(join(paths.dir, newest.name), paths.workspace).catch((error: unknown) => {
        throw toSnapshotError(error, paths.workspace, 'move the previous workspace back');
      });
      await fsyncDir(paths.dir);
      logger.warn('snapshot: a restore was interrupted mid-swap; the previous workspace was put back', { cell });
    }
  }
  for (const name of names) {
    if (!name.startsWith(STAGING_PREFIX) && !name.startsWith(PREVIOUS_PREFIX)) continue;
    const path = join(paths.dir, name);
    if ((await lstatOrUndefined(path)) === undefined) continue;
    await fs.rm(path, { recursive: true, force: true }).catch((error: unknown) => {
      throw toSnapshotError(error, path, 'remove leftover of an interrupted restore');
    });
  }
}

async function hashArchive(handle: fs.FileHandle): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const stream = createReadStream('', { fd: handle.fd, autoClose: false, start: 0, highWaterMark: 1024 * 1024 });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function fsyncTree(root: string): Promise<void> {
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop() as string;
    const entries = await fs.readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (entry.isFile()) {
        const handle = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
      }
    }
    await fsyncDir(dir);
  }
}

async function extract(handle: fs.FileHandle, staging: string, checker: ArchiveEntryChecker): Promise<void> {
  const { Unpack } = await import('tar');
  let problem: EntryProblem | undefined;
  const source = createReadStream('', { fd: handle.fd, autoClose: false, start: 0, highWaterMark: 1024 * 1024 });
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (error?: unknown) => {
      if (settled) return;
      settled = true;
      source.destroy();
      if (error !== undefined) reject(error);
      else resolve();
    };
    const unpack = new Unpack({
      cwd: staging,
      strict: true,
      preserveOwner: false,
      chmod: true,
      processUmask: 0,
      // Limits are enforced from the headers by the checker (a large zero-filled file compresses ~1000:1 legitimately).
      maxDecompressionRatio: Infinity,
      filter: (_path, entry) => {
        if (problem !== undefined) return false;
        const header = entry as unknown as { path: string; type: string; size: number; linkpath?: string; mode?: number };
        problem = checker.check(header);
        if (problem !== undefined) {
          unpack.abort(new Error(problem.message));
          return false;
        }
        return true;
      },
    });
    unpack.on('error', (error: unknown) => finish(problem !== undefined ? new SnapshotError(problem.code, problem.message) : error));
    unpack.on('close', () => finish(problem !== undefined ? new SnapshotError(problem.code, problem.message) : undefined));
    source.on('error', (error) => finish(error));
    source.pipe(unpack as unknown as NodeJS.WritableStream);
  });
}

function classifyExtractError(error: unknown, archive: string): SnapshotError {
  if (error instanceof SnapshotError) return error;
  const errno = (error as NodeJS.ErrnoException).code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT' || errno === 'EIO' || errno === 'EACCES' || errno === 'EPERM' || errno === 'EMFILE' || errno === 'ENFILE') {
    return toSnapshotError(error, archive, 'extract');
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SnapshotError('SNAPSHOT_CORRUPT', `${archive}: archive is damaged and cannot be extracted (${message}); the workspace was not touched`, { cause: error });
}

/**
 * Restores a cell's `workspace/` from a checkpoint (the newest by default): verifies the
 * archive's size and sha256 against the manifest first, extracts into a fresh directory
 * inside the cell (refusing absolute paths, `..`, links out of the workspace, devices, and
 * more entries or bytes than the limits), fsyncs it, then swaps it for `workspace/`; the old
 * workspace is kept aside until the swap succeeded. Appends `checkpoint_restored`. Stop the
 * cell's agents first: files they hold open keep pointing at the old workspace.
 * @throws {SnapshotError} SNAPSHOT_NOT_FOUND (no such checkpoint), SNAPSHOT_BAD_NAME,
 *   SNAPSHOT_CORRUPT (truncated, tampered or damaged archive), SNAPSHOT_UNSAFE_PATH (hostile
 *   entry), SNAPSHOT_TOO_LARGE (tar bomb), SNAPSHOT_LOCKED, SNAPSHOT_IO (disk full). In every
 *   case the workspace is left as it was.
 * @example
 * const { checkpoint } = await restoreCheckpoint('/var/missions/3f2a…', { restoredBy: 'pit', reason: 'substitute takes over' });
 */
export async function restoreCheckpoint(cell: string, options: RestoreCheckpointOptions | string = {}): Promise<RestoredCheckpoint> {
  const settings: RestoreCheckpointOptions = typeof options === 'string' ? { checkpoint: options } : options;
  const logger = settings.logger ?? silentLogger;
  const paths = cellPaths(cell);
  let checkpoint: Checkpoint;
  if (settings.checkpoint !== undefined) checkpoint = await readCheckpoint(cell, settings.checkpoint);
  else {
    const newest = (await listCheckpoints(cell)).checkpoints[0];
    if (newest === undefined) throw new SnapshotError('SNAPSHOT_NOT_FOUND', `${paths.checkpoints}: the cell has no checkpoint to restore`);
    checkpoint = newest;
  }
  const { archive, manifest } = checkpoint;
  return withCheckpointLock(paths.checkpoints, settings.lockTimeoutMs ?? 5000, async () => {
    await recoverWorkspace(cell, logger);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(archive, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (error) {
      throw toSnapshotError(error, archive, 'open checkpoint');
    }
    const staging = join(paths.dir, `${STAGING_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    let swapped = false;
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new SnapshotError('SNAPSHOT_UNSAFE_PATH', `${archive}: expected a regular file`);
      if (stat.size !== manifest.bytes) {
        throw new SnapshotError('SNAPSHOT_CORRUPT', `${archive}: ${stat.size} bytes, the manifest says ${manifest.bytes} (truncated or replaced); refused`);
      }
      const actual = await hashArchive(handle).catch((error: unknown) => {
        throw toSnapshotError(error, archive, 'hash checkpoint');
      });
      if (actual.sha256 !== manifest.sha256 || actual.bytes !== manifest.bytes) {
        throw new SnapshotError('SNAPSHOT_CORRUPT', `${archive}: sha256 ${actual.sha256} does not match the manifest's ${manifest.sha256} (tampered or damaged); refused`);
      }
      await fs.mkdir(staging, { mode: 0o700 }).catch((error: unknown) => {
        throw toSnapshotError(error, staging, 'create staging directory');
      });
      const checker = new ArchiveEntryChecker({ maxEntries: settings.maxEntries ?? 1_000_000, maxBytes: settings.maxBytes ?? 16 * 1024 ** 3 });
      await extract(handle, staging, checker).catch((error: unknown) => {
        throw classifyExtractError(error, archive);
      });
      if (checker.rootMode !== undefined) await fs.chmod(staging, (checker.rootMode & 0o7777) | 0o700);
      else await fs.chmod(staging, 0o755);
      if (settings.fsync ?? true) {
        await fsyncTree(staging).catch((error: unknown) => {
          throw toSnapshotError(error, staging, 'fsync restored workspace');
        });
      }
      // Swap: the old workspace goes aside, the new one takes its name, then the old one is removed.
      const previous = join(paths.dir, `${PREVIOUS_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
      const hadWorkspace = (await lstatOrUndefined(paths.workspace)) !== undefined;
      try {
        if (hadWorkspace) await fs.rename(paths.workspace, previous);
        try {
          await fs.rename(staging, paths.workspace);
        } catch (error) {
          if (hadWorkspace) await fs.rename(previous, paths.workspace).catch(() => undefined);
          throw error;
        }
        swapped = true;
        await fsyncDir(paths.dir);
      } catch (error) {
        throw toSnapshotError(error, paths.workspace, 'swap workspace');
      }
      if (hadWorkspace) {
        await fs.rm(previous, { recursive: true, force: true }).catch((error: unknown) => {
          logger.warn('snapshot: could not remove the previous workspace after a restore; the next restore will', { cell, path: previous, error: (error as Error).message });
        });
      }
      const event = await appendEvent(paths.events, {
        ts: (settings.now ?? (() => new Date()))().toISOString(),
        event: 'checkpoint_restored',
        checkpoint: checkpoint.name,
        sha256: manifest.sha256,
        files: manifest.files,
        ...(settings.restoredBy !== undefined ? { restored_by: settings.restoredBy } : {}),
        ...(settings.reason !== undefined ? { reason: settings.reason } : {}),
      }).catch((error: unknown) => {
        throw toSnapshotError(error, paths.events, `workspace restored from ${checkpoint.name}, but appending checkpoint_restored failed`);
      });
      logger.info('snapshot: workspace restored from checkpoint', { cell, checkpoint: checkpoint.name, entries: checker.entries, bytes: checker.bytes });
      return { checkpoint, entries: checker.entries, bytes: checker.bytes, event };
    } finally {
      await handle.close().catch(() => undefined);
      if (!swapped) await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    }
  });
}
