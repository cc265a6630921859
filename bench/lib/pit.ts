/**
 * Runs the real `pit daemon` as an operator does (`pit --config FILE daemon`: the built CLI when
 * it is built and fresh, else the CLI from source under tsx), in its own process group, and waits
 * until it supervises.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exited, killGroup, reapLater, stopChild } from './proc.js';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The `pit` CLI's entry point (TypeScript source). */
export const PIT_BIN = fileURLToPath(new URL('../../apps/cli/src/bin.ts', import.meta.url));
/** tsx's loader, resolved from the root (so the daemon may run with any working directory). */
export const TSX_LOADER = import.meta.resolve('tsx');

/** The built `pit` (apps/cli/bin/pit.js → dist), as an installed `pit` runs. */
export const PIT_BUILT_BIN = fileURLToPath(new URL('../../apps/cli/bin/pit.js', import.meta.url));

/** The modification times (ms) of the files under `dir` whose names pass `keep`. */
function mtimes(dir: string, keep: (name: string) => boolean = () => true): number[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return mtimes(path, keep);
    return entry.isFile() && keep(entry.name) ? [statSync(path).mtimeMs] : [];
  });
}

/**
 * How `pit` is run: `built` (every package's dist, no loader, as an installed `pit`) when
 * `pnpm build` output exists for every app and package and is newer than its sources (CI builds
 * before it benchmarks), else `source` (TypeScript under tsx, whose loader adds memory and
 * start-up time). PIT_BENCH_DAEMON=source|built forces one.
 */
export const PIT_MODE: 'built' | 'source' = (() => {
  const forced = process.env.PIT_BENCH_DAEMON;
  if (forced === 'source' || forced === 'built') return forced;
  for (const group of ['apps', 'packages']) {
    for (const name of readdirSync(join(ROOT, group))) {
      const src = join(ROOT, group, name, 'src');
      const dist = join(ROOT, group, name, 'dist');
      if (!existsSync(src)) continue;
      // A package that is never built (test-kit: tests only) is not part of an installed `pit`.
      const manifest = JSON.parse(
        readFileSync(join(ROOT, group, name, 'package.json'), 'utf8'),
      ) as {
        scripts?: Record<string, string>;
      };
      if (!manifest.scripts?.build) continue;
      if (!existsSync(dist)) return 'source';
      const built = mtimes(dist, (file) => file.endsWith('.js'));
      if (built.length === 0 || Math.max(...mtimes(src)) > Math.min(...built)) return 'source';
    }
  }
  return 'built';
})();

/**
 * The environment deploy/pit.service sets for the daemon (its `Environment=` lines: V8's young
 * generation size in `NODE_OPTIONS`, glibc's malloc arenas): every benchmark runs the daemon with
 * it, as the unit does (`NODE_OPTIONS` added to any the caller has).
 */
export const DEPLOY_ENV: Record<string, string> = (() => {
  const unit = readFileSync(join(ROOT, 'deploy', 'pit.service'), 'utf8');
  return Object.fromEntries(
    [...unit.matchAll(/^Environment=([A-Z_][A-Z0-9_]*)=(.*)$/gm)].map((match) => [
      match[1]!,
      match[2]!.trim(),
    ]),
  );
})();

const DEPLOY_ENV_NOTE = Object.entries(DEPLOY_ENV)
  .map(([name, value]) => `${name}=${value}`)
  .join(' ');

/** What PIT_MODE means, for the benchmarks' notes. */
export const PIT_MODE_NOTE = `${
  PIT_MODE === 'built'
    ? 'the built `pit` (dist, plain node)'
    : '`pit` from source (TypeScript under the tsx loader, which adds memory and start-up time that a built install does not have)'
}${DEPLOY_ENV_NOTE ? `, with deploy/pit.service's environment (\`${DEPLOY_ENV_NOTE}\`)` : ''}`;

/** The argv (after `node`) that runs `pit` with `args`, from source or built (see {@link PIT_MODE}). */
export function pitArgv(args: string[], nodeOptions: string[] = []): string[] {
  if (PIT_MODE === 'built') return [...nodeOptions, PIT_BUILT_BIN, ...args];
  return ['--conditions=@pit/source', '--import', TSX_LOADER, ...nodeOptions, PIT_BIN, ...args];
}

/** `env` with deploy/pit.service's environment added (see {@link DEPLOY_ENV}). */
export function withDeployEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: nodeOptions, ...rest } = DEPLOY_ENV;
  return {
    ...env,
    ...rest,
    ...(nodeOptions
      ? { NODE_OPTIONS: [env.NODE_OPTIONS, nodeOptions].filter(Boolean).join(' ') }
      : {}),
  };
}

/** A running `pit daemon`. */
export interface PitDaemon {
  child: ChildProcess;
  pid: number;
  /** The dashboard/API base URL, when `[daemon.http]` is enabled. */
  url: string | undefined;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Writes a config file the way the daemon accepts it (not writable by group or others). */
export function writeConfig(path: string, toml: string): string {
  writeFileSync(path, toml, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

/**
 * Starts `pit --config <configPath> daemon` and resolves once it prints that it supervises
 * (its supervisor has started: discovery done, first agents started, probes scheduled) and,
 * with `http`, where its dashboard listens.
 * @throws Error when it exits or does not get ready within `readyTimeoutMs`.
 */
export async function startPitDaemon(options: {
  configPath: string;
  cwd: string;
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
  args?: string[];
  http?: boolean;
  nodeOptions?: string[];
}): Promise<PitDaemon> {
  const child = spawn(
    process.execPath,
    pitArgv(
      ['--config', options.configPath, 'daemon', ...(options.args ?? [])],
      options.nodeOptions,
    ),
    {
      cwd: options.cwd,
      env: withDeployEnv(options.env ?? process.env),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  reapLater(child.pid);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const timeoutMs = options.readyTimeoutMs ?? 120_000;
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    const check = () => {
      if (/supervising with/.test(output) && (!options.http || /dashboard: \S+\n/.test(output))) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    child.stderr!.on('data', check);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!ready) {
    killGroup(child.pid!, 'SIGKILL');
    await exited(child, 5000);
    throw new Error(
      `pit daemon did not get ready within ${timeoutMs} ms (exit ${child.exitCode ?? child.signalCode ?? 'none'}):\n${output.slice(-4000)}`,
    );
  }
  const url = /dashboard: (\S+?)\/?\n/.exec(output)?.[1];
  return {
    child,
    pid: child.pid!,
    url,
    output: () => output,
    stop: (graceMs = 15_000) => stopChild(child, graceMs),
  };
}
