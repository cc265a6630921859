import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { spawnTsx } from '../test/spawn-tsx.js';

const CHILD = fileURLToPath(new URL('../test/fixtures/loaded-libraries.ts', import.meta.url));

/** Starts channels and notifier with `toml` added to the default config, in a fresh process; returns the libraries it loaded. */
async function loadedLibraries(toml: string): Promise<string[]> {
  const child = spawnTsx(CHILD, [toml]);
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code, child.output()).toBe(0);
  const report = JSON.parse(child.output().trim().split('\n').at(-1) ?? '{}') as { loaded: string[]; resolvedCount: number };
  // The hooks saw the imports at all: an empty list would prove nothing.
  expect(report.resolvedCount).toBeGreaterThan(10);
  return report.loaded;
}

describe('startChannels and the notifier', () => {
  it('load neither grammy, nostr-tools nor @octokit/rest when no channel and no tracker is configured', async () => {
    expect(await loadedLibraries('')).toEqual([]);
  });

  it('leave @octokit/rest unloaded with [issues] configured until a death is reported', async () => {
    expect(await loadedLibraries('[issues]\nowner = "ops"\nrepo = "fleet"\n')).toEqual([]);
  });

  it('load grammy once [telegram] is configured and its channel starts (here: refused by a local Bot API)', async () => {
    expect(await loadedLibraries('[telegram]\nchat_id = -1\napi_root = "API_ROOT"\n')).toEqual(['grammy']);
  });
});
