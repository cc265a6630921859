import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('../test/fixtures/loaded-libraries.ts', import.meta.url));

/** Runs the child in a fresh process and returns the libraries it reports as loaded. */
async function loadedLibraries(step: 'import' | 'create' | 'use'): Promise<string[]> {
  const child = spawn(
    process.execPath,
    ['--conditions=@pit/source', '--import', 'tsx', CHILD, step],
    {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code, stderr).toBe(0);
  const report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
    loaded: string[];
    resolvedCount: number;
  };
  // The hooks saw the imports at all (@pit/notify, zod, …): an empty list would prove nothing.
  expect(report.resolvedCount).toBeGreaterThan(10);
  return report.loaded;
}

describe('lazy loading of the channel and tracker libraries', () => {
  it('loads neither grammy, nostr-tools, @octokit/rest nor ws when @pit/notify is imported', async () => {
    expect(await loadedLibraries('import')).toEqual([]);
  });

  it('loads none of them either when a Telegram channel and an issue tracker are created but not used', async () => {
    expect(await loadedLibraries('create')).toEqual([]);
  });

  it('loads each one once its channel or tracker needs it', async () => {
    expect((await loadedLibraries('use')).sort()).toEqual([
      '@octokit/rest',
      'grammy',
      'nostr-tools',
      'ws',
    ]);
  });
});
