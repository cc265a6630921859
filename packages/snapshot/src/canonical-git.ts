import { isAbsolute } from 'node:path';
import { SnapshotError } from './errors.js';

/**
 * Where the canonical version of an agent's config lives in source control: a local git
 * repository, a ref, and which file of the repository becomes which live path.
 */
export interface CanonicalSource {
  /** Absolute path of a local git repository (work tree or bare). */
  repository: string;
  /** Commit, branch or tag to read. @default 'HEAD' */
  ref?: string;
  /** Each repository file (`path`, relative to the repository root) and the live config path it restores (`target`, absolute). */
  files: ReadonlyArray<{ path: string; target: string }>;
}

/** One file read from git. */
export interface CanonicalFile {
  target: string;
  repositoryPath: string;
  content: Buffer;
  /** 0o755 for an executable blob, else 0o644. */
  mode: number;
}

/** Options of {@link readCanonical}. */
export interface ReadCanonicalOptions {
  /** Per git call. (ms) */
  timeoutMs: number;
  /** Larger blobs are refused. (bytes) */
  maxFileBytes: number;
}

function checkSource(source: CanonicalSource): string {
  if (typeof source.repository !== 'string' || !isAbsolute(source.repository)) {
    throw new SnapshotError(
      'SNAPSHOT_INVALID',
      `canonical.repository: ${JSON.stringify(source.repository)} must be an absolute path`,
    );
  }
  const ref = source.ref ?? 'HEAD';
  if (ref === '' || ref.startsWith('-') || /[\s:\x00-\x1f\x7f]/.test(ref)) {
    throw new SnapshotError(
      'SNAPSHOT_INVALID',
      `canonical.ref: ${JSON.stringify(ref)} must be a commit, branch or tag name (no leading "-", spaces or ":")`,
    );
  }
  if (!Array.isArray(source.files) || source.files.length === 0)
    throw new SnapshotError('SNAPSHOT_INVALID', 'canonical.files: expected at least one file');
  source.files.forEach((file, index) => {
    const segments = typeof file.path === 'string' ? file.path.split('/') : [];
    if (
      typeof file.path !== 'string' ||
      file.path === '' ||
      file.path.startsWith('/') ||
      file.path.includes('\0') ||
      segments.includes('..') ||
      segments.includes('.')
    ) {
      throw new SnapshotError(
        'SNAPSHOT_INVALID',
        `canonical.files.${index}.path: ${JSON.stringify(file.path)} must be a path relative to the repository root, without "." or ".." segments`,
      );
    }
    if (typeof file.target !== 'string' || !isAbsolute(file.target) || file.target.includes('\0')) {
      throw new SnapshotError(
        'SNAPSHOT_INVALID',
        `canonical.files.${index}.target: ${JSON.stringify(file.target)} must be an absolute path`,
      );
    }
  });
  return ref;
}

function gitFailure(error: unknown, what: string): SnapshotError {
  const details = error as {
    code?: string;
    stderr?: unknown;
    shortMessage?: string;
    timedOut?: boolean;
  };
  if (details.code === 'ENOENT')
    return new SnapshotError('SNAPSHOT_GIT', `${what}: git is not installed (or not on PATH)`, {
      cause: error,
    });
  if (details.timedOut)
    return new SnapshotError('SNAPSHOT_GIT', `${what}: git timed out`, {
      cause: error,
      retryable: true,
    });
  const stderr =
    details.stderr instanceof Uint8Array
      ? Buffer.from(details.stderr).toString('utf8')
      : typeof details.stderr === 'string'
        ? details.stderr
        : '';
  const reason = stderr.trim().split('\n')[0] || details.shortMessage || String(error);
  return new SnapshotError('SNAPSHOT_GIT', `${what}: ${reason}`, { cause: error });
}

/**
 * Reads the canonical config from git: the blob's type and mode with `git ls-tree`, its bytes
 * with `git show <ref>:<path>` (no text conversion).
 * @throws {SnapshotError} SNAPSHOT_INVALID (bad source), SNAPSHOT_GIT (no such repository,
 *   ref or path; not a regular file; git missing or failing), SNAPSHOT_TOO_LARGE.
 */
export async function readCanonical(
  source: CanonicalSource,
  options: ReadCanonicalOptions,
): Promise<CanonicalFile[]> {
  const ref = checkSource(source);
  const { execa } = await import('execa');
  const git = (args: string[]) =>
    execa('git', ['-C', source.repository, ...args], {
      encoding: 'buffer',
      stripFinalNewline: false,
      timeout: options.timeoutMs,
      maxBuffer: options.maxFileBytes + 1,
      stdin: 'ignore',
      env: { GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0' },
    });
  const files: CanonicalFile[] = [];
  for (const file of source.files) {
    const what = `${source.repository}: ${ref}:${file.path}`;
    let listing: string;
    try {
      listing = Buffer.from(
        (await git(['ls-tree', '-z', '--full-tree', ref, '--', file.path])).stdout,
      ).toString('utf8');
    } catch (error) {
      throw gitFailure(error, what);
    }
    const line = listing.split('\0').find((item) => item.endsWith(`\t${file.path}`));
    if (line === undefined)
      throw new SnapshotError('SNAPSHOT_GIT', `${what}: no such file in the repository at ${ref}`);
    const [mode, type] = line.split('\t')[0]?.split(' ') ?? [];
    if (type !== 'blob' || (mode !== '100644' && mode !== '100755')) {
      throw new SnapshotError(
        'SNAPSHOT_GIT',
        `${what}: expected a regular file, found a ${type === 'blob' && mode === '120000' ? 'symbolic link' : type === 'tree' ? 'directory' : `${type ?? '?'} (mode ${mode ?? '?'})`}`,
      );
    }
    let content: Buffer;
    try {
      content = Buffer.from((await git(['show', '--no-textconv', `${ref}:${file.path}`])).stdout);
    } catch (error) {
      if ((error as { isMaxBuffer?: boolean }).isMaxBuffer) {
        throw new SnapshotError(
          'SNAPSHOT_TOO_LARGE',
          `${what}: larger than the limit of ${options.maxFileBytes} bytes`,
          { cause: error },
        );
      }
      throw gitFailure(error, what);
    }
    files.push({
      target: file.target,
      repositoryPath: file.path,
      content,
      mode: mode === '100755' ? 0o755 : 0o644,
    });
  }
  return files;
}
