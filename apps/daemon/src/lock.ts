/**
 * The state directory's lock (`<state_dir>/daemon.lock`), so that one daemon at a time
 * supervises a state directory, and the optional pid file beside it. It owns taking, taking over
 * (from a dead holder) and releasing the lock; it never signals or stops another daemon.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '@pit/cell-spec';
import { DaemonError } from './errors.js';
import { checkProcess, readProcessStartTime } from './proc.js';

/** The content of `<state_dir>/daemon.lock`. */
export const LockHolderSchema = z.looseObject({
  pid: z.number().int().positive(),
  /** Clock ticks since boot (`/proc/<pid>/stat` field 22): a recycled pid is not taken for the holder. */
  start_time: z.number().int().nonnegative(),
  started_at: z.string(),
  hostname: z.string().optional(),
});
export type LockHolder = z.infer<typeof LockHolderSchema>;

/** A held daemon lock. */
export interface DaemonLock {
  /** The lock file. */
  path: string;
  holder: LockHolder;
  /** Removes the lock (and the pid file) if they are still ours. */
  release(): Promise<void>;
}

/** Options of {@link acquireDaemonLock}. */
export interface AcquireDaemonLockOptions {
  /** Also write this pid file (atomically) while the lock is held. */
  pidFile?: string;
  /** Called when a stale lock (its holder died without releasing it) is taken over. */
  onStale?: (holder: LockHolder | undefined) => void;
}

/** The lock file of a state directory. */
export const lockPath = (stateDir: string) => join(stateDir, 'daemon.lock');

/**
 * Takes the state directory's lock: one daemon per state directory, so two never revive the
 * same agent. The lock file is created atomically with its content (written to a temp file,
 * then `link(2)`ed into place: it either exists whole or not at all) and names the holder's
 * pid and start time. A lock whose holder is gone (SIGKILLed daemon), or whose pid now
 * belongs to another process, is stale and taken over.
 * @throws {DaemonError} DAEMON_LOCKED naming the holder's pid when another daemon is alive.
 * @example
 * const lock = await acquireDaemonLock('/var/lib/pit', { pidFile: '/run/pit.pid' });
 * try { … } finally { await lock.release(); }
 */
export async function acquireDaemonLock(
  stateDir: string,
  options: AcquireDaemonLockOptions = {},
): Promise<DaemonLock> {
  const path = lockPath(stateDir);
  const holder = await holderOfThisProcess();
  try {
    await fs.mkdir(stateDir, { recursive: true, mode: 0o750 });
  } catch (error) {
    throw new DaemonError(
      'DAEMON_IO',
      `${stateDir}: cannot create the state directory: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const temp = join(stateDir, `.daemon.lock.${process.pid}.${randomBytes(4).toString('hex')}`);
  await fs.writeFile(temp, `${JSON.stringify(holder)}\n`, { mode: 0o644, flag: 'wx' });
  try {
    await linkLock({ temp, path, stateDir, onStale: options.onStale });
  } finally {
    await fs.rm(temp, { force: true });
  }
  if (options.pidFile) await writeFileAtomic(options.pidFile, `${process.pid}\n`, { mode: 0o644 });
  let released = false;
  return {
    path,
    holder,
    async release() {
      if (released) return;
      released = true;
      await releaseLock({ path, holder, pidFile: options.pidFile });
    },
  };
}

/** This process as a lock holder: its pid, start time (from /proc), start date and host name. */
async function holderOfThisProcess(): Promise<LockHolder> {
  const startTime = await readProcessStartTime(process.pid);
  if (startTime === undefined)
    throw new DaemonError('DAEMON_IO', `cannot read /proc/${process.pid}/stat (is /proc mounted?)`);
  return {
    pid: process.pid,
    start_time: startTime,
    started_at: new Date().toISOString(),
    hostname: hostname(),
  };
}

/**
 * Links the written `temp` file into place as the lock. A lock already there whose holder is
 * alive is refused (DAEMON_LOCKED); a stale or corrupt one is removed and the link retried, at
 * most three times.
 */
async function linkLock(options: {
  temp: string;
  path: string;
  /** Named in the DAEMON_LOCKED message. */
  stateDir: string;
  onStale: AcquireDaemonLockOptions['onStale'];
}): Promise<void> {
  const { temp, path, stateDir } = options;
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.link(temp, path);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new DaemonError(
          'DAEMON_IO',
          `${path}: cannot take the lock: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
    }
    const current = await readHolder(path);
    if (current.state === 'gone') continue;
    if (current.state === 'alive') {
      const other = current.holder;
      throw new DaemonError(
        'DAEMON_LOCKED',
        `another pit daemon (pid ${other.pid}${other.hostname ? ` on ${other.hostname}` : ''}, running since ${other.started_at}) holds ${stateDir} (lock ${path}); stop it first or use another state_dir`,
      );
    }
    if (attempt >= 3)
      throw new DaemonError(
        'DAEMON_LOCKED',
        `${path}: could not take over a stale lock after ${attempt} attempts (another daemon starting at the same time?)`,
      );
    // Remove the stale lock only if it is still the very file we judged (not one a racing daemon just created).
    const again = await fs.lstat(path).catch(() => undefined);
    if (again?.ino === current.ino) {
      await fs.rm(path, { force: true });
      options.onStale?.(current.state === 'stale' ? current.holder : undefined);
    }
  }
}

/** Removes the lock and the pid file, each only if it still names `holder` (this process). */
async function releaseLock(lock: {
  path: string;
  holder: LockHolder;
  pidFile: string | undefined;
}): Promise<void> {
  const { path, holder, pidFile } = lock;
  const current = await readHolder(path);
  if (
    (current.state === 'alive' || current.state === 'stale') &&
    current.holder.pid === holder.pid &&
    current.holder.start_time === holder.start_time
  )
    await fs.rm(path, { force: true });
  if (pidFile) {
    const pid = (await fs.readFile(pidFile, 'utf8').catch(() => '')).trim();
    if (pid === String(process.pid)) await fs.rm(pidFile, { force: true });
  }
}

type HolderState =
  | { state: 'alive'; holder: LockHolder; ino: number }
  | { state: 'stale'; holder: LockHolder; ino: number }
  | { state: 'corrupt'; ino: number }
  | { state: 'gone' };

async function readHolder(path: string): Promise<HolderState> {
  let text: string;
  let ino: number;
  try {
    ino = (await fs.lstat(path)).ino;
    text = await fs.readFile(path, 'utf8');
  } catch {
    return { state: 'gone' };
  }
  let parsed: ReturnType<typeof LockHolderSchema.safeParse>;
  try {
    parsed = LockHolderSchema.safeParse(JSON.parse(text));
  } catch {
    return { state: 'corrupt', ino };
  }
  if (!parsed.success) return { state: 'corrupt', ino };
  const liveness = await checkProcess(parsed.data.pid, parsed.data.start_time);
  return { state: liveness.alive ? 'alive' : 'stale', holder: parsed.data, ino };
}

/**
 * Who holds the state directory's lock, if anyone alive does (for `pit status` and the CLI).
 */
export async function readDaemonLock(stateDir: string): Promise<LockHolder | undefined> {
  const current = await readHolder(lockPath(stateDir));
  return current.state === 'alive' ? current.holder : undefined;
}
