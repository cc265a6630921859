import { constants, promises as fs } from 'node:fs';
import { CellError, toCellError } from './errors.js';

/** Options of {@link withFileLock}. */
export interface FileLockOptions {
  /** Give up after this long. @default 5000 (ms) */
  timeoutMs?: number;
  /** A lock older than this whose holder cannot be checked is broken. @default 30000 (ms) */
  staleMs?: number;
}

function holderAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function breakIfStale(lockPath: string, staleMs: number): Promise<void> {
  let content: string;
  let mtimeMs: number;
  let ino: number;
  try {
    const stat = await fs.lstat(lockPath);
    mtimeMs = stat.mtimeMs;
    ino = stat.ino;
    content = await fs.readFile(lockPath, 'utf8');
  } catch {
    return; // gone already
  }
  const pid = Number.parseInt(content.trim(), 10);
  const dead = content.trim() !== '' && !holderAlive(pid);
  const ancient = Date.now() - mtimeMs > staleMs && (content.trim() === '' || !holderAlive(pid));
  if (!dead && !ancient) return;
  // Only remove the lock we judged: if another waiter already replaced it, leave the new one.
  const again = await fs.lstat(lockPath).catch(() => undefined);
  if (again?.ino === ino) await fs.rm(lockPath, { force: true });
}

/**
 * Runs `work` holding an exclusive lock file (`O_CREAT|O_EXCL`) beside the data it guards.
 * A lock left by a process that died (SIGKILL) is detected by its pid and broken.
 * @throws {CellError} CELL_LOCKED when the lock is not free within `timeoutMs`.
 */
export async function withFileLock<T>(lockPath: string, work: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  const staleMs = options.staleMs ?? 30_000;
  let delay = 1;
  for (;;) {
    let handle: fs.FileHandle | undefined;
    try {
      handle = await fs.open(lockPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      handle = undefined;
      break;
    } catch (error) {
      await handle?.close().catch(() => undefined);
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw toCellError(error, lockPath, 'take lock');
      await breakIfStale(lockPath, staleMs);
      if (Date.now() > deadline) {
        const holder = await fs.readFile(lockPath, 'utf8').catch(() => '?');
        throw new CellError('CELL_LOCKED', `${lockPath}: still held by pid ${holder.trim() || '?'} after ${options.timeoutMs ?? 5000} ms`, { retryable: true });
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 50);
    }
  }
  try {
    return await work();
  } finally {
    await fs.rm(lockPath, { force: true }).catch(() => undefined);
  }
}
