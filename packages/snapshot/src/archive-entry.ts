import { posix } from 'node:path';

/** Limits a restore enforces, from the headers, before anything is written. */
export interface ArchiveLimits {
  /** Most entries (files, directories, links). */
  maxEntries: number;
  /** Most bytes of file content, summed. */
  maxBytes: number;
}

/** What an archive entry looks like to the checker (a subset of node-tar's ReadEntry). */
export interface ArchiveEntryHeader {
  path: string;
  type: string;
  size: number;
  linkpath?: string | undefined;
}

/** Why an entry is refused. */
export interface EntryProblem {
  code: 'SNAPSHOT_UNSAFE_PATH' | 'SNAPSHOT_TOO_LARGE';
  message: string;
}

const ALLOWED_TYPES = new Set([
  'File',
  'OldFile',
  'ContiguousFile',
  'Directory',
  'SymbolicLink',
  'Link',
]);

/**
 * Checks archive entries one by one, in order, for a restore into a fresh directory: refuses
 * absolute paths, `..`, links pointing out of the root, paths through a symbolic link,
 * devices and FIFOs, and more entries or bytes than the limits.
 */
export class ArchiveEntryChecker {
  entries = 0;
  bytes = 0;
  /** Mode of the root entry (`./`), when the archive has one. */
  rootMode: number | undefined;
  private readonly symlinks = new Set<string>();

  constructor(private readonly limits: ArchiveLimits) {}

  /** The entry's path relative to the root (`''` for the root itself), or a problem. */
  check(entry: ArchiveEntryHeader & { mode?: number | undefined }): EntryProblem | undefined {
    const raw = entry.path;
    const shown = JSON.stringify(raw);
    if (typeof raw !== 'string' || raw.includes('\0'))
      return { code: 'SNAPSHOT_UNSAFE_PATH', message: `entry ${shown}: path contains a NUL byte` };
    if (raw.startsWith('/') || /^[a-zA-Z]:/.test(raw) || raw.includes('\\'))
      return { code: 'SNAPSHOT_UNSAFE_PATH', message: `entry ${shown}: absolute path; refused` };
    const segments = raw.split('/');
    if (segments.includes('..'))
      return {
        code: 'SNAPSHOT_UNSAFE_PATH',
        message: `entry ${shown}: path contains ".."; refused`,
      };
    const relative = posix
      .normalize(raw)
      .replace(/^(\.\/)+/, '')
      .replace(/\/+$/, '');
    const path = relative === '.' ? '' : relative;
    if (!ALLOWED_TYPES.has(entry.type))
      return {
        code: 'SNAPSHOT_UNSAFE_PATH',
        message: `entry ${shown}: type ${entry.type} is not allowed in a workspace checkpoint`,
      };
    this.entries += 1;
    if (this.entries > this.limits.maxEntries)
      return {
        code: 'SNAPSHOT_TOO_LARGE',
        message: `archive has more than ${this.limits.maxEntries} entries; refused as a possible tar bomb`,
      };
    const size = Number.isFinite(entry.size) && entry.size > 0 ? entry.size : 0;
    this.bytes += size;
    if (this.bytes > this.limits.maxBytes)
      return {
        code: 'SNAPSHOT_TOO_LARGE',
        message: `archive unpacks to more than ${this.limits.maxBytes} bytes (at ${shown}); refused as a possible tar bomb`,
      };
    if (path === '') {
      if (entry.type !== 'Directory')
        return {
          code: 'SNAPSHOT_UNSAFE_PATH',
          message: `entry ${shown}: the root must be a directory`,
        };
      this.rootMode = entry.mode;
      return undefined;
    }
    // Nothing may be written through (or over) a symbolic link the archive created.
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i += 1) {
      const prefix = parts.slice(0, i).join('/');
      if (this.symlinks.has(prefix))
        return {
          code: 'SNAPSHOT_UNSAFE_PATH',
          message: `entry ${shown}: goes through the symbolic link ${JSON.stringify(prefix)}; refused`,
        };
    }
    if (entry.type === 'SymbolicLink') {
      const target = entry.linkpath ?? '';
      if (target === '' || target.includes('\0'))
        return {
          code: 'SNAPSHOT_UNSAFE_PATH',
          message: `entry ${shown}: symbolic link without a target`,
        };
      if (target.startsWith('/'))
        return {
          code: 'SNAPSHOT_UNSAFE_PATH',
          message: `entry ${shown}: symbolic link to the absolute path ${JSON.stringify(target)}; refused`,
        };
      const resolved = posix.normalize(posix.join(posix.dirname(path), target));
      if (resolved === '..' || resolved.startsWith('../'))
        return {
          code: 'SNAPSHOT_UNSAFE_PATH',
          message: `entry ${shown}: symbolic link to ${JSON.stringify(target)} points out of the workspace; refused`,
        };
      this.symlinks.add(path);
    }
    if (entry.type === 'Link') {
      const target = entry.linkpath ?? '';
      const targetParts = target.split('/');
      if (target === '' || target.startsWith('/') || targetParts.includes('..')) {
        return {
          code: 'SNAPSHOT_UNSAFE_PATH',
          message: `entry ${shown}: hard link to ${JSON.stringify(target)} points out of the workspace; refused`,
        };
      }
      const clean = posix.normalize(target).replace(/^(\.\/)+/, '');
      const cleanParts = clean.split('/');
      for (let i = 1; i <= cleanParts.length; i += 1) {
        if (this.symlinks.has(cleanParts.slice(0, i).join('/')))
          return {
            code: 'SNAPSHOT_UNSAFE_PATH',
            message: `entry ${shown}: hard link through a symbolic link; refused`,
          };
      }
    }
    return undefined;
  }
}
