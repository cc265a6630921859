/**
 * `[cluster]` refusals a demanding operator meets before any agent runs: a one-shot sweep of a
 * cluster config, a token variable that is not set, NATS that cannot be reached. Each is a
 * DAEMON_CLUSTER error that says what to do, and nothing is started.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup, freePort, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { runDaemon, sweepOnce } from '../src/daemon.js';

afterEach(cleanup);

const quiet = { stream: { write: () => true }, format: 'json' as const };

async function clusterConfig(extra: string): Promise<string> {
  const base = await tempDir('pit-cluster-config-');
  await fs.mkdir(join(base, 'missions'));
  const path = join(base, 'pit.toml');
  const text = [
    '[daemon]',
    'state_dir = "state"',
    '[daemon.http]',
    'enabled = false',
    '[cells]',
    'root = "missions"',
    '[bus]',
    'enabled = false',
    '[cluster]',
    extra,
  ].join('\n');
  await fs.writeFile(path, text, { mode: 0o600 });
  return path;
}

describe('[cluster] refusals', () => {
  it('pit sweep --once refuses a cluster config: a one-shot sweep holds no lease', async () => {
    const configPath = await clusterConfig(
      'servers = ["nats://127.0.0.1:4222"]\nhost_id = "host-1"',
    );
    await expect(sweepOnce({ configPath, log: quiet })).rejects.toMatchObject({
      code: 'DAEMON_CLUSTER',
      message: expect.stringMatching(/\[cluster\] is set: .*run `pit daemon` on each host/),
    });
  });

  it('the daemon refuses to start when token_env names an unset variable, naming it', async () => {
    const configPath = await clusterConfig(
      'servers = ["nats://127.0.0.1:4222"]\nhost_id = "host-1"\ntoken_env = "PIT_TEST_NATS_TOKEN"',
    );
    await expect(
      runDaemon({ configPath, env: { PATH: process.env.PATH }, log: quiet, handleSignals: false }),
    ).rejects.toMatchObject({
      code: 'DAEMON_CLUSTER',
      message: expect.stringContaining('PIT_TEST_NATS_TOKEN, which is not set'),
    });
  });

  it('the daemon refuses to start when NATS cannot be reached, naming the servers', async () => {
    const port = await freePort();
    const configPath = await clusterConfig(
      `servers = ["nats://127.0.0.1:${port}"]\nhost_id = "host-1"`,
    );
    await expect(
      runDaemon({ configPath, env: { PATH: process.env.PATH }, log: quiet, handleSignals: false }),
    ).rejects.toMatchObject({
      code: 'DAEMON_CLUSTER',
      message: expect.stringContaining(`cannot join through nats://127.0.0.1:${port}`),
    });
  }, 20_000);
});
