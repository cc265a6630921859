import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { spawnTsx } from '@pit/test-kit';
import { describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('../test/fixtures/loaded-libraries.ts', import.meta.url));

/** Starts channels and notifier with `toml` added to the default config, in a fresh process; returns the libraries it loaded. */
async function loadedLibraries(toml: string): Promise<string[]> {
  const child = spawnTsx(CHILD, [toml]);
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code, child.output()).toBe(0);
  const report = JSON.parse(child.output().trim().split('\n').at(-1) ?? '{}') as {
    loaded: string[];
    resolvedCount: number;
  };
  // The hooks saw the imports at all: an empty list would prove nothing.
  expect(report.resolvedCount).toBeGreaterThan(10);
  return report.loaded;
}

describe('startChannels and the notifier', () => {
  it('load neither grammy, nostr-tools, ws nor @octokit/rest when no channel and no tracker is configured', async () => {
    expect(await loadedLibraries('')).toEqual([]);
  });

  it('leave @octokit/rest unloaded with [issues] configured until a death is reported', async () => {
    expect(await loadedLibraries('[issues]\nowner = "ops"\nrepo = "fleet"\n')).toEqual([]);
  });

  it('load grammy once [telegram] is configured and its channel starts (here: refused by a local Bot API)', async () => {
    expect(await loadedLibraries('[telegram]\nchat_id = -1\napi_root = "API_ROOT"\n')).toEqual([
      'grammy',
    ]);
  });
});

describe('startChannels with Telegram unreachable', () => {
  it('returns within its wait and keeps the channel starting in the background, so supervision is not held up', async () => {
    const { createServer } = await import('node:net');
    const { EMBEDDED_DEFAULT_CONFIG, parseConfig } = await import('./config.js');
    const { startChannels } = await import('./channels.js');
    // A port nobody listens on: every Bot API call is refused, which grammY retries forever.
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as { port: number };
    await new Promise((resolve) => probe.close(resolve));
    const parsed = parseConfig(
      `${EMBEDDED_DEFAULT_CONFIG}\n[telegram]\nchat_id = -1\napi_root = "http://127.0.0.1:${port}"\n`,
      'toml',
    );
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    const warnings: string[] = [];
    const logger = {
      debug() {},
      info() {},
      warn: (message: string) => void warnings.push(message),
      error() {},
    };
    const channels = await startChannels(
      parsed.config,
      { PIT_TELEGRAM_TOKEN: '1:unreachable' },
      logger,
      { startWaitMs: 300 },
    );
    try {
      expect(channels.approvals).toHaveLength(1);
      expect(channels.alerts).toBeDefined();
      expect(
        warnings.some((message) =>
          /Telegram channel not started after 300 ms: supervising without it/.test(message),
        ),
      ).toBe(true);
    } finally {
      await channels.stop();
    }
  });
});
