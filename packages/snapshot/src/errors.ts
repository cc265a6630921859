import { PitError, type PitErrorOptions } from '@pit/cell-spec';

/** Error codes of @pit/snapshot. A code is public API. */
export type SnapshotErrorCode =
  | 'SNAPSHOT_MISSING' // no last-known-good set and no canonical source to fall back to
  | 'SNAPSHOT_NOT_FOUND' // a config file, checkpoint or workspace that does not exist
  | 'SNAPSHOT_INVALID' // a validator refused a config file, or an argument is malformed
  | 'SNAPSHOT_BAD_NAME' // an agent or checkpoint name that may not become a file name
  | 'SNAPSHOT_CORRUPT' // a stored object, set, pointer or archive whose bytes do not match their hash
  | 'SNAPSHOT_UNSAFE_PATH' // a symlink out of bounds, a special file, a hostile archive entry
  | 'SNAPSHOT_TOO_LARGE' // a config file over its limit, or an archive over its size or entry limits
  | 'SNAPSHOT_GIT' // reading the canonical version from git failed
  | 'SNAPSHOT_LOCKED' // another process holds the store or cell lock
  | 'SNAPSHOT_IO'; // the filesystem refused (permissions, disk full, …)

/** The error thrown by @pit/snapshot. */
export class SnapshotError extends PitError<SnapshotErrorCode> {
  constructor(code: SnapshotErrorCode, message: string, options: PitErrorOptions = {}) {
    super(code, message, options);
  }
}

const CELL_CODES: Record<string, SnapshotErrorCode> = {
  CELL_NOT_FOUND: 'SNAPSHOT_NOT_FOUND',
  CELL_UNSAFE_PATH: 'SNAPSHOT_UNSAFE_PATH',
  CELL_TOO_LARGE: 'SNAPSHOT_TOO_LARGE',
  CELL_LOCKED: 'SNAPSHOT_LOCKED',
  CELL_BAD_NAME: 'SNAPSHOT_BAD_NAME',
  CELL_INVALID: 'SNAPSHOT_CORRUPT',
};

const RETRYABLE_ERRNO = new Set(['ENOSPC', 'EDQUOT', 'EAGAIN', 'EMFILE', 'ENFILE', 'EBUSY']);

/**
 * Turns any error (a Node fs error, a CellError from @pit/cell-spec) into a SnapshotError
 * naming `path` and what was being done; passes SnapshotErrors through.
 */
export function toSnapshotError(error: unknown, path: string, action: string): SnapshotError {
  if (error instanceof SnapshotError) return error;
  if (PitError.is(error)) {
    const code = CELL_CODES[error.code] ?? 'SNAPSHOT_IO';
    return new SnapshotError(code, error.message, { cause: error, retryable: error.retryable });
  }
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason = error instanceof Error ? error.message : String(error);
  if (errno === 'ENOENT')
    return new SnapshotError(
      'SNAPSHOT_NOT_FOUND',
      `${path}: ${action}: no such file or directory`,
      { cause: error },
    );
  if (errno === 'ELOOP')
    return new SnapshotError(
      'SNAPSHOT_UNSAFE_PATH',
      `${path}: ${action}: is a symbolic link; refused`,
      { cause: error },
    );
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return new SnapshotError(
      'SNAPSHOT_IO',
      `${path}: ${action}: no space left on device (nothing was replaced)`,
      { cause: error, retryable: true },
    );
  }
  return new SnapshotError('SNAPSHOT_IO', `${path}: ${action}: ${reason}`, {
    cause: error,
    retryable: errno !== undefined && RETRYABLE_ERRNO.has(errno),
  });
}
