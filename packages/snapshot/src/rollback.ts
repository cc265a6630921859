import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import {
  createEventAppender,
  fsyncDir,
  readJsonFile,
  serializeEvent,
  writeJsonAtomic,
} from '@pit/cell-spec';
import { compareBytes } from './config-scan.js';
import { SnapshotError, toSnapshotError } from './errors.js';
import {
  lstatOrUndefined,
  readRegularFile,
  removeDeadTemps,
  sha256,
  writeNewFile,
} from './files.js';
import {
  ancestorsWithin,
  findExtras,
  inspectLive,
  liveHash,
  liveMatches,
  type LiveState,
} from './live-state.js';
import { readObject, writeObjects, type StoreContext } from './store-io.js';
import {
  JournalSchema,
  type AsideFile,
  type Journal,
  type JournalWrite,
  type SetEntry,
  type SetRoot,
  type StorePaths,
} from './store-layout.js';

/** One file a rollback replaced: its hash before (`null` when it did not exist) and after. */
export interface RolledBackFile {
  path: string;
  old_sha256: string | null;
  new_sha256: string;
}

/** A file that was added after the snapshot and moved into the store (`objects/<sha256>`) by a rollback. */
export interface MovedAsideFile {
  path: string;
  sha256: string;
  kind: 'file' | 'symlink';
}

/** The `config_rolled_back` record appended to the request log (and fit for a cell's `events.jsonl`). */
export interface ConfigRolledBackRecord {
  ts: string;
  agent: string;
  event: 'config_rolled_back';
  files: RolledBackFile[];
  reason: string;
  source: 'snapshot' | 'git';
  set: string | null;
  rollback_id: string;
  moved_aside: MovedAsideFile[];
}

/** What a rollback restores: a stored set, or the canonical files read from git. */
export interface RestoreTarget {
  source: 'snapshot' | 'git';
  set: string | null;
  roots: SetRoot[];
  entries: SetEntry[];
  /** Contents already in hand (git); stored-set contents are read from the store and verified. */
  contents?: ReadonlyMap<string, Buffer>;
}

interface PlannedWrite {
  write: JournalWrite;
  content?: Buffer;
}

interface Plan {
  writes: PlannedWrite[];
  dirs: Array<{ path: string; mode: number; create: boolean }>;
  aside: Array<{ file: AsideFile; content?: Buffer }>;
}

const REQUEST_LOG_TAIL_BYTES = 1024 * 1024;

function rootOf(roots: readonly SetRoot[], path: string): SetRoot | undefined {
  let best: SetRoot | undefined;
  for (const root of roots) {
    const inside =
      root.path === path ||
      (root.kind === 'dir' &&
        path.startsWith(root.path.endsWith(sep) ? root.path : root.path + sep));
    if (inside && (best === undefined || root.path.length > best.path.length)) best = root;
  }
  return best;
}

function tempFor(path: string, id: string): string {
  return join(dirname(path), `.${basename(path)}.pit-rollback-${id.slice(0, 12)}.tmp`);
}

function describeLive(live: LiveState): string {
  return live.kind === 'other'
    ? live.description
    : live.kind === 'dir'
      ? 'a directory'
      : live.kind === 'symlink'
        ? 'a symbolic link'
        : live.kind;
}

/**
 * Compares the live config with `target` and reads (and verifies) every object it will need,
 * so that a corrupt object, a path that became a directory or a link out of bounds is refused
 * before anything is touched.
 */
async function plan(
  context: StoreContext,
  paths: StorePaths,
  target: RestoreTarget,
  id: string,
): Promise<Plan> {
  const result: Plan = { writes: [], dirs: [], aside: [] };
  const plannedDirs = new Set<string>();
  const setDirs = new Map(
    target.entries.filter((entry) => entry.kind === 'dir').map((entry) => [entry.path, entry.mode]),
  );
  for (const root of target.roots) {
    const stat = await lstatOrUndefined(root.path);
    if (root.kind === 'dir' && stat !== undefined && !stat.isDirectory()) {
      throw new SnapshotError(
        'SNAPSHOT_UNSAFE_PATH',
        `${root.path}: config directory is now ${stat.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}; move it away before rolling back`,
      );
    }
    // The parent of a root is outside the set: create it (0o700) if the agent removed it, never through a link.
    const parent = dirname(root.path);
    const parentStat = await lstatOrUndefined(parent);
    if (parentStat === undefined) {
      const missing: string[] = [];
      let dir = parent;
      while ((await lstatOrUndefined(dir)) === undefined && dir !== dirname(dir)) {
        missing.unshift(dir);
        dir = dirname(dir);
      }
      for (const path of missing) {
        if (!plannedDirs.has(path)) {
          plannedDirs.add(path);
          result.dirs.push({ path, mode: 0o700, create: true });
        }
      }
    } else if (!parentStat.isDirectory()) {
      throw new SnapshotError(
        'SNAPSHOT_UNSAFE_PATH',
        `${parent}: expected the directory holding ${root.path}, found ${parentStat.isSymbolicLink() ? 'a symbolic link' : 'a file'}`,
      );
    }
  }
  const entries = [...target.entries].sort((a, b) => compareBytes(a.path, b.path));
  for (const entry of entries) {
    const root = rootOf(target.roots, entry.path);
    if (root === undefined)
      throw new SnapshotError('SNAPSHOT_CORRUPT', `${entry.path}: not under any root of the set`);
    if (root.kind === 'dir') {
      for (const ancestor of ancestorsWithin(root.path, entry.path)) {
        const stat = await lstatOrUndefined(ancestor);
        if (stat === undefined) {
          if (!plannedDirs.has(ancestor)) {
            plannedDirs.add(ancestor);
            result.dirs.push({
              path: ancestor,
              mode: setDirs.get(ancestor) ?? 0o700,
              create: true,
            });
          }
        } else if (!stat.isDirectory()) {
          throw new SnapshotError(
            'SNAPSHOT_UNSAFE_PATH',
            `${ancestor}: expected a directory on the way to ${entry.path}, found ${stat.isSymbolicLink() ? 'a symbolic link' : 'a file'}; refused`,
          );
        }
      }
    }
    const live = plannedDirs.has(entry.path)
      ? ({ kind: 'missing' } as const)
      : await inspectLive(entry.path);
    if (entry.kind === 'dir') {
      if (live.kind === 'missing') {
        if (!plannedDirs.has(entry.path)) {
          plannedDirs.add(entry.path);
          result.dirs.push({ path: entry.path, mode: entry.mode, create: true });
        }
      } else if (live.kind !== 'dir') {
        throw new SnapshotError(
          'SNAPSHOT_UNSAFE_PATH',
          `${entry.path}: expected a directory, found ${describeLive(live)}; move it away before rolling back`,
        );
      } else if (live.mode !== entry.mode) {
        result.dirs.push({ path: entry.path, mode: entry.mode, create: false });
      }
      continue;
    }
    if (live.kind === 'dir' || live.kind === 'other') {
      throw new SnapshotError(
        'SNAPSHOT_UNSAFE_PATH',
        `${entry.path}: config file is now ${describeLive(live)}; move it away before rolling back`,
      );
    }
    if (liveMatches(entry, live)) continue;
    const temp = tempFor(entry.path, id);
    const old = liveHash(live);
    if (entry.kind === 'symlink') {
      result.writes.push({
        write: {
          kind: 'symlink',
          path: entry.path,
          sha256: entry.sha256,
          target: entry.target,
          temp,
          old_sha256: old,
        },
      });
      continue;
    }
    const content =
      target.contents?.get(entry.sha256) ??
      (await readObject(paths, entry.sha256, Number.MAX_SAFE_INTEGER, entry.path));
    if (sha256(content) !== entry.sha256)
      throw new SnapshotError(
        'SNAPSHOT_CORRUPT',
        `${entry.path}: content to restore does not match ${entry.sha256}; refused`,
      );
    result.writes.push({
      write: {
        kind: 'file',
        path: entry.path,
        sha256: entry.sha256,
        mode: entry.mode,
        temp,
        old_sha256: old,
      },
      content,
    });
  }
  for (const extra of await findExtras(target.roots, target.entries)) {
    if (extra.kind === 'other') {
      throw new SnapshotError(
        'SNAPSHOT_UNSAFE_PATH',
        `${extra.path}: ${extra.description} was added to the config directory; remove it before rolling back`,
      );
    }
    if (extra.kind === 'symlink') {
      const live = await inspectLive(extra.path);
      if (live.kind === 'symlink')
        result.aside.push({
          file: { kind: 'symlink', path: extra.path, sha256: live.sha256, target: live.target },
        });
      continue;
    }
    const { content, stat } = await readRegularFile(extra.path, context.maxFileBytes).catch(
      (error: unknown) => {
        const mapped = toSnapshotError(error, extra.path, 'move aside');
        if (mapped.code === 'SNAPSHOT_TOO_LARGE') {
          throw new SnapshotError(
            'SNAPSHOT_TOO_LARGE',
            `${extra.path}: added since the snapshot and too large to move into the store (limit ${context.maxFileBytes} bytes); move it away before rolling back`,
            { cause: error },
          );
        }
        throw mapped;
      },
    );
    result.aside.push({
      file: { kind: 'file', path: extra.path, sha256: sha256(content), mode: stat.mode & 0o7777 },
      content,
    });
  }
  return result;
}

async function writeJournal(paths: StorePaths, journal: Journal): Promise<void> {
  try {
    await writeJsonAtomic(paths.journal, journal, { mode: 0o600 });
  } catch (error) {
    throw toSnapshotError(error, paths.journal, 'write rollback journal');
  }
}

async function removeJournal(paths: StorePaths): Promise<void> {
  try {
    await fs.rm(paths.journal, { force: true });
    await fsyncDir(paths.dir);
  } catch (error) {
    throw toSnapshotError(error, paths.journal, 'remove rollback journal');
  }
}

async function undoPrepare(paths: StorePaths, journal: Journal): Promise<void> {
  for (const write of journal.writes)
    await fs.rm(write.temp, { force: true }).catch(() => undefined);
  await removeJournal(paths);
}

async function checkRequestLog(path: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(
      path,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
      0o644,
    );
  } catch (error) {
    throw toSnapshotError(error, path, 'open request log');
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

async function requestLogHas(path: string, id: string): Promise<boolean> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    const { size } = await handle.stat();
    const length = Math.min(size, REQUEST_LOG_TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return buffer.includes(`"rollback_id":"${id}"`);
  } catch {
    return false;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

async function appendRecord(path: string, line: string): Promise<void> {
  const appender = createEventAppender(path, { fsync: true });
  try {
    await appender.appendLine(line);
  } catch (error) {
    throw toSnapshotError(error, path, 'append to request log');
  } finally {
    await appender.close();
  }
}

async function fsyncDirs(dirs: Iterable<string>): Promise<void> {
  for (const dir of new Set(dirs)) {
    await fsyncDir(dir).catch((error: unknown) => {
      throw toSnapshotError(error, dir, 'fsync');
    });
  }
}

/** Redoes a committed journal: renames what is left, moves extras aside, fixes modes, logs once. */
async function commit(
  context: StoreContext,
  paths: StorePaths,
  journal: Journal,
  options: { checkLog: boolean },
): Promise<string[]> {
  for (const write of journal.writes) {
    if ((await lstatOrUndefined(write.temp)) !== undefined) {
      try {
        await fs.rename(write.temp, write.path);
      } catch (error) {
        throw toSnapshotError(error, write.path, 'rename restored file into place');
      }
      continue;
    }
    const live = await inspectLive(write.path);
    const entry: SetEntry =
      write.kind === 'file'
        ? { kind: 'file', path: write.path, sha256: write.sha256, size: 0, mode: write.mode }
        : { kind: 'symlink', path: write.path, sha256: write.sha256, target: write.target };
    if (liveMatches(entry, live)) continue;
    // The temp is gone but the file is not in place (someone touched it): write it again.
    if (write.kind === 'file')
      await writeNewFile(
        write.temp,
        await readObject(paths, write.sha256, Number.MAX_SAFE_INTEGER, write.path),
        write.mode,
      );
    else await fs.symlink(write.target, write.temp);
    await fs.rename(write.temp, write.path).catch((error: unknown) => {
      throw toSnapshotError(error, write.path, 'rename restored file into place');
    });
  }
  await fsyncDirs(journal.writes.map((write) => dirname(write.path)));
  if (journal.aside.length > 0) {
    // The record of what is moved aside; the bytes are in objects/ since before the journal.
    const recordPath = join(paths.aside, `${journal.id}.json`);
    try {
      await fs.mkdir(paths.aside, { recursive: true, mode: 0o700 });
      await writeJsonAtomic(
        recordPath,
        {
          version: 1,
          agent: journal.agent,
          rollback_id: journal.id,
          at: journal.started_at,
          files: journal.aside,
        },
        { mode: 0o600 },
      );
    } catch (error) {
      throw toSnapshotError(error, recordPath, 'write aside record');
    }
  }
  const kept: string[] = [];
  for (const file of journal.aside) {
    const live = await inspectLive(file.path);
    if (live.kind === 'missing') continue;
    if ((live.kind === 'file' || live.kind === 'symlink') && live.sha256 === file.sha256) {
      await fs.unlink(file.path).catch((error: unknown) => {
        throw toSnapshotError(error, file.path, 'move aside');
      });
    } else {
      kept.push(file.path);
      context.logger.warn(
        'snapshot: a file added since the snapshot changed during the rollback; left in place',
        { path: file.path },
      );
    }
  }
  await fsyncDirs(journal.aside.map((file) => dirname(file.path)));
  for (const dir of journal.dirs) {
    await fs.chmod(dir.path, dir.mode).catch((error: unknown) => {
      throw toSnapshotError(error, dir.path, 'restore directory mode');
    });
  }
  if (
    journal.request_log !== null &&
    !(options.checkLog && (await requestLogHas(journal.request_log, journal.id)))
  ) {
    await appendRecord(journal.request_log, journal.record);
  }
  await removeJournal(paths);
  return kept;
}

/** What {@link executeRollback} did. */
export interface RollbackOutcome {
  changed: boolean;
  files: RolledBackFile[];
  moved_aside: MovedAsideFile[];
  record: ConfigRolledBackRecord | null;
}

/**
 * Restores `target` over the live config, all or nothing: every new file is written as a
 * temporary beside its target and fsynced (a failure there, such as a full disk, removes
 * them all and leaves the config untouched); then a journal is committed and every temporary
 * is renamed into place. A crash after the commit is finished by {@link recoverStore}.
 * Must be called holding the store lock.
 */
export async function executeRollback(
  context: StoreContext,
  paths: StorePaths,
  agent: string,
  target: RestoreTarget,
  reason: string,
): Promise<RollbackOutcome> {
  const id = randomBytes(16).toString('hex');
  const planned = await plan(context, paths, target, id);
  if (planned.writes.length === 0 && planned.aside.length === 0 && planned.dirs.length === 0) {
    return { changed: false, files: [], moved_aside: [], record: null };
  }
  const files: RolledBackFile[] = planned.writes.map(({ write }) => ({
    path: write.path,
    old_sha256: write.old_sha256,
    new_sha256: write.sha256,
  }));
  const movedAside: MovedAsideFile[] = planned.aside.map(({ file }) => ({
    path: file.path,
    sha256: file.sha256,
    kind: file.kind,
  }));
  const record: ConfigRolledBackRecord = {
    ts: context.now().toISOString(),
    agent,
    event: 'config_rolled_back',
    files,
    reason,
    source: target.source,
    set: target.set,
    rollback_id: id,
    moved_aside: movedAside,
  };
  let line: string;
  try {
    line = serializeEvent(record, context.requestLog ?? 'request log');
  } catch (error) {
    throw toSnapshotError(error, context.requestLog ?? 'request log', 'build rollback record');
  }
  if (context.requestLog !== null) await checkRequestLog(context.requestLog);
  // Objects first: whatever is moved aside, and canonical contents a recovery may need.
  const toStore = new Map<string, Buffer>();
  for (const { file, content } of planned.aside)
    if (content !== undefined) toStore.set(file.sha256, content);
  if (target.source === 'git')
    for (const { write, content } of planned.writes)
      if (content !== undefined) toStore.set(write.sha256, content);
  if (toStore.size > 0) await writeObjects(paths, toStore);
  const journal: Journal = {
    version: 1,
    agent,
    id,
    phase: 'prepare',
    started_at: record.ts,
    source: target.source,
    set: target.set,
    dirs: planned.dirs.map(({ path, mode }) => ({ path, mode })),
    writes: planned.writes.map(({ write }) => write),
    aside: planned.aside.map(({ file }) => file),
    record: line,
    request_log: context.requestLog,
  };
  await writeJournal(paths, journal);
  try {
    for (const dir of planned.dirs) {
      if (!dir.create) continue;
      await fs.mkdir(dir.path, { mode: dir.mode }).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
          throw toSnapshotError(error, dir.path, 'create directory');
      });
    }
    for (const { write, content } of planned.writes) {
      await fs.rm(write.temp, { force: true });
      if (write.kind === 'file') await writeNewFile(write.temp, content as Buffer, write.mode);
      else
        await fs.symlink(write.target, write.temp).catch((error: unknown) => {
          throw toSnapshotError(error, write.temp, 'create symbolic link');
        });
    }
    await fsyncDirs(planned.writes.map(({ write }) => dirname(write.temp)));
    await writeJournal(paths, { ...journal, phase: 'commit' });
  } catch (error) {
    await undoPrepare(paths, journal).catch(() => undefined);
    throw toSnapshotError(error, paths.dir, 'prepare rollback');
  }
  const kept = await commit(context, paths, { ...journal, phase: 'commit' }, { checkLog: false });
  return {
    changed: true,
    files,
    moved_aside: movedAside.filter((file) => !kept.includes(file.path)),
    record,
  };
}

/** What {@link recoverStore} found. */
export interface RecoveryOutcome {
  /** `undone`: a rollback died before its commit and was undone; `completed`: it had committed and was finished. */
  action: 'none' | 'undone' | 'completed';
  rollbackId?: string;
  record?: ConfigRolledBackRecord;
}

/**
 * Finishes or undoes a rollback that a crash interrupted, and removes temporary files of dead
 * writers from the store. Must be called holding the store lock.
 * @throws {SnapshotError} SNAPSHOT_CORRUPT for a journal that does not parse; SNAPSHOT_IO.
 */
export async function recoverStore(
  context: StoreContext,
  paths: StorePaths,
  agent: string,
): Promise<RecoveryOutcome> {
  for (const dir of [paths.dir, paths.objects, paths.sets, paths.aside]) await removeDeadTemps(dir);
  if ((await lstatOrUndefined(paths.journal)) === undefined) return { action: 'none' };
  let journal: Journal;
  try {
    journal = await readJsonFile(paths.journal, JournalSchema, { maxBytes: 64 * 1024 * 1024 });
  } catch (error) {
    throw toSnapshotError(error, paths.journal, 'read rollback journal');
  }
  if (journal.agent !== agent)
    throw new SnapshotError(
      'SNAPSHOT_CORRUPT',
      `${paths.journal}: agent: expected ${agent}, found ${journal.agent}`,
    );
  if (journal.phase === 'prepare') {
    await undoPrepare(paths, journal);
    context.logger.warn(
      'snapshot: undid a rollback interrupted before its commit; the config is as it was',
      { agent, rollback_id: journal.id },
    );
    return { action: 'undone', rollbackId: journal.id };
  }
  await commit(context, paths, journal, { checkLog: true });
  context.logger.warn('snapshot: completed a rollback interrupted after its commit', {
    agent,
    rollback_id: journal.id,
  });
  return {
    action: 'completed',
    rollbackId: journal.id,
    record: JSON.parse(journal.record) as ConfigRolledBackRecord,
  };
}
