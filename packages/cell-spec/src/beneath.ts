/**
 * Opening paths beneath a root directory (a cell) without following a symbolic link at any
 * component, race-free: the one owner of that walk. Node has no `openat(2)`, but Linux gives
 * the same guarantee through `/proc/self/fd/<fd>/<name>`: the magic link resolves to the
 * directory already open as `<fd>` (whatever its path now names), and `<name>`, the last
 * component, is opened with `O_NOFOLLOW`. Each directory is opened that way relative to the
 * previous one, so a component swapped for a symlink after an earlier check is refused with
 * ELOOP instead of being followed out of the root. A file is then reached through the open
 * parent directory (`entry()`), so the existing atomic helpers work on it unchanged.
 * It never follows a link, never creates anything outside the root, and never walks `..`.
 */
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  promises as fs,
} from 'node:fs';
import { isAbsolute, join, relative as relativePath, sep } from 'node:path';
import {
  readFileSafe,
  writeFileAtomic,
  type ReadFileSafeOptions,
  type WriteFileAtomicOptions,
} from './atomic.js';
import { CellError, PitError, toCellError } from './errors.js';

const DIRECTORY_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** A directory opened beneath a root by {@link openDirectoryBeneath}. */
export interface BeneathDirectory {
  /** The open descriptor of the directory. */
  readonly fd: number;
  /** The directory's path as the caller named it (for messages only, never opened). */
  readonly path: string;
  /**
   * A path to `name` inside this directory that resolves through the open descriptor
   * (`/proc/self/fd/<fd>/<name>`): valid while the directory is open. Open it with
   * `O_NOFOLLOW` (every helper of atomic.ts does).
   * @throws {CellError} CELL_BAD_NAME for a name that is not one plain component.
   */
  entry(name: string): string;
  /** Closes the descriptor. */
  close(): Promise<void>;
}

/** Options of {@link openDirectoryBeneath}. */
export interface OpenBeneathOptions {
  /** Create missing directories on the way (never through a link). @default false */
  create?: boolean;
  /** Mode of directories created. @default 0o755 */
  mode?: number;
}

function assertComponent(root: string, component: string): string {
  if (
    component === '' ||
    component === '.' ||
    component === '..' ||
    component.includes('/') ||
    component.includes('\0')
  )
    throw new CellError(
      'CELL_BAD_NAME',
      `${root}: path component ${JSON.stringify(component)} would leave ${root}; expected a plain name`,
    );
  return component;
}

/**
 * The components of `target` beneath `root`: `target` is relative to `root` or an absolute
 * path inside it.
 * @throws {CellError} CELL_UNSAFE_PATH for a path outside `root`; CELL_BAD_NAME for `.`/`..`.
 */
export function componentsBeneath(root: string, target: string): string[] {
  const relative = isAbsolute(target) ? relativePath(root, target) : target;
  if (relative === '') return [];
  if (isAbsolute(relative) || relative === '..' || relative.startsWith(`..${sep}`))
    throw new CellError('CELL_UNSAFE_PATH', `${target}: outside ${root}; refused`);
  return relative.split('/').map((component) => assertComponent(root, component));
}

/** Whether `path` is a symbolic link (false when it cannot be read). */
function linkSync(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

const procEntry = (fd: number, name: string): string => `/proc/self/fd/${fd}/${name}`;

/** The error for a component that could not be opened as a directory. */
function walkError(options: {
  error: unknown;
  root: string;
  components: readonly string[];
  index: number;
  action: string;
  /** The component was found to be a symbolic link (O_DIRECTORY on a link says ENOTDIR). */
  link?: boolean;
}): CellError {
  const { error, root, components, index, action } = options;
  const at = join(root, ...components.slice(0, index + 1));
  const whole = join(root, ...components);
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ELOOP' || options.link === true)
    return new CellError(
      'CELL_UNSAFE_PATH',
      `${whole}: ${action}: ${at} is a symbolic link; refused (nothing beneath ${root} is reached through a link)`,
      { cause: error },
    );
  if (code === 'ENOTDIR')
    return new CellError(
      'CELL_UNSAFE_PATH',
      `${whole}: ${action}: ${at} is not a directory; refused`,
      { cause: error },
    );
  return toCellError(error, at, action);
}

/** Re-labels an error about `/proc/self/fd/<fd>` with the directory's real path. */
function relabel(error: unknown, directory: BeneathDirectory): unknown {
  const prefix = `/proc/self/fd/${directory.fd}`;
  if (!PitError.is(error) || !error.message.includes(prefix)) return error;
  return new CellError(
    error.code as CellError['code'],
    error.message.replaceAll(prefix, directory.path),
    {
      cause: error.cause ?? error,
      retryable: error.retryable,
    },
  );
}

function beneathDirectory(fd: number, path: string, close: () => Promise<void>): BeneathDirectory {
  return {
    fd,
    path,
    entry: (name) => procEntry(fd, assertComponent(path, name)),
    close,
  };
}

/**
 * Opens the directory `target` beneath `root` (relative, or absolute inside `root`) without
 * following a symbolic link at any component; `root` itself must be a directory and not a
 * link (the path leading to it is the operator's). Close the result.
 * @throws {CellError} CELL_UNSAFE_PATH naming the component that is a link or not a directory;
 *   CELL_NOT_FOUND (missing and not created); CELL_BAD_NAME; CELL_IO.
 * @example
 * const logs = await openDirectoryBeneath(cellDir, 'logs', { create: true });
 * try { await writeFileAtomic(logs.entry('note.txt'), 'hi'); } finally { await logs.close(); }
 */
export async function openDirectoryBeneath(
  root: string,
  target: string,
  options: OpenBeneathOptions = {},
): Promise<BeneathDirectory> {
  const components = componentsBeneath(root, target);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(root, DIRECTORY_FLAGS);
  } catch (error) {
    throw walkError({ error, root, components: [], index: -1, action: 'open directory' });
  }
  try {
    for (const [index, component] of components.entries()) {
      const next = procEntry(handle.fd, component);
      if (options.create)
        await fs.mkdir(next, { mode: options.mode ?? 0o755 }).catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        });
      const opened = await fs.open(next, DIRECTORY_FLAGS).catch(async (error: unknown) => {
        const link = (await fs.lstat(next).catch(() => undefined))?.isSymbolicLink();
        throw walkError({ error, root, components, index, action: 'open directory', link });
      });
      await handle.close();
      handle = opened;
    }
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw PitError.is(error)
      ? error
      : walkError({
          error,
          root,
          components,
          index: components.length - 1,
          action: 'create directory',
        });
  }
  const opened = handle;
  return beneathDirectory(opened.fd, join(root, ...components), () => opened.close());
}

/**
 * The synchronous twin of {@link openDirectoryBeneath}, for the spawn path (an agent's log
 * opened right before its fork). Returns the descriptor; close it with `closeSync`.
 */
export function openDirectoryBeneathSync(
  root: string,
  target: string,
  options: OpenBeneathOptions = {},
): number {
  const components = componentsBeneath(root, target);
  let fd: number;
  try {
    fd = openSync(root, DIRECTORY_FLAGS);
  } catch (error) {
    throw walkError({ error, root, components: [], index: -1, action: 'open directory' });
  }
  for (const [index, component] of components.entries()) {
    const next = procEntry(fd, component);
    try {
      if (options.create) {
        try {
          mkdirSync(next, { mode: options.mode ?? 0o755 });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
      }
      const opened = openSync(next, DIRECTORY_FLAGS);
      closeSync(fd);
      fd = opened;
    } catch (error) {
      const link = linkSync(next);
      closeSync(fd);
      throw walkError({ error, root, components, index, action: 'open directory', link });
    }
  }
  return fd;
}

/** Splits `target` beneath `root` into its parent directory's components and its last name. */
function splitLast(root: string, target: string): { parent: string; name: string } {
  const components = componentsBeneath(root, target);
  const name = components.pop();
  if (name === undefined)
    throw new CellError(
      'CELL_BAD_NAME',
      `${target}: expected a file beneath ${root}, not ${root} itself`,
    );
  return { parent: components.join('/'), name };
}

/**
 * Runs `work` with the parent directory of `target` open beneath `root` and the file's name in
 * it; `work` reaches the file through `directory.entry(name)`. Errors naming the
 * `/proc/self/fd` path are re-labelled with the real one.
 * @throws {CellError} as {@link openDirectoryBeneath}, and whatever `work` throws.
 */
export async function withParentBeneath<T>(
  root: string,
  target: string,
  options: OpenBeneathOptions,
  work: (directory: BeneathDirectory, name: string) => Promise<T>,
): Promise<T> {
  const { parent, name } = splitLast(root, target);
  const directory = await openDirectoryBeneath(root, parent, options);
  try {
    return await work(directory, name);
  } catch (error) {
    throw relabel(error, directory);
  } finally {
    await directory.close();
  }
}

/** Options of {@link openFileBeneath}. */
export interface OpenFileBeneathOptions {
  /** `open(2)` flags; `O_NOFOLLOW` and `O_NONBLOCK` are always added (Node opens close-on-exec). */
  flags: number;
  /** Mode of a file created. @default 0o644 */
  mode?: number;
  /** Create missing parent directories (never through a link). @default false */
  createParents?: boolean;
}

const FILE_FLAGS = constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Opens the regular file `target` beneath `root`, no component followed if it is a link (a
 * FIFO or device there is refused without blocking).
 * @throws {CellError} CELL_UNSAFE_PATH (a link anywhere on the way, or not a regular file),
 *   CELL_NOT_FOUND, CELL_IO.
 * @example
 * const log = await openFileBeneath(cellDir, 'logs/forge.log', { flags: constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, createParents: true });
 */
export async function openFileBeneath(
  root: string,
  target: string,
  options: OpenFileBeneathOptions,
): Promise<fs.FileHandle> {
  return withParentBeneath(
    root,
    target,
    { create: options.createParents ?? false },
    async (directory, name) => {
      const path = join(directory.path, name);
      let handle: fs.FileHandle;
      try {
        handle = await fs.open(
          directory.entry(name),
          options.flags | FILE_FLAGS,
          options.mode ?? 0o644,
        );
      } catch (error) {
        throw toCellError(error, path, 'open');
      }
      const stat = await handle.stat().catch(async (error: unknown) => {
        await handle.close().catch(() => undefined);
        throw toCellError(error, path, 'open');
      });
      if (!stat.isFile()) {
        await handle.close().catch(() => undefined);
        throw new CellError('CELL_UNSAFE_PATH', `${path}: expected a regular file; refused`);
      }
      return handle;
    },
  );
}

/** The synchronous twin of {@link openFileBeneath}; returns the descriptor. */
export function openFileBeneathSync(
  root: string,
  target: string,
  options: OpenFileBeneathOptions,
): number {
  const { parent, name } = splitLast(root, target);
  const directory = openDirectoryBeneathSync(root, parent, {
    create: options.createParents ?? false,
  });
  const path = join(root, parent, name);
  let fd: number | undefined;
  try {
    fd = openSync(procEntry(directory, name), options.flags | FILE_FLAGS, options.mode ?? 0o644);
    if (!fstatSync(fd).isFile())
      throw new CellError('CELL_UNSAFE_PATH', `${path}: expected a regular file; refused`);
    return fd;
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    throw toCellError(error, path, 'open');
  } finally {
    closeSync(directory);
  }
}

/**
 * Reads the regular file `target` beneath `root` ({@link readFileSafe} through a walk that
 * follows no link).
 * @throws {CellError} CELL_UNSAFE_PATH, CELL_NOT_FOUND, CELL_TOO_LARGE, CELL_IO.
 */
export async function readFileBeneath(
  root: string,
  target: string,
  options: ReadFileSafeOptions = {},
): Promise<Buffer> {
  return withParentBeneath(root, target, {}, (directory, name) =>
    readFileSafe(directory.entry(name), options),
  );
}

/** Options of {@link writeFileAtomicBeneath}. */
export interface WriteFileAtomicBeneathOptions extends WriteFileAtomicOptions {
  /** Create missing parent directories (never through a link). @default false */
  createParents?: boolean;
}

/**
 * Replaces the file `target` beneath `root` atomically ({@link writeFileAtomic} inside the
 * parent directory opened by a walk that follows no link).
 * @throws {CellError} CELL_UNSAFE_PATH, CELL_NOT_FOUND, CELL_IO.
 */
export async function writeFileAtomicBeneath(
  root: string,
  target: string,
  data: string | Uint8Array,
  options: WriteFileAtomicBeneathOptions = {},
): Promise<void> {
  const { createParents, ...atomic } = options;
  await withParentBeneath(root, target, { create: createParents ?? false }, (directory, name) =>
    writeFileAtomic(directory.entry(name), data, atomic),
  );
}
