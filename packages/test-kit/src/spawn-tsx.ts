/** Runs a TypeScript file in a child Node process the way the repository's tests do: from source. */
import { spawn, type ChildProcess } from 'node:child_process';
import { reapLater } from './scratch.js';

/** Options of {@link spawnTsx}. */
export interface SpawnTsxOptions {
  /** The child's environment. @default this process's environment */
  env?: NodeJS.ProcessEnv;
  /** The child's working directory. @default process.cwd() */
  cwd?: string;
  /**
   * A command that runs the child, before `node` (e.g. `['ip', 'netns', 'exec', NS]`); it must
   * exec the child in place (the returned pid is then the child's).
   */
  wrap?: string[];
}

/**
 * Starts `node --conditions=@pit/source --import tsx FILE ARGS…` in its own process group
 * (registered with {@link reapLater}, so `cleanup()` kills it), collecting stdout and stderr.
 *
 * @returns the child, with `output()`: everything it wrote so far, stdout and stderr interleaved.
 */
export function spawnTsx(
  file: string,
  args: string[] = [],
  options: SpawnTsxOptions = {},
): ChildProcess & { output: () => string } {
  const wrap = options.wrap ?? [];
  const argv = [process.execPath, '--conditions=@pit/source', '--import', 'tsx', file, ...args];
  const child = spawn(
    wrap[0] ?? argv[0]!,
    [...wrap.slice(1), ...(wrap.length > 0 ? argv : argv.slice(1))],
    {
      cwd: options.cwd ?? process.cwd(),
      env: options.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  reapLater(child.pid);
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  return Object.assign(child, { output: () => output });
}
