const PIT_ERROR = Symbol.for('pit.error');

/** Options every Pit error accepts. */
export interface PitErrorOptions {
  /** The underlying error, kept for debugging. */
  cause?: unknown;
  /** Whether the same call may succeed if tried again. @default false */
  retryable?: boolean;
}

/**
 * The base error of every @pit package. Each package narrows `code` to its own union
 * (`CELL_*`, `PROBE_*`, …); a code is public API.
 */
export class PitError<Code extends string = string> extends Error {
  readonly [PIT_ERROR] = true;
  readonly retryable: boolean;
  constructor(
    readonly code: Code,
    message: string,
    options: PitErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.retryable = options.retryable ?? false;
  }

  /** Works where `instanceof` fails: two copies of cell-spec in one process. */
  static is(value: unknown): value is PitError {
    return typeof value === 'object' && value !== null && PIT_ERROR in value;
  }
}

/** Error codes of @pit/cell-spec. */
export type CellErrorCode =
  | 'CELL_INVALID' // a file exists but its content breaks the contract
  | 'CELL_NOT_FOUND' // the cell or file does not exist
  | 'CELL_NOT_A_CELL' // a path that is not a cell directory
  | 'CELL_BAD_NAME' // an agent name or uuid that may not become a file name
  | 'CELL_UNSAFE_PATH' // a symlink, a non-regular file, or a path outside the cell
  | 'CELL_TOO_LARGE' // a file over its size limit
  | 'CELL_ILLEGAL_TRANSITION' // a lifecycle transition the state machine refuses
  | 'CELL_CONFLICT' // a concurrent update got there first
  | 'CELL_LOCKED' // a lock could not be taken in time
  | 'CELL_EXISTS' // the target already exists
  | 'CELL_IO'; // the filesystem refused (permissions, disk full, …)

/** The error thrown by @pit/cell-spec. */
export class CellError extends PitError<CellErrorCode> {}

/** Turns a Node fs error into a CellError naming the path; passes CellErrors through. */
export function toCellError(error: unknown, path: string, action: string): CellError {
  if (error instanceof CellError) return error;
  // A CellError from another copy of cell-spec in the same process: pass it through as well.
  if (PitError.is(error) && typeof error.code === 'string' && error.code.startsWith('CELL_'))
    return error as CellError;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason = error instanceof Error ? error.message : String(error);
  if (code === 'ENOENT')
    return new CellError('CELL_NOT_FOUND', `${path}: ${action}: no such file or directory`, {
      cause: error,
    });
  if (code === 'ELOOP')
    return new CellError('CELL_UNSAFE_PATH', `${path}: ${action}: is a symbolic link; refused`, {
      cause: error,
    });
  if (code === 'ENOTDIR') {
    return new CellError(
      'CELL_UNSAFE_PATH',
      `${path}: ${action}: a parent of this path is a file, expected a directory`,
      { cause: error },
    );
  }
  const retryable =
    code === 'ENOSPC' ||
    code === 'EDQUOT' ||
    code === 'EAGAIN' ||
    code === 'EMFILE' ||
    code === 'ENFILE' ||
    code === 'EBUSY';
  return new CellError('CELL_IO', `${path}: ${action}: ${reason}`, { cause: error, retryable });
}
