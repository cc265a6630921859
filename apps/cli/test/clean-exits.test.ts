import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { provisionCell } from '@pit/cell-spec';
import { readAgentStates } from '@pit/daemon';
import {
  cleanup,
  isGone,
  reapLater,
  spawnTsx,
  tempDir,
  testAgentPath,
  waitFor,
  within,
} from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';

// `pit sweep --once` and `pit daemon` exit promptly whatever agents they started: the agents are
// detached, nothing of theirs keeps the CLI alive, and the next run adopts them.

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));

/** Well below the agents' lifetime (they run until killed), well above a loaded machine's start of the CLI. */
const EXIT_BOUND_MS = 20_000;

afterEach(cleanup);

/** A cell with agent forge (the heartbeating test agent) and a pit.toml supervising it. */
async function setup(extra: string[] = []) {
  const base = await tempDir('pit-cli-exits-');
  const { dir, manifest } = await provisionCell(join(base, 'missions'), {
    mission: 'forge',
    created_by: 'test',
    agents: [{ name: 'forge', role: 'lead' }],
  });
  const lines = [
    '[daemon]',
    'state_dir = "state"',
    ...extra,
    '[daemon.http]',
    'enabled = false',
    '[bus]',
    'enabled = false',
    '[cells]',
    'root = "missions"',
    'poll_interval_s = 0.2',
    'heartbeat_stale_s = 15',
    '[agents.forge]',
    `argv = ["${process.execPath}", "${testAgentPath}"]`,
    'startup_grace_s = 10',
    'stop_grace_s = 2',
  ];
  const config = join(base, 'pit.toml');
  await fs.writeFile(config, lines.join('\n'), { mode: 0o600 });
  const recordedPid = async () =>
    (await readAgentStates(join(base, 'state'), dir)).agents.forge?.pid;
  return { config, key: `${manifest.uuid}/forge`, recordedPid };
}

/** The real `pit` in its own process group (killed by cleanup if a test fails). */
function startPit(args: string[]) {
  return spawnTsx(bin, args, { env: process.env });
}

const exitOf = (child: ReturnType<typeof startPit>) =>
  new Promise<number | null>((resolve) =>
    child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code)),
  );

const alive = async (pid: number) => !(await isGone(pid));

describe('pit sweep --once', () => {
  it('exits as soon as it has reported, leaving the agent it started running; the next sweep adopts it', async () => {
    const { config, key, recordedPid } = await setup();
    const first = startPit(['--config', config, 'sweep', '--once']);
    // 0 or 1 (the just-started agent may not be judged healthy yet): what matters is that it exits.
    expect([0, 1]).toContain(await within(exitOf(first), EXIT_BOUND_MS, 'the first sweep to exit'));
    expect(first.output()).toContain(`${key.padEnd(48)} `);
    const pid = await recordedPid();
    expect(pid).toBeDefined();
    reapLater(pid);
    expect(await alive(pid!)).toBe(true);

    const second = startPit(['--config', config, 'sweep', '--once']);
    expect([0, 1]).toContain(
      await within(exitOf(second), EXIT_BOUND_MS, 'the second sweep to exit'),
    );
    expect(second.output()).toMatch(
      new RegExp(`"msg":"re-adopted a running agent","agent":"${key}","pid":${pid}\\b`),
    );
    expect(second.output()).not.toContain('agent process started');
    expect(await recordedPid()).toBe(pid);
    expect(await alive(pid!)).toBe(true);
  }, 60_000);
});

describe('pit daemon', () => {
  it('exits on SIGTERM with the agent it started left running and named; the next daemon adopts it and exits on SIGINT', async () => {
    const { config, key, recordedPid } = await setup();
    const first = startPit(['--config', config, 'daemon']);
    const pid = await waitFor(recordedPid, EXIT_BOUND_MS, 'the daemon to start forge');
    reapLater(pid);
    await waitFor(
      () => first.output().includes(': supervising with '),
      EXIT_BOUND_MS,
      'the daemon to run',
    );
    first.kill('SIGTERM');
    expect(await within(exitOf(first), EXIT_BOUND_MS, 'the daemon to exit on SIGTERM')).toBe(0);
    expect(first.output()).toContain(`pit daemon: left 1 agent(s) running: ${key} (pid ${pid})`);
    expect(first.output()).toMatch(
      new RegExp(`"msg":"daemon stopped","left_running":\\["${key} \\(pid ${pid}\\)"\\]`),
    );
    expect(await alive(pid)).toBe(true);

    const second = startPit(['--config', config, 'daemon']);
    await waitFor(
      () =>
        second
          .output()
          .includes(`"msg":"re-adopted a running agent","agent":"${key}","pid":${pid}`),
      EXIT_BOUND_MS,
      'the next daemon to adopt forge',
    );
    // Its signal handlers are installed once it says it is supervising.
    await waitFor(
      () => second.output().includes(': supervising with '),
      EXIT_BOUND_MS,
      'the daemon to run',
    );
    second.kill('SIGINT');
    expect(await within(exitOf(second), EXIT_BOUND_MS, 'the daemon to exit on SIGINT')).toBe(0);
    expect(second.output()).toContain(`pit daemon: left 1 agent(s) running: ${key} (pid ${pid})`);
    expect(second.output()).not.toContain('agent process started');
    expect(await alive(pid)).toBe(true);
  }, 90_000);

  it('with stop_agents_on_exit, stops its agents on SIGTERM, names them and exits', async () => {
    const { config, key, recordedPid } = await setup(['stop_agents_on_exit = true']);
    const daemon = startPit(['--config', config, 'daemon']);
    const pid = await waitFor(recordedPid, EXIT_BOUND_MS, 'the daemon to start forge');
    reapLater(pid);
    await waitFor(
      () => daemon.output().includes(': supervising with '),
      EXIT_BOUND_MS,
      'the daemon to run',
    );
    daemon.kill('SIGTERM');
    expect(await within(exitOf(daemon), EXIT_BOUND_MS, 'the daemon to exit on SIGTERM')).toBe(0);
    expect(daemon.output()).toContain(`pit daemon: stopped 1 agent(s): ${key} (pid ${pid})`);
    expect(daemon.output()).toContain('pit daemon: no agent left running');
    await waitFor(() => isGone(pid), 5_000, 'forge to be gone');
    expect(await recordedPid()).toBeUndefined();
  }, 90_000);
});
