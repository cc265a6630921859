import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { reapLater } from './helpers.js';

const appDir = fileURLToPath(new URL('..', import.meta.url));

/** Runs a TypeScript file of this app in a child Node process (source conditions, tsx), in its own process group. */
export function spawnTsx(
  file: string,
  args: string[] = [],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): ChildProcess & { output: () => string } {
  const child = spawn(
    process.execPath,
    ['--conditions=@pit/source', '--import', 'tsx', file, ...args],
    {
      cwd: options.cwd ?? appDir,
      env: options.env ?? process.env,
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
