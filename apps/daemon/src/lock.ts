/**
 * The supervisor's locks: the state directory's (`<state_dir>/daemon.lock`), so that one daemon
 * at a time uses a state directory, and the cells root's (`<cells root>/.pit-supervisor.lock`),
 * so that one supervisor (daemon or `pit sweep --once`) at a time supervises a fleet whatever
 * its state directory; and the optional pid file. It owns taking, taking over (from a dead
 * holder) and releasing them; it never signals or stops another daemon.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
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
  /** The cells root's lock file, when one was taken. */
  rootPath?: string;
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
  /**
   * Also lock this cells root (`<root>/.pit-supervisor.lock`): two supervisors with different
   * state directories over the same cells would both revive the same agent.
   */
  cellsRoot?: string;
}

/** The lock file of a state directory. */
export const lockPath = (stateDir: string) => join(stateDir, 'daemon.lock');

/** The lock file of a cells root (a dot file: discovery ignores it, it is never a cell). */
export const rootLockPath = (cellsRoot: string) => join(cellsRoot, '.pit-supervisor.lock');

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
  const holder = await holderOfThisProcess();
  const path = lockPath(stateDir);
  await takeLockFile({
    dir: stateDir,
    path,
    holder,
    subject: `state directory ${stateDir}`,
    hint: 'stop it first or use another state_dir',
    onStale: options.onStale,
  });
  const rootPath = options.cellsRoot === undefined ? undefined : rootLockPath(options.cellsRoot);
  if (options.cellsRoot !== undefined && rootPath !== undefined) {
    try {
      await takeLockFile({
        dir: options.cellsRoot,
        path: rootPath,
        holder,
        subject: `cells root ${options.cellsRoot}`,
        hint: 'one supervisor per cells root: stop it first (a sweep never runs beside a daemon)',
        onStale: options.onStale,
      });
    } catch (error) {
      await releaseLock({ path, holder, pidFile: undefined });
      throw error;
    }
  }
  if (options.pidFile) await writeFileAtomic(options.pidFile, `${process.pid}\n`, { mode: 0o644 });
  let released = false;
  return {
    path,
    ...(rootPath !== undefined ? { rootPath } : {}),
    holder,
    async release() {
      if (released) return;
      released = true;
      if (rootPath !== undefined) await releaseLock({ path: rootPath, holder, pidFile: undefined });
      await releaseLock({ path, holder, pidFile: options.pidFile });
    },
  };
}

/** Creates `dir` when missing and links a lock file naming `holder` into place as `path`. */
async function takeLockFile(options: {
  dir: string;
  path: string;
  holder: LockHolder;
  subject: string;
  hint: string;
  onStale: AcquireDaemonLockOptions['onStale'];
}): Promise<void> {
  const { dir, path } = options;
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o750 });
  } catch (error) {
    throw new DaemonError(
      'DAEMON_IO',
      `${dir}: cannot create the ${options.subject}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    await fs.writeFile(temp, `${JSON.stringify(options.holder)}\n`, { mode: 0o644, flag: 'wx' });
  } catch (error) {
    throw new DaemonError(
      'DAEMON_IO',
      `${path}: cannot take the lock: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  try {
    await linkLock({
      temp,
      path,
      subject: options.subject,
      hint: options.hint,
      onStale: options.onStale,
    });
  } finally {
    await fs.rm(temp, { force: true });
  }
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
  /** What the lock guards, named in the DAEMON_LOCKED message (`state directory /x`). */
  subject: string;
  /** What to do about it, for the message. */
  hint: string;
  onStale: AcquireDaemonLockOptions['onStale'];
}): Promise<void> {
  const { temp, path, subject } = options;
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
        `another pit daemon (pid ${other.pid}${other.hostname ? ` on ${other.hostname}` : ''}, running since ${other.started_at}) holds the ${subject} (lock ${path}); ${options.hint}`,
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
