import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { provisionCell } from '@pit/cell-spec';

/** Temp directories and process groups made by a test, removed/killed by {@link cleanup}. */
const dirs: string[] = [];
const groups = new Set<number>();

/** A fresh temp directory, removed in {@link cleanup}. */
export async function tempDir(prefix = 'pit-daemon-'): Promise<string> {
  const dir = await fs.mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** Registers a process group to SIGKILL in {@link cleanup}. */
export function reapLater(pid: number | undefined): void {
  if (pid !== undefined && pid > 1) groups.add(pid);
}

/** Kills every registered process group and removes every temp directory. Call from afterEach. */
export async function cleanup(): Promise<void> {
  const killed: number[] = [];
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // already gone
    }
  }
  groups.clear();
  // Wait (bounded) until the killed leaders are gone or zombies, so none writes into a directory being removed.
  const deadline = Date.now() + 5000;
  for (const pid of killed) {
    while (Date.now() < deadline) {
      const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
      if (stat === undefined || /\) [ZX] /.test(stat)) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  for (const dir of dirs.splice(0))
    await fs.rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
}

/** A real cell with the given agents under a temp cells root. */
export async function makeCell(
  agents: Array<{ name: string; role?: string; home?: string }>,
  root?: string,
) {
  const cellsRoot = root ?? join(await tempDir('pit-cells-'), 'missions');
  const { dir, manifest } = await provisionCell(cellsRoot, {
    mission: 'test mission',
    created_by: 'test',
    agents: agents.map((agent) => ({ role: 'write', ...agent })),
  });
  return { root: cellsRoot, dir, uuid: manifest.uuid, manifest };
}

/** Writes an executable shell script and returns its path. */
export async function script(path: string, body: string): Promise<string> {
  await fs.writeFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

/** Waits for `check` to return a value (not undefined/false) within `timeoutMs`, polling every 20 ms. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false && value !== null) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Resolves with `promise`, or rejects after `timeoutMs`. */
export async function within<T>(
  promise: Promise<T>,
  timeoutMs: number,
  what = 'promise',
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>(
        (_, reject) =>
          (timer = setTimeout(
            () => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)),
            timeoutMs,
          )),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The environment given to test agents. */
export const agentEnv = (): Record<string, string> => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: '/nonexistent',
});
