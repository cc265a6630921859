import { promises as fs } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { assertAgentName, readJsonFile } from '@pit/cell-spec';
import { readCanonical, type CanonicalSource } from './canonical-git.js';
import { diffConfig, type ConfigDiff, type DiffConfigOptions } from './config-diff.js';
import {
  compareBytes,
  normalizeConfigPaths,
  scanConfig,
  setHash,
  StatIndex,
} from './config-scan.js';
import { SnapshotError, toSnapshotError } from './errors.js';
import { lstatOrUndefined, sha256, SHA256_PATTERN } from './files.js';
import { inspectLive } from './live-state.js';
import { silentLogger, type Logger } from './logger.js';
import {
  executeRollback,
  recoverStore,
  type ConfigRolledBackRecord,
  type MovedAsideFile,
  type RecoveryOutcome,
  type RolledBackFile,
  type RestoreTarget,
} from './rollback.js';
import {
  readObject,
  readPointer,
  readSet,
  withStoreLock,
  writeObjects,
  writePointer,
  writeSet,
  type StoreContext,
} from './store-io.js';
import {
  AsideRecordSchema,
  JournalSchema,
  storePaths,
  type ConfigSet,
  type Pointer,
  type SetEntry,
  type StorePaths,
} from './store-layout.js';

/** Options of {@link createSnapshotStore}. */
export interface SnapshotStoreOptions {
  /** The daemon's state directory; each agent's store is `<stateDir>/snapshots/<agent>/`. Absolute. */
  stateDir: string;
  /** How many snapshot sets to keep per agent (older ones are dropped and their objects garbage-collected). @default 10 */
  keep?: number;
  /** The request log (JSONL) every rollback is appended to; none when left out. Absolute. */
  requestLog?: string;
  /** A config file larger than this is refused. (bytes) @default 4194304 (4 MiB) */
  maxFileBytes?: number;
  /** How long to wait for another process holding an agent's store. (ms) @default 10000 */
  lockTimeoutMs?: number;
  /** Timeout of each git call of the canonical fallback. (ms) @default 30000 */
  gitTimeoutMs?: number;
  logger?: Logger;
  /** Clock, for tests. @default () => new Date() */
  now?: () => Date;
}

/**
 * Checks that a config file parses. Throw (or reject) to refuse the snapshot; the message is
 * reported with the file's path. Called with every file of a changed config.
 */
export type ConfigValidator = (content: Buffer, path: string) => unknown;

/** Options of {@link SnapshotStore.snapshot}. */
export interface SnapshotOptions {
  /** Refuses the snapshot when any file does not parse. */
  validate?: ConfigValidator;
}

/** What {@link SnapshotStore.snapshot} did. */
export interface SnapshotResult {
  /** `unchanged`: the config is the last known good already (nothing was written); `saved`: it became the last known good. */
  status: 'unchanged' | 'saved';
  agent: string;
  /** sha256 of the whole set. */
  set: string;
  /** The previous last-known-good set (`null` for the first snapshot, or when unchanged). */
  previous: string | null;
  /** Each file (and symlink) of the set with its sha256. */
  files: Array<{ path: string; sha256: string }>;
  /** The agent's store directory. */
  dir: string;
}

/** Options of {@link SnapshotStore.rollback}. */
export interface RollbackOptions {
  /** Why (goes into the request log). @default 'rolled back to last known good' */
  reason?: string;
  /** Roll back to this retained set (a sha256 from {@link SnapshotStore.history}) instead of the last known good. */
  to?: string;
  /** Used only when the agent has no snapshot yet: the canonical config in git. */
  canonical?: CanonicalSource;
}

/** What {@link SnapshotStore.rollback} did. */
export interface RollbackResult {
  /** `unchanged`: the live config already was the target (nothing written, nothing logged). */
  status: 'rolled_back' | 'unchanged';
  agent: string;
  /** Where the config came from: the store, or git (no snapshot yet). */
  source: 'snapshot' | 'git';
  /** The restored set (`null` for git). */
  set: string | null;
  /** Every file replaced, with its hash before (`null`: it did not exist) and after. */
  files: RolledBackFile[];
  /** Files added since the snapshot, moved into the store (`objects/<sha256>`, listed in `aside/`). */
  moved_aside: MovedAsideFile[];
  /** The request-log record (a valid `config_rolled_back` cell event), or `null` when unchanged. */
  record: ConfigRolledBackRecord | null;
}

/** One retained snapshot. */
export interface HistoryEntry {
  set: string;
  /** When it became last known good (ISO-8601). */
  at: string;
  /** Whether it is the last known good now. */
  current: boolean;
  /** Number of files and symlinks, or `null` when the set cannot be read. */
  files: number | null;
  /** Why the set cannot be read. */
  problem?: string;
}

/** What {@link SnapshotStore.verify} found. */
export interface VerifyResult {
  ok: boolean;
  /** Every problem, each naming the file. */
  problems: string[];
  /** Sets checked. */
  sets: number;
  /** Objects checked (hash re-computed). */
  objects: number;
  /** A rollback is in flight (a crash interrupted it; {@link SnapshotStore.recover} finishes it). */
  journal: boolean;
}

/** What {@link SnapshotStore.gc} removed. */
export interface GcResult {
  removedSets: number;
  removedObjects: number;
}

/** A per-agent, content-addressed store of last-known-good configs. */
export interface SnapshotStore {
  /** The files of an agent's store (`<stateDir>/snapshots/<agent>/…`). @throws {SnapshotError} SNAPSHOT_BAD_NAME. */
  paths(agent: string): StorePaths;
  /**
   * Records the config at `paths` (files, and directories walked in byte-wise order) as the
   * agent's last known good. Call it on a healthy check only. When nothing changed it costs a
   * few `lstat` calls and writes nothing; otherwise objects and the set are written before the
   * pointer, which is replaced atomically.
   * @throws {SnapshotError} SNAPSHOT_INVALID (a validator refused a file; every problem is listed),
   *   SNAPSHOT_NOT_FOUND (a path is missing), SNAPSHOT_UNSAFE_PATH (a root that is a symlink, a
   *   symlink out of its directory, a special file), SNAPSHOT_TOO_LARGE, SNAPSHOT_BAD_NAME,
   *   SNAPSHOT_LOCKED, SNAPSHOT_IO (disk full: the previous snapshot stays current).
   */
  snapshot(
    agent: string,
    paths: readonly string[],
    options?: SnapshotOptions,
  ): Promise<SnapshotResult>;
  /**
   * Restores the last-known-good set (or `options.to`), all files or none: temporaries are
   * written and fsynced beside each file, a journal is committed, then each is renamed into
   * place with its mode. Files added since are moved into the store, never deleted. With no
   * snapshot yet, restores `options.canonical` from git. Appends a `config_rolled_back` record
   * to the request log. A second rollback finds nothing to do and returns `unchanged`.
   * @throws {SnapshotError} SNAPSHOT_MISSING (no snapshot and no canonical source),
   *   SNAPSHOT_CORRUPT (an object or set fails its hash: nothing is restored), SNAPSHOT_UNSAFE_PATH
   *   (a config path became a directory or a link), SNAPSHOT_GIT, SNAPSHOT_LOCKED, SNAPSHOT_IO
   *   (disk full while preparing: the config is left as it was).
   */
  rollback(agent: string, options?: RollbackOptions): Promise<RollbackResult>;
  /**
   * What differs between the live config and last known good: each path with both hashes and
   * modes, and a unified diff for small text files.
   * @throws {SnapshotError} SNAPSHOT_MISSING, SNAPSHOT_CORRUPT (the set), SNAPSHOT_IO.
   */
  diff(agent: string, options?: DiffConfigOptions): Promise<ConfigDiff>;
  /** The retained snapshots, newest first (empty when there is none). */
  history(agent: string): Promise<HistoryEntry[]>;
  /** Removes sets that fell out of the history and objects nothing refers to (sets, aside records, a journal). */
  gc(agent: string): Promise<GcResult>;
  /** Re-hashes every retained set and object, read-only. */
  verify(agent: string): Promise<VerifyResult>;
  /** Finishes (or undoes) a rollback interrupted by a crash; every writing call does this first. */
  recover(agent: string): Promise<RecoveryOutcome>;
}

interface AgentCache {
  index: StatIndex;
  pointerKey: string | undefined;
  pointer: Pointer | undefined;
}

/**
 * Creates the snapshot store of the deadman switch: last-known-good config per agent,
 * rollback, diff, history, retention.
 * @throws {SnapshotError} SNAPSHOT_INVALID for a relative `stateDir` / `requestLog` or a bad `keep`.
 * @example
 * const store = createSnapshotStore({ stateDir: '/var/lib/pit', requestLog: '/var/lib/pit/requests.jsonl' });
 * await store.snapshot('forge', ['/home/forge/.config/agent.json'], { validate: (bytes) => JSON.parse(bytes.toString()) });
 * // … the agent dies after editing its config …
 * const { files } = await store.rollback('forge', { reason: 'heartbeat stale 95 s' });
 */
export function createSnapshotStore(options: SnapshotStoreOptions): SnapshotStore {
  if (typeof options.stateDir !== 'string' || !isAbsolute(options.stateDir)) {
    throw new SnapshotError(
      'SNAPSHOT_INVALID',
      `stateDir: ${JSON.stringify(options.stateDir)} must be an absolute path`,
    );
  }
  if (options.requestLog !== undefined && !isAbsolute(options.requestLog)) {
    throw new SnapshotError(
      'SNAPSHOT_INVALID',
      `requestLog: ${JSON.stringify(options.requestLog)} must be an absolute path`,
    );
  }
  const keep = options.keep ?? 10;
  if (!Number.isInteger(keep) || keep < 1)
    throw new SnapshotError('SNAPSHOT_INVALID', `keep: ${keep} must be an integer ≥ 1`);
  const context: StoreContext = {
    stateDir: options.stateDir,
    keep,
    requestLog: options.requestLog ?? null,
    maxFileBytes: options.maxFileBytes ?? 4 * 1024 * 1024,
    lockTimeoutMs: options.lockTimeoutMs ?? 10_000,
    gitTimeoutMs: options.gitTimeoutMs ?? 30_000,
    logger: options.logger ?? silentLogger,
    now: options.now ?? (() => new Date()),
  };
  const caches = new Map<string, AgentCache>();

  const pathsOf = (agent: string): StorePaths => {
    try {
      return storePaths(context.stateDir, assertAgentName(agent));
    } catch (error) {
      throw toSnapshotError(error, String(agent), 'agent name');
    }
  };
  const cacheOf = (agent: string): AgentCache => {
    let cache = caches.get(agent);
    if (cache === undefined) {
      cache = { index: new StatIndex(), pointerKey: undefined, pointer: undefined };
      caches.set(agent, cache);
    }
    return cache;
  };

  /** The pointer, re-read only when the file changed (another process may write it). */
  const currentPointer = async (agent: string, paths: StorePaths): Promise<Pointer | undefined> => {
    const cache = cacheOf(agent);
    const stat = await lstatOrUndefined(paths.pointer);
    const key =
      stat === undefined ? 'none' : `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
    if (key !== cache.pointerKey) {
      cache.pointer = await readPointer(paths, agent);
      cache.pointerKey = key;
    }
    return cache.pointer;
  };

  const summary = (entries: readonly SetEntry[]) =>
    entries.flatMap((entry) =>
      entry.kind === 'dir' ? [] : [{ path: entry.path, sha256: entry.sha256 }],
    );

  const gcLocked = async (agent: string, paths: StorePaths): Promise<GcResult> => {
    const pointer = await readPointer(paths, agent);
    const keepSets = new Set(pointer?.history.map((item) => item.set) ?? []);
    const referenced = new Set<string>();
    let complete = true;
    for (const hash of keepSets) {
      try {
        for (const entry of (await readSet(paths, agent, hash)).entries)
          if (entry.kind === 'file') referenced.add(entry.sha256);
      } catch (error) {
        complete = false;
        context.logger.warn(
          'snapshot: gc kept every object because a retained set cannot be read',
          { agent, set: hash, error: (error as Error).message },
        );
      }
    }
    for (const name of await fs.readdir(paths.aside).catch(() => [] as string[])) {
      if (!name.endsWith('.json')) continue;
      try {
        for (const file of (
          await readJsonFile(join(paths.aside, name), AsideRecordSchema, {
            maxBytes: 64 * 1024 * 1024,
          })
        ).files)
          referenced.add(file.sha256);
      } catch {
        complete = false;
      }
    }
    if ((await lstatOrUndefined(paths.journal)) !== undefined) {
      try {
        const journal = await readJsonFile(paths.journal, JournalSchema, {
          maxBytes: 64 * 1024 * 1024,
        });
        for (const write of journal.writes) referenced.add(write.sha256);
        for (const file of journal.aside) referenced.add(file.sha256);
      } catch {
        complete = false;
      }
    }
    let removedSets = 0;
    let removedObjects = 0;
    for (const name of await fs.readdir(paths.sets).catch(() => [] as string[])) {
      const hash = name.replace(/\.json$/, '');
      if (!name.endsWith('.json') || !SHA256_PATTERN.test(hash) || keepSets.has(hash)) continue;
      await fs.rm(join(paths.sets, name), { force: true });
      removedSets += 1;
    }
    if (complete) {
      for (const name of await fs.readdir(paths.objects).catch(() => [] as string[])) {
        if (!SHA256_PATTERN.test(name) || referenced.has(name)) continue;
        await fs.rm(join(paths.objects, name), { force: true });
        removedObjects += 1;
      }
    }
    return { removedSets, removedObjects };
  };

  const store: SnapshotStore = {
    paths: pathsOf,

    async snapshot(agent, configPaths, snapshotOptions = {}) {
      const paths = pathsOf(agent);
      const roots = normalizeConfigPaths(configPaths, `snapshot ${agent}`);
      const cache = cacheOf(agent);
      const nowMs = () => context.now().getTime();
      // Fast path: stat the pointer and the files, hash nothing that did not change, write nothing.
      const pointer = await currentPointer(agent, paths);
      const quick = await scanConfig(roots, {
        index: cache.index,
        maxFileBytes: context.maxFileBytes,
        withContent: false,
        nowMs,
      });
      const quickHash = setHash(quick.roots, quick.entries);
      if (pointer?.current === quickHash) {
        return {
          status: 'unchanged',
          agent,
          set: quickHash,
          previous: null,
          files: summary(quick.entries),
          dir: paths.dir,
        };
      }
      return withStoreLock(context, paths, async () => {
        await recoverStore(context, paths, agent);
        const scan = await scanConfig(roots, {
          index: cache.index,
          maxFileBytes: context.maxFileBytes,
          withContent: true,
          nowMs,
        });
        const hash = setHash(scan.roots, scan.entries);
        const before = await readPointer(paths, agent);
        if (before?.current === hash)
          return {
            status: 'unchanged',
            agent,
            set: hash,
            previous: null,
            files: summary(scan.entries),
            dir: paths.dir,
          };
        if (snapshotOptions.validate !== undefined) {
          const problems: string[] = [];
          for (const entry of scan.entries) {
            if (entry.kind !== 'file') continue;
            try {
              await snapshotOptions.validate(scan.contents.get(entry.sha256) as Buffer, entry.path);
            } catch (error) {
              problems.push(
                `${entry.path}: ${error instanceof Error ? error.message : String(error)}`,
              );
            }
          }
          if (problems.length > 0) {
            throw new SnapshotError(
              'SNAPSHOT_INVALID',
              `snapshot of ${agent} refused: ${problems.join('; ')}`,
            );
          }
        }
        const at = context.now().toISOString();
        const set: ConfigSet = {
          version: 1,
          agent,
          sha256: hash,
          created_at: at,
          roots: scan.roots,
          entries: scan.entries,
        };
        await writeObjects(paths, scan.contents);
        await writeSet(paths, set);
        const previousHistory = before?.history.filter((item) => item.set !== hash) ?? [];
        const history = [{ set: hash, at }, ...previousHistory].slice(0, context.keep);
        await writePointer(paths, { version: 1, agent, current: hash, history });
        // Objects are removed only after the new pointer is in place.
        const dropped = (before?.history ?? []).some(
          (item) => !history.some((kept) => kept.set === item.set),
        );
        if (dropped) await gcLocked(agent, paths);
        cache.pointerKey = undefined;
        context.logger.info('snapshot: saved last known good', {
          agent,
          set: hash,
          previous: before?.current ?? null,
          files: scan.entries.length,
        });
        return {
          status: 'saved',
          agent,
          set: hash,
          previous: before?.current ?? null,
          files: summary(scan.entries),
          dir: paths.dir,
        };
      });
    },

    async rollback(agent, rollbackOptions = {}) {
      const paths = pathsOf(agent);
      if (rollbackOptions.to !== undefined && !SHA256_PATTERN.test(rollbackOptions.to)) {
        throw new SnapshotError(
          'SNAPSHOT_INVALID',
          `rollback ${agent}: to: ${JSON.stringify(rollbackOptions.to)} must be a set's sha256`,
        );
      }
      return withStoreLock(context, paths, async () => {
        await recoverStore(context, paths, agent);
        const pointer = await readPointer(paths, agent);
        let target: RestoreTarget;
        if (pointer !== undefined) {
          const set = await readSet(paths, agent, rollbackOptions.to ?? pointer.current);
          target = { source: 'snapshot', set: set.sha256, roots: set.roots, entries: set.entries };
        } else if (rollbackOptions.canonical !== undefined) {
          target = await canonicalTarget(rollbackOptions.canonical);
        } else {
          throw new SnapshotError(
            'SNAPSHOT_MISSING',
            `${paths.pointer}: agent ${agent} has no last-known-good snapshot and no canonical source was given; nothing to roll back to`,
          );
        }
        const reason =
          rollbackOptions.reason ??
          (target.source === 'git'
            ? 'restored the canonical config from git (no snapshot yet)'
            : 'rolled back to last known good');
        const outcome = await executeRollback(context, paths, agent, target, reason);
        cacheOf(agent).index.clear();
        if (outcome.changed)
          context.logger.warn('snapshot: config rolled back', {
            agent,
            source: target.source,
            set: target.set,
            files: outcome.files.length,
            moved_aside: outcome.moved_aside.length,
          });
        return {
          status: outcome.changed ? 'rolled_back' : 'unchanged',
          agent,
          source: target.source,
          set: target.set,
          files: outcome.files,
          moved_aside: outcome.moved_aside,
          record: outcome.record,
        };
      });
    },

    async diff(agent, diffOptions = {}) {
      const paths = pathsOf(agent);
      const pointer = await readPointer(paths, agent);
      if (pointer === undefined)
        throw new SnapshotError(
          'SNAPSHOT_MISSING',
          `${paths.pointer}: agent ${agent} has no last-known-good snapshot to compare with`,
        );
      return diffConfig(paths, agent, await readSet(paths, agent, pointer.current), diffOptions);
    },

    async history(agent) {
      const paths = pathsOf(agent);
      const pointer = await readPointer(paths, agent);
      if (pointer === undefined) return [];
      const out: HistoryEntry[] = [];
      for (const item of pointer.history) {
        try {
          const set = await readSet(paths, agent, item.set);
          out.push({
            set: item.set,
            at: item.at,
            current: item.set === pointer.current,
            files: set.entries.filter((entry) => entry.kind !== 'dir').length,
          });
        } catch (error) {
          out.push({
            set: item.set,
            at: item.at,
            current: item.set === pointer.current,
            files: null,
            problem: (error as Error).message,
          });
        }
      }
      return out;
    },

    async gc(agent) {
      const paths = pathsOf(agent);
      if ((await lstatOrUndefined(paths.dir)) === undefined)
        return { removedSets: 0, removedObjects: 0 };
      return withStoreLock(context, paths, async () => {
        await recoverStore(context, paths, agent);
        return gcLocked(agent, paths);
      });
    },

    async verify(agent) {
      const paths = pathsOf(agent);
      const problems: string[] = [];
      let sets = 0;
      const objects = new Map<string, string>();
      let pointer: Pointer | undefined;
      try {
        pointer = await readPointer(paths, agent);
      } catch (error) {
        problems.push((error as Error).message);
      }
      for (const item of pointer?.history ?? []) {
        try {
          const set = await readSet(paths, agent, item.set);
          sets += 1;
          for (const entry of set.entries)
            if (entry.kind === 'file' && !objects.has(entry.sha256))
              objects.set(entry.sha256, entry.path);
        } catch (error) {
          problems.push((error as Error).message);
        }
      }
      for (const name of await fs.readdir(paths.aside).catch(() => [] as string[])) {
        if (!name.endsWith('.json')) continue;
        try {
          const record = await readJsonFile(join(paths.aside, name), AsideRecordSchema, {
            maxBytes: 64 * 1024 * 1024,
          });
          for (const file of record.files)
            if (file.kind === 'file' && !objects.has(file.sha256))
              objects.set(file.sha256, file.path);
        } catch (error) {
          problems.push(
            toSnapshotError(error, join(paths.aside, name), 'read aside record').message,
          );
        }
      }
      for (const [hash, path] of objects) {
        try {
          await readObject(paths, hash, Number.MAX_SAFE_INTEGER, path);
        } catch (error) {
          problems.push((error as Error).message);
        }
      }
      const journal = (await lstatOrUndefined(paths.journal)) !== undefined;
      return { ok: problems.length === 0, problems, sets, objects: objects.size, journal };
    },

    async recover(agent) {
      const paths = pathsOf(agent);
      if ((await lstatOrUndefined(paths.dir)) === undefined) return { action: 'none' };
      return withStoreLock(context, paths, () => recoverStore(context, paths, agent));
    },
  };

  async function canonicalTarget(source: CanonicalSource): Promise<RestoreTarget> {
    const files = await readCanonical(source, {
      timeoutMs: context.gitTimeoutMs,
      maxFileBytes: context.maxFileBytes,
    });
    const contents = new Map<string, Buffer>();
    const entries: SetEntry[] = [];
    for (const file of files) {
      const hash = sha256(file.content);
      contents.set(hash, file.content);
      // A file that exists keeps its permissions (a secret stays 0600); a new one gets git's mode.
      const live = await inspectLive(file.target);
      entries.push({
        kind: 'file',
        path: file.target,
        sha256: hash,
        size: file.content.length,
        mode: live.kind === 'file' ? live.mode : file.mode,
      });
    }
    entries.sort((a, b) => compareBytes(a.path, b.path));
    const roots = [...new Set(entries.map((entry) => entry.path))].map((path) => ({
      path,
      kind: 'file' as const,
    }));
    if (roots.length !== entries.length)
      throw new SnapshotError(
        'SNAPSHOT_INVALID',
        'canonical.files: two files have the same target',
      );
    return { source: 'git', set: null, roots, entries, contents };
  }

  return store;
}
