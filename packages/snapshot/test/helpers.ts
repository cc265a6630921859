import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The package directory (children are spawned from here so `tsx` resolves). */
export const PACKAGE_DIR = join(import.meta.dirname, '..');

/** A fresh temporary directory. */
export async function makeTempDir(prefix = 'pit-snapshot-'): Promise<string> {
  return fs.mkdtemp(join(tmpdir(), prefix));
}

/** Mounts a size-limited tmpfs at a new directory (root only); returns the directory and its unmount. */
export async function mountTmpfs(
  sizeBytes: number,
): Promise<{ dir: string; unmount: () => Promise<void> }> {
  const dir = await makeTempDir('pit-snapshot-tmpfs-');
  await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir]);
  return {
    dir,
    unmount: async () => {
      await run('umount', [dir]);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Everything under `dir`, by relative path: kind, mode and content (hex) or link target. */
export type Tree = Record<string, string>;

/** A comparable description of a directory tree (paths, kinds, modes, bytes, link targets). */
export async function readTree(dir: string): Promise<Tree> {
  const out: Tree = {};
  const walk = async (current: string): Promise<void> => {
    const names = (await fs.readdir(current)).sort();
    for (const name of names) {
      const path = join(current, name);
      const stat = await fs.lstat(path);
      const key = relative(dir, path);
      const mode = (stat.mode & 0o7777).toString(8);
      if (stat.isDirectory()) {
        out[key] = `dir ${mode}`;
        await walk(path);
      } else if (stat.isSymbolicLink()) out[key] = `symlink -> ${await fs.readlink(path)}`;
      else if (stat.isFile())
        out[key] = `file ${mode} ${(await fs.readFile(path)).toString('hex')}`;
      else out[key] = 'other';
    }
  };
  await walk(dir);
  return out;
}

/** A child running a TypeScript script of this package, in its own process group. */
export interface Child {
  process: ChildProcess;
  /** Resolves with each stdout line matching `pattern`, within `timeoutMs`. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs the whole process group (no-op once exited). */
  kill(): void;
  output(): string;
}

/** Spawns `process.execPath --conditions=@pit/source --import tsx <script> ...args` detached. */
export function spawnScript(script: string, args: string[]): Child {
  const child = spawn(
    process.execPath,
    ['--conditions=@pit/source', '--import', 'tsx', script, ...args],
    {
      cwd: PACKAGE_DIR,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const lines: string[] = [];
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    stdout += chunk;
    const parts = stdout.split('\n');
    stdout = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.pattern.test(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  return {
    process: child,
    exited,
    waitForLine(pattern, timeoutMs) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(`no line matching ${pattern} within ${timeoutMs} ms; stderr: ${stderr}`),
            ),
          timeoutMs,
        );
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        waiters.push(waiter);
        void exited.then(() => {
          if (waiters.includes(waiter)) {
            clearTimeout(timer);
            reject(new Error(`child exited before printing ${pattern}; stderr: ${stderr}`));
          }
        });
      });
    },
    kill() {
      if (done || child.pid === undefined || child.pid <= 1) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    },
    output: () => `${lines.join('\n')}\n${stderr}`,
  };
}
