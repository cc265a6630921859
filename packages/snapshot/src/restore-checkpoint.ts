import { createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import {
  appendEvent,
  cellPaths,
  fsyncDir,
  openDirectoryBeneath,
  type AnyCellEvent,
} from '@pit/cell-spec';
import { ArchiveEntryChecker, type EntryProblem } from './archive-entry.js';
import type { CheckpointManifest } from './checkpoint-layout.js';
import {
  checkpointsDir,
  readCheckpoint,
  withCheckpointLock,
  listCheckpoints,
  type Checkpoint,
} from './checkpoint.js';
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
  /**
   * Tar-bomb cap: most entries. The limit applied is 4× the entries the manifest records (at
   * least 64), never more than this. @default 1000000
   */
  maxEntries?: number;
  /**
   * Tar-bomb cap: most bytes of file content once unpacked. The limit applied is 4× the
   * manifest's `unpacked_bytes` (at least 1 MiB), never more than this. (bytes)
   * @default 17179869184 (16 GiB)
   */
  maxBytes?: number;
  /** Where the checkpoints are kept (see `checkpointsDir()`). @default the cell's `checkpoints/` */
  store?: string;
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
const CHUNK_BYTES = 64 * 1024;
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
    const stats = await Promise.all(
      previous.map(async (name) => ({ name, stat: await lstatOrUndefined(join(paths.dir, name)) })),
    );
    const newest = stats
      .filter((item) => item.stat?.isDirectory())
      .sort((a, b) => (b.stat?.mtimeMs ?? 0) - (a.stat?.mtimeMs ?? 0))[0];
    if (newest !== undefined) {
      await fs.rename(join(paths.dir, newest.name), paths.workspace).catch((error: unknown) => {
        throw toSnapshotError(error, paths.workspace, 'move the previous workspace back');
      });
      await fsyncDir(paths.dir);
      logger.warn(
        'snapshot: a restore was interrupted mid-swap; the previous workspace was put back',
        { cell },
      );
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

/** What {@link pump} writes the decompressed tar into: a node-tar Parser or Unpack. */
interface TarSink {
  write(chunk: Buffer): boolean;
  end(): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Decompresses the archive behind `handle` into `target` (plain tar), reporting each
 * compressed chunk to `onCompressed`; stops reading when `stopped` settles. One read buffer
 * serves the whole archive: the next read waits until gunzip has consumed the previous chunk
 * (its write callback). Reading into a fresh buffer per chunk, as a read stream does, left a
 * tail of dead 64 KiB buffers awaiting collection, which the peak RSS of a restore paid for.
 * Backpressure runs from node-tar (`write` → false, `drain`) through gunzip to the reads
 * (node-tar's own gunzip does not wait for a slow consumer). Rejects when a read or the
 * decompression fails (a damaged archive).
 */
async function pump(
  handle: fs.FileHandle,
  target: TarSink,
  stopped: Promise<void>,
  onCompressed?: (chunk: Buffer) => void,
): Promise<void> {
  const gunzip = createGunzip({ chunkSize: CHUNK_BYTES });
  let done = false;
  let failure: unknown;
  // Whatever the pump is waiting for (gunzip taking a chunk, or its end), stopping wakes it.
  let wake: (() => void) | undefined;
  const halt = (): void => {
    done = true;
    wake?.();
  };
  void stopped.then(halt);
  gunzip.on('error', (error: unknown) => {
    failure ??= error;
    halt();
  });
  gunzip.on('data', (chunk: Buffer) => {
    if (done) return;
    let more: boolean;
    try {
      more = target.write(chunk);
    } catch (error) {
      failure ??= error;
      halt();
      return;
    }
    if (!more) {
      gunzip.pause();
      target.once('drain', () => gunzip.resume());
    }
  });
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let position = 0;
  try {
    while (!done) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, position);
      if (bytesRead === 0 || done) break;
      position += bytesRead;
      const chunk = bytesRead === CHUNK_BYTES ? buffer : buffer.subarray(0, bytesRead);
      onCompressed?.(chunk);
      await new Promise<void>((resolve) => {
        wake = resolve;
        gunzip.write(chunk, () => resolve());
      });
      wake = undefined;
    }
    if (!done) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        gunzip.once('end', () => resolve());
        gunzip.end();
      });
      wake = undefined;
    }
  } catch (error) {
    failure ??= error;
  } finally {
    gunzip.destroy();
  }
  if (failure !== undefined) throw failure;
  if (!done) target.end();
  await stopped;
}

/**
 * One read of the archive: its sha256, and every entry checked by `checker` (nothing is
 * written). Stops at the first hostile entry; a damaged archive is still hashed to the end.
 */
async function hashAndCheck(
  handle: fs.FileHandle,
  checker: ArchiveEntryChecker,
): Promise<{ sha256: string; bytes: number; problem?: EntryProblem; damage?: unknown }> {
  const { Parser } = await import('tar');
  const hash = createHash('sha256');
  let bytes = 0;
  let problem: EntryProblem | undefined;
  let damage: unknown;
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  const parser = new Parser({
    strict: true,
    filter: (_path, entry) => {
      if (problem === undefined) {
        problem = checker.check(entry as unknown as EntryHeader);
        if (problem !== undefined) stop();
      }
      return false;
    },
  });
  parser.on('end', () => stop());
  parser.on('error', (error: unknown) => {
    damage ??= error;
    stop();
  });
  try {
    await pump(handle, parser, stopped, (chunk) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
  } catch (error) {
    damage ??= error;
  }
  if (problem === undefined) {
    // Anything after the end of the gzip stream (or after the point where it broke) is hashed too.
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, bytes);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      bytes += bytesRead;
    }
  }
  return { sha256: hash.digest('hex'), bytes, problem, damage };
}

interface EntryHeader {
  path: string;
  type: string;
  size: number;
  linkpath?: string;
  mode?: number;
}

/**
 * Extracts the (already checked) archive into `staging`. Runs to the end even after a
 * failed entry (a full disk) so that no write is still in flight when it settles.
 */
async function extract(
  handle: fs.FileHandle,
  staging: string,
  checker: ArchiveEntryChecker,
): Promise<void> {
  const { Unpack } = await import('tar');
  let problem: EntryProblem | undefined;
  let failure: unknown;
  const unpack = new Unpack({
    cwd: staging,
    strict: false,
    preserveOwner: false,
    chmod: true,
    processUmask: 0,
    filter: (_path, entry) => {
      if (problem !== undefined || failure !== undefined) return false;
      problem = checker.check(entry as unknown as EntryHeader);
      return problem === undefined;
    },
  });
  unpack.on(
    'warn',
    (code: string, message: string, data: { code?: string } & Record<string, unknown>) => {
      failure ??= Object.assign(new Error(`${code}: ${message}`), { code: data.code ?? code });
    },
  );
  const closed = new Promise<void>((resolve) => {
    unpack.on('close', () => resolve());
    unpack.on('error', (error: unknown) => {
      failure ??= error;
      resolve();
    });
  });
  try {
    await pump(handle, unpack, closed);
  } catch (error) {
    failure ??= error;
  }
  if (problem !== undefined) throw new SnapshotError(problem.code, problem.message);
  if (failure !== undefined) throw failure;
}

/** Removes a staging directory that extraction may still touch: renamed out of the way first. */
async function discard(path: string): Promise<void> {
  const trash = `${path}.discard`;
  const target = await fs.rename(path, trash).then(
    () => trash,
    () => path,
  );
  await fs
    .rm(target, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 })
    .catch(() => undefined);
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

function classifyExtractError(error: unknown, archive: string): SnapshotError {
  if (error instanceof SnapshotError) return error;
  const errno = (error as NodeJS.ErrnoException).code;
  if (
    errno === 'ENOSPC' ||
    errno === 'EDQUOT' ||
    errno === 'EIO' ||
    errno === 'EACCES' ||
    errno === 'EPERM' ||
    errno === 'EMFILE' ||
    errno === 'ENFILE'
  ) {
    return toSnapshotError(error, archive, 'extract');
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SnapshotError(
    'SNAPSHOT_CORRUPT',
    `${archive}: archive is damaged and cannot be extracted (${message}); the workspace was not touched`,
    { cause: error },
  );
}

/**
 * The tar-bomb limits of one restore: 4× what the checkpoint's manifest records (entries and
 * unpacked bytes, with a floor for tiny workspaces), never more than the caps.
 */
export function restoreLimits(
  manifest: Pick<CheckpointManifest, 'entries' | 'unpacked_bytes'>,
  caps: { maxEntries?: number; maxBytes?: number } = {},
): { maxEntries: number; maxBytes: number } {
  return {
    maxEntries: Math.min(caps.maxEntries ?? 1_000_000, Math.max(64, 4 * manifest.entries)),
    maxBytes: Math.min(
      caps.maxBytes ?? 16 * 1024 ** 3,
      Math.max(1024 ** 2, 4 * manifest.unpacked_bytes),
    ),
  };
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
export async function restoreCheckpoint(
  cell: string,
  options: RestoreCheckpointOptions | string = {},
): Promise<RestoredCheckpoint> {
  const settings: RestoreCheckpointOptions =
    typeof options === 'string' ? { checkpoint: options } : options;
  const logger = settings.logger ?? silentLogger;
  const store = settings.store !== undefined ? { store: settings.store } : {};
  const paths = { ...cellPaths(cell), checkpoints: checkpointsDir(cell, settings.store) };
  let checkpoint: Checkpoint;
  if (settings.checkpoint !== undefined)
    checkpoint = await readCheckpoint(cell, settings.checkpoint, store);
  else {
    const newest = (await listCheckpoints(cell, store)).checkpoints[0];
    if (newest === undefined)
      throw new SnapshotError(
        'SNAPSHOT_NOT_FOUND',
        `${paths.checkpoints}: the cell has no checkpoint to restore`,
      );
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
    const staging = join(
      paths.dir,
      `${STAGING_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`,
    );
    let swapped = false;
    try {
      const stat = await handle.stat();
      if (!stat.isFile())
        throw new SnapshotError('SNAPSHOT_UNSAFE_PATH', `${archive}: expected a regular file`);
      if (stat.size !== manifest.bytes) {
        throw new SnapshotError(
          'SNAPSHOT_CORRUPT',
          `${archive}: ${stat.size} bytes, the manifest says ${manifest.bytes} (truncated or replaced); refused`,
        );
      }
      const limits = restoreLimits(manifest, settings);
      // First read: the hash, and every entry checked, before anything is written.
      const checked = await hashAndCheck(handle, new ArchiveEntryChecker(limits)).catch(
        (error: unknown) => {
          throw toSnapshotError(error, archive, 'read checkpoint');
        },
      );
      if (checked.problem !== undefined)
        throw new SnapshotError(
          checked.problem.code,
          `${archive}: ${checked.problem.message}; the workspace was not touched`,
        );
      if (checked.sha256 !== manifest.sha256 || checked.bytes !== manifest.bytes) {
        throw new SnapshotError(
          'SNAPSHOT_CORRUPT',
          `${archive}: sha256 ${checked.sha256} does not match the manifest's ${manifest.sha256} (tampered or damaged); refused`,
        );
      }
      if (checked.damage !== undefined) throw classifyExtractError(checked.damage, archive);
      await fs.mkdir(staging, { mode: 0o700 }).catch((error: unknown) => {
        throw toSnapshotError(error, staging, 'create staging directory');
      });
      // Second read: extraction, the same checks again as a second line of defence.
      const checker = new ArchiveEntryChecker(limits);
      await extract(handle, staging, checker).catch((error: unknown) => {
        throw classifyExtractError(error, archive);
      });
      if (checker.rootMode !== undefined)
        await fs.chmod(staging, (checker.rootMode & 0o7777) | 0o700);
      else await fs.chmod(staging, 0o755);
      if (settings.fsync ?? true) {
        await fsyncTree(staging).catch((error: unknown) => {
          throw toSnapshotError(error, staging, 'fsync restored workspace');
        });
      }
      // Swap: the old workspace goes aside, the new one takes its name, then the old one is removed.
      await swapWorkspace(cell, staging, logger, () => {
        swapped = true;
      });
      // Beneath the cell: a `logs/` an agent made a link is refused, not written through.
      const event = await appendEvent(
        paths.events,
        {
          ts: (settings.now ?? (() => new Date()))().toISOString(),
          event: 'checkpoint_restored',
          checkpoint: checkpoint.name,
          sha256: manifest.sha256,
          files: manifest.files,
          ...(settings.restoredBy !== undefined ? { restored_by: settings.restoredBy } : {}),
          ...(settings.reason !== undefined ? { reason: settings.reason } : {}),
        },
        { beneath: cell },
      ).catch((error: unknown) => {
        throw toSnapshotError(
          error,
          paths.events,
          `workspace restored from ${checkpoint.name}, but appending checkpoint_restored failed`,
        );
      });
      logger.info('snapshot: workspace restored from checkpoint', {
        cell,
        checkpoint: checkpoint.name,
        entries: checker.entries,
        bytes: checker.bytes,
      });
      return { checkpoint, entries: checker.entries, bytes: checker.bytes, event };
    } finally {
      await handle.close().catch(() => undefined);
      if (!swapped) await discard(staging);
    }
  });
}

/**
 * Swaps the extracted `staging` directory in as the cell's workspace: the old workspace goes
 * aside, the new one takes its name (moved back on failure), the directory is fsynced, the old
 * one removed. Every rename happens in the cell directory opened once (not a link) and named by
 * its descriptor: a cell path that an agent changed meanwhile is not followed out of the cell.
 * `onSwapped` runs once the new workspace has its name.
 * @throws {SnapshotError} SNAPSHOT_UNSAFE_PATH when staging is no longer a directory, SNAPSHOT_IO.
 */
async function swapWorkspace(
  cell: string,
  staging: string,
  logger: Logger,
  onSwapped: () => void,
): Promise<void> {
  const paths = cellPaths(cell);
  const directory = await openDirectoryBeneath(paths.dir, '').catch((error: unknown) => {
    throw toSnapshotError(error, paths.dir, 'open cell');
  });
  try {
    const restored = directory.entry(basename(staging));
    if (!(await lstatOrUndefined(restored))?.isDirectory())
      throw new SnapshotError(
        'SNAPSHOT_UNSAFE_PATH',
        `${staging}: the restored workspace is no longer a directory (replaced during the restore); the workspace was not touched`,
      );
    const previousName = `${PREVIOUS_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`;
    const workspace = directory.entry(basename(paths.workspace));
    const previous = directory.entry(previousName);
    const hadWorkspace = (await lstatOrUndefined(workspace)) !== undefined;
    try {
      if (hadWorkspace) await fs.rename(workspace, previous);
      try {
        await fs.rename(restored, workspace);
      } catch (error) {
        if (hadWorkspace) await fs.rename(previous, workspace).catch(() => undefined);
        throw error;
      }
      onSwapped();
      await fsyncDir(paths.dir);
    } catch (error) {
      throw toSnapshotError(error, paths.workspace, 'swap workspace');
    }
    if (hadWorkspace)
      await fs.rm(previous, { recursive: true, force: true }).catch((error: unknown) => {
        logger.warn(
          'snapshot: could not remove the previous workspace after a restore; the next restore will',
          { cell, path: join(paths.dir, previousName), error: (error as Error).message },
        );
      });
  } finally {
    await directory.close();
  }
}
