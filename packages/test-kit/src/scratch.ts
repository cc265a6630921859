/**
 * What a test leaves behind: temp directories and process groups. A test registers them as it
 * makes them and calls {@link cleanup} from `afterEach`; nothing survives a failed test.
 * The registry is per module instance, so per test file under vitest's forks pool.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dirs: string[] = [];
const groups = new Set<number>();

/**
 * A fresh private (mode 0700) temp directory, removed by {@link cleanup}.
 *
 * @param prefix - the directory name's prefix. @default 'pit-test-'
 */
export async function tempDir(prefix = 'pit-test-'): Promise<string> {
  const dir = await fs.mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** Registers a process group (its leader's pid) to SIGKILL in {@link killReaped}; pids ≤ 1 are ignored. */
export function reapLater(pid: number | undefined): void {
  if (pid !== undefined && pid > 1) groups.add(pid);
}

/** Whether process `pid` is gone or a zombie (dead, not yet waited for), from /proc. */
export async function isGone(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat === undefined || /\) [ZX] /.test(stat);
}

/**
 * SIGKILLs every registered process group (or, when it is no group leader, the process itself),
 * then waits, up to 10 s in all, until each is gone or a zombie, so that none writes into a
 * directory being removed.
 */
export async function killReaped(): Promise<void> {
  const killed: number[] = [];
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // already gone
      }
    }
  }
  groups.clear();
  const deadline = Date.now() + 10_000;
  for (const pid of killed)
    while (Date.now() < deadline && !(await isGone(pid)))
      await new Promise((resolve) => setTimeout(resolve, 10));
}

/** Kills every registered process group ({@link killReaped}) and removes every temp directory. Call from `afterEach`. */
export async function cleanup(): Promise<void> {
  await killReaped();
  for (const dir of dirs.splice(0))
    await fs.rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
}
