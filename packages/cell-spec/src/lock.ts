import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { removeStaleTemps } from './atomic.js';
import { CellError, toCellError } from './errors.js';
import { isProcessAlive } from './process-alive.js';

/** Options of {@link withFileLock}. */
export interface FileLockOptions {
  /** Give up after this long. @default 5000 (ms) */
  timeoutMs?: number;
  /** A lock older than this whose holder cannot be checked (no pid in it) is broken. @default 30000 (ms) */
  staleMs?: number;
}

function tempBeside(lockPath: string): string {
  return join(
    dirname(lockPath),
    `.${basename(lockPath)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
}

/**
 * Breaks the lock at `lockPath` if its holder is dead. The lock is first renamed aside (only
 * one waiter can win that rename), then its content is compared with what was judged stale:
 * if a live holder's fresh lock was moved by mistake, it is linked back.
 */
async function breakIfStale(lockPath: string, staleMs: number): Promise<void> {
  let content: string;
  let mtimeMs: number;
  try {
    mtimeMs = (await fs.lstat(lockPath)).mtimeMs;
    content = await fs.readFile(lockPath, 'utf8');
  } catch {
    return; // released or broken meanwhile
  }
  const pidText = content.split('\n', 1)[0]?.trim() ?? '';
  const pid = /^\d+$/.test(pidText) ? Number(pidText) : undefined;
  const stale = pid !== undefined ? !isProcessAlive(pid) : Date.now() - mtimeMs > staleMs;
  if (!stale) return;
  const aside = tempBeside(lockPath);
  try {
    await fs.rename(lockPath, aside);
  } catch {
    return; // someone else broke or released it first
  }
  const moved = await fs.readFile(aside, 'utf8').catch(() => undefined);
  if (moved !== content) {
    // A waiter broke the stale lock and took a new one between our read and our rename: give it back.
    await fs.link(aside, lockPath).catch(() => undefined);
  }
  await fs.unlink(aside).catch(() => undefined);
  // The dead holder may have left its temporary lock file behind.
  await removeStaleTemps(dirname(lockPath), [basename(lockPath)]);
}

/**
 * Runs `work` holding an exclusive lock file beside the data it guards. The lock appears
 * atomically with its holder's pid and a random token inside (written to a temp file, then
 * `link`ed into place, which fails if the lock exists), so a waiter can always tell who holds
 * it: a lock left by a process that died (SIGKILL) is detected by its pid and broken at once.
 * Not re-entrant: taking the same lock again inside `work` waits for itself and times out.
 * @throws {CellError} CELL_LOCKED (retryable) when the lock is not free within `timeoutMs`;
 *   CELL_NOT_FOUND when the directory does not exist; CELL_IO.
 * @example
 * await withFileLock(`${paths.state}.lock`, async () => { … read, change, write … });
 */
export async function withFileLock<T>(
  lockPath: string,
  work: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const deadline = Date.now() + timeoutMs;
  const staleMs = options.staleMs ?? 30_000;
  const token = `${process.pid}\n${randomBytes(8).toString('hex')}\n`;
  const temp = tempBeside(lockPath);
  try {
    await fs.writeFile(temp, token, {
      flag: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      mode: 0o600,
    });
  } catch (error) {
    throw toCellError(error, lockPath, 'take lock');
  }
  try {
    let delay = 1;
    for (;;) {
      try {
        await fs.link(temp, lockPath);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
          throw toCellError(error, lockPath, 'take lock');
      }
      await breakIfStale(lockPath, staleMs);
      if (Date.now() > deadline) {
        const holder = await fs.readFile(lockPath, 'utf8').catch(() => '?');
        throw new CellError(
          'CELL_LOCKED',
          `${lockPath}: still held by pid ${holder.split('\n', 1)[0]?.trim() || '?'} after ${timeoutMs} ms`,
          {
            retryable: true,
          },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 20);
    }
  } finally {
    await fs.unlink(temp).catch(() => undefined);
  }
  try {
    return await work();
  } finally {
    // Release only our own lock: if it was broken (we were judged dead), leave the new holder's alone.
    const current = await fs.readFile(lockPath, 'utf8').catch(() => undefined);
    if (current === token) await fs.unlink(lockPath).catch(() => undefined);
  }
}
