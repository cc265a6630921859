import { promises as fs } from 'node:fs';
import { fsyncDir, readJsonFile, withFileLock, writeJsonAtomic } from '@pit/cell-spec';
import { setHash } from './config-scan.js';
import { SnapshotError, toSnapshotError } from './errors.js';
import { lstatOrUndefined, readRegularFile, sha256, writeFileDurable } from './files.js';
import type { Logger } from './logger.js';
import {
  ConfigSetSchema,
  PointerSchema,
  type ConfigSet,
  type Pointer,
  type StorePaths,
} from './store-layout.js';

/** Settings shared by the store's operations. */
export interface StoreContext {
  stateDir: string;
  keep: number;
  requestLog: string | null;
  maxFileBytes: number;
  lockTimeoutMs: number;
  gitTimeoutMs: number;
  logger: Logger;
  now: () => Date;
}

const JSON_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Runs `work` holding the agent's store lock (creating the store directory first).
 * @throws {SnapshotError} SNAPSHOT_LOCKED when another process holds it past the timeout.
 */
export async function withStoreLock<T>(
  context: StoreContext,
  paths: StorePaths,
  work: () => Promise<T>,
): Promise<T> {
  try {
    await fs.mkdir(paths.dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw toSnapshotError(error, paths.dir, 'create store directory');
  }
  try {
    return await withFileLock(paths.lock, work, {
      timeoutMs: context.lockTimeoutMs,
      staleMs: 5000,
    });
  } catch (error) {
    throw toSnapshotError(error, paths.lock, 'lock store');
  }
}

/**
 * Reads the last-known-good pointer, or `undefined` when the agent has no snapshot yet.
 * @throws {SnapshotError} SNAPSHOT_CORRUPT for a pointer that does not parse; SNAPSHOT_UNSAFE_PATH; SNAPSHOT_IO.
 */
export async function readPointer(paths: StorePaths, agent: string): Promise<Pointer | undefined> {
  if ((await lstatOrUndefined(paths.pointer)) === undefined) return undefined;
  let pointer: Pointer;
  try {
    pointer = await readJsonFile(paths.pointer, PointerSchema, { maxBytes: JSON_MAX_BYTES });
  } catch (error) {
    const mapped = toSnapshotError(error, paths.pointer, 'read pointer');
    if (mapped.code === 'SNAPSHOT_NOT_FOUND') return undefined;
    throw mapped;
  }
  if (pointer.agent !== agent)
    throw new SnapshotError(
      'SNAPSHOT_CORRUPT',
      `${paths.pointer}: agent: expected ${agent}, found ${pointer.agent}`,
    );
  return pointer;
}

/** Writes the pointer atomically (temp, fsync, rename, fsync dir). @throws {SnapshotError} SNAPSHOT_IO. */
export async function writePointer(paths: StorePaths, pointer: Pointer): Promise<void> {
  try {
    await writeJsonAtomic(paths.pointer, pointer, { mode: 0o600 });
  } catch (error) {
    throw toSnapshotError(error, paths.pointer, 'write pointer');
  }
}

/**
 * Reads one set manifest and checks that its content matches its name and its own hash.
 * @throws {SnapshotError} SNAPSHOT_CORRUPT (hash mismatch, does not parse), SNAPSHOT_NOT_FOUND, SNAPSHOT_IO.
 */
export async function readSet(paths: StorePaths, agent: string, hash: string): Promise<ConfigSet> {
  const path = paths.set(hash);
  let set: ConfigSet;
  try {
    set = await readJsonFile(path, ConfigSetSchema, { maxBytes: JSON_MAX_BYTES });
  } catch (error) {
    const mapped = toSnapshotError(error, path, 'read set');
    if (mapped.code === 'SNAPSHOT_NOT_FOUND')
      throw new SnapshotError(
        'SNAPSHOT_CORRUPT',
        `${path}: set ${hash} named by the pointer is missing from the store`,
        { cause: error },
      );
    throw mapped;
  }
  const actual = setHash(set.roots, set.entries);
  if (set.sha256 !== hash || actual !== hash) {
    throw new SnapshotError(
      'SNAPSHOT_CORRUPT',
      `${path}: set content hashes to ${actual}, expected ${hash}; refusing to use it`,
    );
  }
  if (set.agent !== agent)
    throw new SnapshotError(
      'SNAPSHOT_CORRUPT',
      `${path}: agent: expected ${agent}, found ${set.agent}`,
    );
  return set;
}

/** Writes a set manifest unless a valid one is already there. The caller fsyncs the directory. */
export async function writeSet(paths: StorePaths, set: ConfigSet): Promise<void> {
  await fs.mkdir(paths.sets, { recursive: true, mode: 0o700 }).catch((error: unknown) => {
    throw toSnapshotError(error, paths.sets, 'create directory');
  });
  const existing = await readSet(paths, set.agent, set.sha256).catch(() => undefined);
  if (existing !== undefined) return;
  await fs.rm(paths.set(set.sha256), { force: true }).catch(() => undefined);
  await writeFileDurable(
    paths.set(set.sha256),
    Buffer.from(`${JSON.stringify(set, null, 2)}\n`),
    0o444,
  );
}

/**
 * Reads an object and checks its bytes against its name.
 * @throws {SnapshotError} SNAPSHOT_CORRUPT on a hash mismatch or a missing object (never restored).
 */
export async function readObject(
  paths: StorePaths,
  hash: string,
  maxBytes: number,
  forPath: string,
): Promise<Buffer> {
  const path = paths.object(hash);
  let content: Buffer;
  try {
    content = (await readRegularFile(path, maxBytes)).content;
  } catch (error) {
    const mapped = toSnapshotError(error, path, 'read object');
    if (mapped.code === 'SNAPSHOT_NOT_FOUND')
      throw new SnapshotError(
        'SNAPSHOT_CORRUPT',
        `${path}: object ${hash} for ${forPath} is missing from the store; refusing to restore`,
        { cause: error },
      );
    throw mapped;
  }
  const actual = sha256(content);
  if (actual !== hash) {
    throw new SnapshotError(
      'SNAPSHOT_CORRUPT',
      `${path}: object for ${forPath} hashes to ${actual}, expected ${hash}; refusing to restore a corrupt object`,
    );
  }
  return content;
}

/**
 * Stores contents by hash: writes those missing or corrupt (temp, fsync, rename), then fsyncs
 * the objects directory once.
 * @throws {SnapshotError} SNAPSHOT_IO (disk full leaves the pointer untouched).
 */
export async function writeObjects(
  paths: StorePaths,
  contents: ReadonlyMap<string, Buffer>,
): Promise<number> {
  await fs.mkdir(paths.objects, { recursive: true, mode: 0o700 }).catch((error: unknown) => {
    throw toSnapshotError(error, paths.objects, 'create directory');
  });
  let written = 0;
  for (const [hash, content] of contents) {
    const path = paths.object(hash);
    const existing = await lstatOrUndefined(path);
    if (existing?.isFile() && existing.size === content.length) {
      const ok = await readRegularFile(path, content.length).then(
        (read) => sha256(read.content) === hash,
        () => false,
      );
      if (ok) continue;
    }
    if (existing !== undefined)
      await fs.rm(path, { force: true, recursive: true }).catch(() => undefined);
    await writeFileDurable(path, content, 0o444);
    written += 1;
  }
  if (written > 0)
    await fsyncDir(paths.objects).catch((error: unknown) => {
      throw toSnapshotError(error, paths.objects, 'fsync');
    });
  return written;
}
