import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanup, spawnTsx, tempDir, waitFor, within } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';

// What `pit daemon` loads when nothing asks for more: the NATS client only with `[cluster]`, the
// YAML parser only for `pit config import`, the MCP SDK only at the first /mcp request. Each is
// several MB of resident memory in every daemon that does not use it.

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const preload = fileURLToPath(new URL('./fixtures/record-modules.mjs', import.meta.url));

afterEach(cleanup);

describe('pit daemon without [cluster]', () => {
  it('runs without loading the NATS client, the YAML parser or the MCP SDK', async () => {
    const base = await tempDir('pit-footprint-');
    const modules = join(base, 'modules.txt');
    const config = join(base, 'pit.toml');
    await fs.writeFile(
      config,
      [
        '[daemon]',
        'state_dir = "state"',
        '[daemon.http]',
        'listen = "127.0.0.1:0"',
        '[bus]',
        'enabled = false',
        '[cells]',
        'root = "missions"',
      ].join('\n'),
      { mode: 0o600 },
    );
    const daemon = spawnTsx(bin, ['--config', config, 'daemon'], {
      env: {
        ...process.env,
        NODE_OPTIONS: [process.env.NODE_OPTIONS, `--import ${preload}`].filter(Boolean).join(' '),
        PIT_TEST_MODULES_FILE: modules,
      },
    });
    await waitFor(() => daemon.output().includes('dashboard: '), 30_000, 'the daemon to serve');
    daemon.kill('SIGTERM');
    await within(
      new Promise((resolve) => daemon.once('exit', resolve)),
      20_000,
      'the daemon to exit',
    );
    const loaded = (await fs.readFile(modules, 'utf8')).split('\n');
    // The recorder works: the daemon's own code and zod are in the list.
    expect(loaded.some((url) => url.includes('/zod/'))).toBe(true);
    expect(loaded.some((url) => url.includes('/daemon/src/supervisor'))).toBe(true);
    for (const unwanted of ['/@nats-io/', '/yaml/', '/@modelcontextprotocol/'])
      expect(loaded.filter((url) => url.includes(unwanted))).toEqual([]);
  }, 60_000);
});
