/**
 * A real `pit daemon` for end-to-end tests: a private base dir with a cell and a pit.toml, the
 * daemon started in its own process (test/fixtures/run-daemon.ts) and read through its HTTP API.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnTsx, tempDir, testAgentPath, waitFor } from '@pit/test-kit';
import type { FleetStatus } from '../src/supervisor.js';
import { makeCell } from './helpers.js';

const RUN_DAEMON = fileURLToPath(new URL('./fixtures/run-daemon.ts', import.meta.url));
/** The bearer token the daemons of these tests accept (`PIT_TEST_TOKEN`). */
export const TOKEN = 'e2e-token-0123456789abcdef-0123456789abcdef';

/** A private base dir with a cell of `agents` (the test agent) and a pit.toml (mode 0600). */
export async function setupFleet(
  agents: string[],
  options: { extra?: string; agentExtra?: string } = {},
) {
  const base = await tempDir('pit-e2e-');
  const cell = await makeCell(
    agents.map((name) => ({ name })),
    join(base, 'missions'),
  );
  const lines = [
    '[daemon]',
    'state_dir = "state"',
    'log_level = "debug"',
    '[daemon.http]',
    'listen = "127.0.0.1:0"',
    'token_env = "PIT_TEST_TOKEN"',
    '[cells]',
    'root = "missions"',
    'poll_interval_s = 0.2',
    'resurrect_after_s = 0',
    '[checkpoints]',
    'interval_s = 0',
    ...(options.extra?.includes('[bus]') ? [] : ['[bus]', 'listen = "127.0.0.1:0"']),
    '[policy.defaults]',
    'backoff = { initial = "200ms", cap = "1s", jitter = 0 }',
    options.extra ?? '',
    ...agents.flatMap((name) => [
      `[agents.${name}]`,
      `argv = ["${process.execPath}", "${testAgentPath}"]`,
      'startup_grace_s = 10',
      options.agentExtra ?? 'stop_grace_s = 2',
      `[agents.${name}.probes]`,
      'failure_threshold = 1',
    ]),
  ];
  const configPath = join(base, 'pit.toml');
  await fs.writeFile(configPath, lines.join('\n'), { mode: 0o600 });
  return { base, cell, configPath, stateDir: join(base, 'state') };
}

/** `pit daemon` in a child process, once it serves (or with `failed` when it said it could not). */
export async function startDaemon(configPath: string) {
  const child = spawnTsx(RUN_DAEMON, [configPath], {
    env: { ...process.env, PIT_TEST_TOKEN: TOKEN },
  });
  const ready = await waitFor(
    () => /^(READY|FAILED) .*$/m.exec(child.output())?.[0],
    30_000,
    'the daemon to start',
  );
  if (ready.startsWith('FAILED')) return { child, url: '', failed: ready };
  return { child, url: ready.split(' ')[1]!, failed: undefined };
}

/** The daemon's `/api/status`. */
export const getStatus = async (url: string) =>
  (await (await fetch(`${url}/api/status`)).json()) as FleetStatus;

/** Waits until `name` is healthy with a pid (other than `not`: a replacement). */
export const healthyAgent = (url: string, name: string, not?: number) =>
  waitFor(
    async () => {
      const agent = (await getStatus(url)).agents.find((each) => each.agent === name);
      return agent?.health === 'healthy' && agent.pid && agent.pid !== not ? agent : undefined;
    },
    30_000,
    `${name} healthy`,
  );

/** Resolves with the child's exit code once it has exited. */
export const exitOf = (child: ReturnType<typeof spawnTsx>) =>
  new Promise<number | null>((resolve) =>
    child.exitCode !== null || child.signalCode !== null
      ? resolve(child.exitCode)
      : child.once('exit', (code) => resolve(code)),
  );
