// Test helpers: temp dirs, child processes running package code (reaped after each test), fixtures.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The package directory (children run with it as working directory). */
export const PACKAGE_DIR = fileURLToPath(new URL('../../', import.meta.url));
/** Child scripts live here. */
export const CHILDREN_DIR = fileURLToPath(new URL('./children/', import.meta.url));

/** Reads a fixture as parsed JSON (a fresh copy each time, so tests may mutate it). */
export async function fixture<T = Record<string, unknown>>(name: string): Promise<T> {
  return JSON.parse(
    await readFile(fileURLToPath(new URL(`./${name}`, import.meta.url)), 'utf8'),
  ) as T;
}

/** Reads a fixture as text. */
export async function fixtureText(name: string): Promise<string> {
  return readFile(fileURLToPath(new URL(`./${name}`, import.meta.url)), 'utf8');
}

/** Temp directories created by {@link makeTempDir}, removed by {@link removeTempDirs}. */
const tempDirs: string[] = [];

export async function makeTempDir(prefix = 'cell-spec-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  for (const dir of tempDirs.splice(0)) await rm(dir, { recursive: true, force: true });
}

/** A child process running a TypeScript script from `children/`, with its stdout split into lines. */
export interface Child {
  process: ChildProcessWithoutNullStreams;
  /** Every stdout line so far. */
  lines: string[];
  /** Everything written to stderr so far. */
  stderr: () => string;
  /** Resolves with the exit code or signal once the process has exited and its stdout is drained. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits for a stdout line matching `predicate` (already seen or future). @throws after `timeoutMs` or if the child exits first. */
  waitForLine(predicate: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Writes one line to the child's stdin. */
  send(line: string): void;
}

const live = new Set<ChildProcessWithoutNullStreams>();

/**
 * Spawns `node --conditions=@pit/source --import tsx children/<script> ...args` in its own
 * process group (so the whole group can be signalled and reaped). An absolute `script` is
 * run as is.
 */
export function spawnChild(script: string, args: readonly string[] = []): Child {
  const path = isAbsolute(script) ? script : join(CHILDREN_DIR, script);
  return track(
    script,
    spawn(process.execPath, ['--conditions=@pit/source', '--import', 'tsx', path, ...args], {
      cwd: PACKAGE_DIR,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
}

/**
 * Bundles `children/<script>` with the package's source (`@pit/source` condition) into one
 * ESM file, using the esbuild that tsx itself runs on. A bundled child starts in ~0.1 s of
 * CPU instead of ~0.5 s under the tsx loader: the crash tests restart a writer hundreds of
 * times, and the same source runs either way.
 */
export async function bundleChild(script: string): Promise<string> {
  const require = createRequire(import.meta.resolve('tsx'));
  // Only what we call; esbuild is tsx's dependency, not ours.
  const esbuild = require('esbuild') as {
    build(options: Record<string, unknown>): Promise<unknown>;
  };
  const outfile = join(await makeTempDir('cell-spec-bundle-'), script.replace(/\.ts$/, '.mjs'));
  await esbuild.build({
    entryPoints: [join(CHILDREN_DIR, script)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['@pit/source'],
    outfile,
    logLevel: 'silent',
  });
  return outfile;
}

/** Spawns a bundle made by {@link bundleChild} with plain `node`, in its own process group. */
export function spawnBundled(bundle: string, args: readonly string[] = []): Child {
  return track(
    bundle,
    spawn(process.execPath, [bundle, ...args], {
      cwd: PACKAGE_DIR,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
}

function track(script: string, proc: ChildProcessWithoutNullStreams): Child {
  live.add(proc);
  const lines: string[] = [];
  let stderr = '';
  const waiters = new Set<() => void>();
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  proc.stdin.on('error', () => undefined); // the child may die before reading
  const reader = createInterface({ input: proc.stdout });
  reader.on('line', (line) => {
    lines.push(line);
    for (const wake of waiters) wake();
  });
  const closed = new Promise<void>((resolve) => reader.once('close', resolve));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => {
      live.delete(proc);
      void closed.then(() => {
        for (const wake of waiters) wake();
        resolve({ code, signal });
      });
    });
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    process: proc,
    lines,
    stderr: () => stderr,
    exited,
    send(line) {
      proc.stdin.write(`${line}\n`);
    },
    waitForLine(predicate, timeoutMs = 20_000) {
      return new Promise<string>((resolve, reject) => {
        const check = () => {
          const found = lines.find(predicate);
          if (found !== undefined) return finish(() => resolve(found));
          if (done)
            return finish(() =>
              reject(
                new Error(`child ${script} exited before the expected line; stderr:\n${stderr}`),
              ),
            );
        };
        const timer = setTimeout(
          () =>
            finish(() =>
              reject(
                new Error(
                  `timed out after ${timeoutMs} ms waiting for a line from ${script}; stderr:\n${stderr}`,
                ),
              ),
            ),
          timeoutMs,
        );
        const finish = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Sends `signal` to the child's whole process group (never to a pid ≤ 1). */
export function signalGroup(child: Child, signal: NodeJS.Signals): void {
  const pid = child.process.pid;
  if (pid === undefined || pid <= 1) return;
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** SIGKILLs every child still alive and waits for each to exit. Call in afterEach. */
export async function reapChildren(): Promise<void> {
  const waiting = [...live].map(
    (proc) =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        if (proc.pid !== undefined && proc.pid > 1) {
          try {
            process.kill(-proc.pid, 'SIGKILL');
          } catch {
            resolve();
          }
        }
      }),
  );
  await Promise.all(waiting);
  live.clear();
}

/** A small seeded PRNG (mulberry32): the same seed gives the same kill schedule. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
