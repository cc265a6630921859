import { promises as fs, type Stats } from 'node:fs';
import { dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { SnapshotError, toSnapshotError } from './errors.js';
import { describeKind, lstatOrUndefined, readRegularFile, sha256 } from './files.js';
import type { SetEntry, SetRoot } from './store-layout.js';

/**
 * A file whose change time is this close to the moment it was hashed is not cached: a write
 * in the same timestamp tick (coarse kernel clocks, 1 s on some filesystems) could follow
 * unseen. Same idea as git's "racy clean" entries.
 */
export const RACY_WINDOW_MS = 2000;

interface IndexEntry {
  key: string;
  sha256: string;
}

/**
 * Per-agent cache of `(path, size, mtime, ctime, ino, mode) → sha256`, so an unchanged config
 * is confirmed with `lstat` calls only. Never persisted: a new process hashes once.
 */
export class StatIndex {
  private readonly entries = new Map<string, IndexEntry>();

  /** The cached hash of `path` if its stat is unchanged since it was hashed. */
  lookup(path: string, stat: Stats): string | undefined {
    const entry = this.entries.get(path);
    return entry !== undefined && entry.key === statKey(stat) ? entry.sha256 : undefined;
  }

  /** Remembers `sha256` for `path` unless its timestamps are too recent to trust. */
  remember(path: string, stat: Stats, hash: string, nowMs: number): void {
    if (nowMs - Math.max(stat.mtimeMs, stat.ctimeMs) < RACY_WINDOW_MS) {
      this.entries.delete(path);
      return;
    }
    this.entries.set(path, { key: statKey(stat), sha256: hash });
  }

  /** Drops every cached hash. */
  clear(): void {
    this.entries.clear();
  }
}

function statKey(stat: Stats): string {
  return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}:${stat.mode}`;
}

/**
 * Checks the caller's config paths: absolute, no NUL; normalized, deduplicated, sorted.
 * @throws {SnapshotError} SNAPSHOT_INVALID.
 */
export function normalizeConfigPaths(paths: readonly string[], where: string): string[] {
  if (!Array.isArray(paths) || paths.length === 0)
    throw new SnapshotError('SNAPSHOT_INVALID', `${where}: expected at least one config path`);
  const out = new Set<string>();
  paths.forEach((path, index) => {
    if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0')) {
      throw new SnapshotError(
        'SNAPSHOT_INVALID',
        `${where}: paths.${index}: ${JSON.stringify(path)} must be an absolute path`,
      );
    }
    const clean = normalize(path);
    out.add(clean.length > 1 && clean.endsWith(sep) ? clean.slice(0, -1) : clean);
  });
  return [...out].sort(compareBytes);
}

/** Byte-wise order of paths (stable across locales). */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Whether `target` (a symlink's text) resolved from the link's directory stays inside `root`. */
export function symlinkStaysInside(linkPath: string, target: string, root: string): boolean {
  const resolved = resolve(dirname(linkPath), target);
  return resolved === root || resolved.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** Hash of a symlink entry: its target text. */
export function symlinkHash(target: string): string {
  return sha256(`symlink:${target}`);
}

/** An item found by {@link walkTree}. */
export interface WalkItem {
  path: string;
  stat: Stats;
}

/**
 * Visits `root` and, when it is a real directory, everything below it (never through a
 * symbolic link), each directory's children in byte-wise order.
 */
export async function walkTree(
  root: string,
  rootStat: Stats,
  visit: (item: WalkItem) => void,
): Promise<void> {
  visit({ path: root, stat: rootStat });
  if (!rootStat.isDirectory()) return;
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop() as string;
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (error) {
      throw toSnapshotError(error, dir, 'list directory');
    }
    names.sort(compareBytes);
    const stats = await Promise.all(names.map((name) => lstatOrUndefined(join(dir, name))));
    const subdirs: string[] = [];
    names.forEach((name, index) => {
      const stat = stats[index];
      if (stat === undefined) return; // removed while we listed
      const path = join(dir, name);
      visit({ path, stat });
      if (stat.isDirectory()) subdirs.push(path);
    });
    for (let i = subdirs.length - 1; i >= 0; i -= 1) pending.push(subdirs[i] as string);
  }
}

/** The result of scanning a config for a snapshot. */
export interface ConfigScan {
  roots: SetRoot[];
  entries: SetEntry[];
  /** File contents by sha256 (only when scanned with `withContent`). */
  contents: Map<string, Buffer>;
}

/** Options of {@link scanConfig}. */
export interface ScanConfigOptions {
  index: StatIndex;
  maxFileBytes: number;
  /** Read and keep every file's bytes, ignoring the cache (the slow path before a save). */
  withContent: boolean;
  nowMs: () => number;
}

/**
 * Describes the live config under `roots` as set entries, in a stable order. Files are hashed
 * only when their stat changed (unless `withContent`).
 * @throws {SnapshotError} SNAPSHOT_NOT_FOUND (a root is missing), SNAPSHOT_UNSAFE_PATH (a root
 *   that is a symlink, a symlink out of its directory, a FIFO/socket/device),
 *   SNAPSHOT_TOO_LARGE, SNAPSHOT_IO.
 */
export async function scanConfig(
  roots: readonly string[],
  options: ScanConfigOptions,
): Promise<ConfigScan> {
  const setRoots: SetRoot[] = [];
  const items: Array<{ root: string; item: WalkItem }> = [];
  const rootStats = await Promise.all(roots.map((root) => lstatOrUndefined(root)));
  for (const [index, root] of roots.entries()) {
    const stat = rootStats[index];
    if (stat === undefined)
      throw new SnapshotError('SNAPSHOT_NOT_FOUND', `${root}: config path does not exist`);
    if (stat.isSymbolicLink()) {
      const target = await fs.readlink(root).catch(() => '?');
      throw new SnapshotError(
        'SNAPSHOT_UNSAFE_PATH',
        `${root}: config path is a symbolic link (to ${target}); name the real file or directory instead`,
      );
    }
    if (!stat.isFile() && !stat.isDirectory())
      throw new SnapshotError(
        'SNAPSHOT_UNSAFE_PATH',
        `${root}: expected a regular file or a directory, found ${describeKind(stat)}`,
      );
    setRoots.push({ path: root, kind: stat.isDirectory() ? 'dir' : 'file' });
    await walkTree(root, stat, (item) => items.push({ root, item }));
  }
  const seen = new Set<string>();
  const entries: Array<SetEntry | Promise<SetEntry>> = [];
  const contents = new Map<string, Buffer>();
  for (const { root, item } of items) {
    if (seen.has(item.path)) continue; // a file root inside a directory root
    seen.add(item.path);
    entries.push(describeItem(root, item, options, contents));
  }
  const resolved = await Promise.all(entries);
  resolved.sort((a, b) => compareBytes(a.path, b.path));
  return { roots: setRoots, entries: resolved, contents };
}

async function describeItem(
  root: string,
  { path, stat }: WalkItem,
  options: ScanConfigOptions,
  contents: Map<string, Buffer>,
): Promise<SetEntry> {
  if (stat.isDirectory()) return { kind: 'dir', path, mode: stat.mode & 0o7777 };
  if (stat.isSymbolicLink()) {
    let target: string;
    try {
      target = await fs.readlink(path);
    } catch (error) {
      throw toSnapshotError(error, path, 'read symbolic link');
    }
    if (!symlinkStaysInside(path, target, root)) {
      throw new SnapshotError(
        'SNAPSHOT_UNSAFE_PATH',
        `${path}: symbolic link to ${target} points out of the config directory ${root}; refused`,
      );
    }
    return { kind: 'symlink', path, sha256: symlinkHash(target), target };
  }
  if (!stat.isFile())
    throw new SnapshotError(
      'SNAPSHOT_UNSAFE_PATH',
      `${path}: expected a regular file, found ${describeKind(stat)}`,
    );
  if (!options.withContent) {
    const cached = options.index.lookup(path, stat);
    if (cached !== undefined)
      return { kind: 'file', path, sha256: cached, size: stat.size, mode: stat.mode & 0o7777 };
  }
  const { content, stat: opened } = await readRegularFile(path, options.maxFileBytes);
  const hash = sha256(content);
  options.index.remember(path, opened, hash, options.nowMs());
  if (options.withContent) contents.set(hash, content);
  return { kind: 'file', path, sha256: hash, size: content.length, mode: opened.mode & 0o7777 };
}

/** The canonical hash of a set: its roots and entries, in their stable order. */
export function setHash(roots: readonly SetRoot[], entries: readonly SetEntry[]): string {
  const canonicalRoots = roots.map((root) => [root.kind, root.path]);
  const canonicalEntries = entries.map((entry) => {
    switch (entry.kind) {
      case 'file':
        return ['file', entry.path, entry.sha256, entry.size, entry.mode];
      case 'symlink':
        return ['symlink', entry.path, entry.sha256, entry.target];
      case 'dir':
        return ['dir', entry.path, entry.mode];
    }
  });
  return sha256(JSON.stringify({ version: 1, roots: canonicalRoots, entries: canonicalEntries }));
}
