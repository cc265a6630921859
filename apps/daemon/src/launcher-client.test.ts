import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, reapLater, tempDir, waitFor, within } from '@pit/test-kit';
import { agentEnv, isGoneOrZombie, makeCell } from '../test/helpers.js';
import type { SpawnRequest } from './agent-spawn.js';
import { createExecutor, type Executor } from './executor.js';
import { createLauncher, LAUNCHER_PROGRAM, type AgentSpawner } from './launcher-client.js';
import type { Logger } from './logger.js';
import { readProcessStat } from './proc.js';

const DIES_MID_START = fileURLToPath(
  new URL('../test/fixtures/launcher-dies-mid-start.mjs', import.meta.url),
);

let executor: Executor | undefined;
let spawner: AgentSpawner | undefined;

afterEach(async () => {
  for (const agent of executor?.running() ?? []) reapLater(agent.pid);
  await executor?.close();
  await spawner?.close();
  executor = undefined;
  spawner = undefined;
  await cleanup();
});

/** A logger that keeps its lines. */
const recordingLogger = () => {
  const lines: string[] = [];
  const record = (message: string) => void lines.push(message);
  const logger: Logger = { debug: record, info: record, warn: record, error: record };
  return { logger, lines };
};

/** An executor whose launcher is ready. */
const readyExecutor = async (options: Parameters<typeof createExecutor>[0] = {}) => {
  executor = createExecutor({ env: process.env, adoptPollMs: 50, launcher: true, ...options });
  const launcherPid = await waitFor(() => executor!.launcherPid(), 15_000, 'the agent launcher');
  return { executor, launcherPid };
};

/** Starts `agent` in `cell` as a 30 s sleep (reaped after the test). */
const sleeper = async (executor: Executor, cell: { uuid: string; dir: string }, agent: string) => {
  const started = await executor.start({ agent, argv: ['sleep', '30'], env: agentEnv(), cell });
  reapLater(started.pid);
  return started;
};

describe('the agent launcher', () => {
  it('forks agents itself: the launcher is their parent, each leads its own session, marked with PIT_INSTANCE', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { executor, launcherPid } = await readyExecutor({ instance: 'feedc0de' });
    const agent = await sleeper(executor, cell, 'forge');
    expect(agent.via).toBe('launcher');
    const stat = await readProcessStat(agent.pid);
    expect(stat).toMatchObject({ ppid: launcherPid, pgrp: agent.pid, sid: agent.pid });
    expect(stat?.startTime).toBe(agent.startTime);
    const environ = (await fs.readFile(`/proc/${agent.pid}/environ`, 'utf8')).split('\0');
    expect(environ).toContain('PIT_INSTANCE=feedc0de');
    expect(environ).toContain(`LAZARUS_CELL_UUID=${cell.uuid}`);
  });

  it('reports a SIGKILLed agent at once with its real signal', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { executor } = await readyExecutor();
    const agent = await sleeper(executor, cell, 'forge');
    process.kill(agent.pid, 'SIGKILL');
    const exit = await within(agent.exited, 5000, 'exit');
    expect(exit).toMatchObject({ code: null, signal: 'SIGKILL', how: 'waited' });
    // The launcher reaped it: no zombie is left behind.
    await waitFor(async () => (await readProcessStat(agent.pid)) === undefined, 5000, 'reaped');
  });

  it('when it dies, its agents keep running and are watched through /proc, and a new launcher takes over', async () => {
    const cell = await makeCell([{ name: 'forge' }, { name: 'scout' }]);
    const { logger, lines } = recordingLogger();
    const { executor, launcherPid } = await readyExecutor({ logger });
    const forge = await sleeper(executor, cell, 'forge');
    process.kill(launcherPid, 'SIGKILL');
    const next = await waitFor(
      () => (executor.launcherPid() ?? launcherPid) !== launcherPid && executor.launcherPid(),
      15_000,
      'a new launcher',
    );
    expect(lines).toContain('agent launcher died; starting a new one');
    expect((await readProcessStat(forge.pid))?.state).not.toBe('Z');
    expect(executor.running()).toEqual([forge]);
    const scout = await sleeper(executor, cell, 'scout');
    expect((await readProcessStat(scout.pid))?.ppid).toBe(next);
    // The orphan's exit is polled: a zombie's status when nobody reaps it, else 'vanished'.
    process.kill(forge.pid, 'SIGKILL');
    const exit = await within(forge.exited, 5000, 'orphan exit');
    expect(['zombie', 'vanished']).toContain(exit.how);
    if (exit.how === 'zombie') expect(exit.signal).toBe('SIGKILL');
    expect(executor.running()).toEqual([scout]);
  });

  it('an agent that SIGSTOPs its launcher: the launcher is killed and replaced, the start asked meanwhile is made, and a sibling’s exit is still reported', async () => {
    const cell = await makeCell([{ name: 'forge' }, { name: 'scout' }, { name: 'stopper' }]);
    const { logger, lines } = recordingLogger();
    const { executor, launcherPid } = await readyExecutor({ logger });
    const forge = await sleeper(executor, cell, 'forge');
    // An agent at level 1 runs as the daemon's user: it can stop its parent, the launcher.
    const stopper = await executor.start({
      agent: 'stopper',
      argv: ['/bin/sh', '-c', 'kill -STOP $PPID; exec sleep 30'],
      env: agentEnv(),
      cell,
    });
    reapLater(stopper.pid);
    // Stopped (state T), or already found stopped and killed by the executor: a test that polls
    // for T alone missed it when the executor was quicker (it failed so under load).
    const replacing = 'agent launcher is stopped; killing it and starting a new one';
    await waitFor(
      async () =>
        (await readProcessStat(launcherPid))?.state === 'T' ||
        lines.includes(replacing) ||
        undefined,
      5000,
      'the launcher stopped',
    );
    // A start asked of the stopped launcher is still made (by the next launcher, or directly).
    const scout = await within(
      executor.start({ agent: 'scout', argv: ['sleep', '30'], env: agentEnv(), cell }),
      10_000,
      'the start asked of a stopped launcher',
    );
    reapLater(scout.pid);
    expect((await readProcessStat(scout.pid))?.state).toMatch(/^[RSD]$/);
    expect(lines).toContain(replacing);
    await waitFor(async () => (await isGoneOrZombie(launcherPid)) || undefined, 5000, 'killed');
    const next = await waitFor(
      () => (executor.launcherPid() ?? launcherPid) !== launcherPid && executor.launcherPid(),
      15_000,
      'a new launcher',
    );
    expect(next).not.toBe(launcherPid);
    // The stopped launcher could not have reaped forge: its exit is found through /proc.
    process.kill(forge.pid, 'SIGKILL');
    const exit = await within(
      forge.exited,
      5000,
      'the exit of an agent the stopped launcher forked',
    );
    expect(exit.signal ?? 'vanished').toMatch(/SIGKILL|vanished/);
  });

  it('finds the agent a launcher forked but died before reporting, instead of starting it twice', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const dir = await tempDir();
    const instance = `test${process.pid}${Date.now()}`;
    spawner = createLauncher({ instance, pollMs: 50, program: DIES_MID_START });
    await waitFor(() => spawner!.launcherPid(), 15_000, 'the launcher');
    const request: SpawnRequest = {
      agent: 'forge',
      cell: cell.uuid,
      command: ['sleep', '30'],
      cwd: dir,
      env: {
        ...agentEnv(),
        PIT_INSTANCE: instance,
        LAZARUS_AGENT: 'forge',
        LAZARUS_CELL_UUID: cell.uuid,
      },
      logPath: join(dir, 'forge.log'),
      header: '--- test\n',
    };
    const spawned = await within(spawner.spawn(request), 15_000, 'the start');
    reapLater(spawned.pid);
    expect(spawned).toMatchObject({ via: 'launcher' });
    expect(spawned.polled()).toBe(true);
    const environ = await fs.readFile(`/proc/${spawned.pid}/environ`, 'utf8');
    expect(environ).toContain(`PIT_INSTANCE=${instance}\0`);
    // The log was never opened by this launcher: the one process found is the only one started.
    await expect(fs.stat(request.logPath)).rejects.toThrow(/ENOENT/);
    process.kill(spawned.pid, 'SIGKILL');
    expect(['zombie', 'vanished']).toContain((await within(spawned.exited, 5000)).how);
  });

  it('spawns agents from the daemon, and says so, when the launcher cannot start', async () => {
    const dir = await tempDir();
    const { logger, lines } = recordingLogger();
    spawner = createLauncher({
      instance: 'x',
      pollMs: 50,
      logger,
      program: join(dir, 'no-such-launcher.mjs'),
    });
    await waitFor(() => lines.includes('agent launcher died; starting a new one'), 15_000, 'death');
    const spawned = await spawner.spawn({
      agent: 'forge',
      cell: undefined,
      command: ['sh', '-c', 'exit 7'],
      cwd: dir,
      env: agentEnv(),
      logPath: join(dir, 'forge.log'),
      header: '--- test\n',
    });
    expect(spawned.via).toBe('direct');
    expect(await within(spawned.exited, 5000)).toMatchObject({ code: 7, how: 'waited' });
    expect(lines).toContain('agent launcher not ready; spawning agents from the daemon');
  });

  it('a start asked for while the launcher is still starting waits for it: the launcher forks it, the daemon does not', async () => {
    const dir = await tempDir();
    const { logger, lines } = recordingLogger();
    spawner = createLauncher({ instance: 'early', pollMs: 50, logger });
    // Asked at once, as the daemon's first starts are, before the launcher has said it is ready.
    expect(spawner.launcherPid()).toBeUndefined();
    const spawned = await spawner.spawn({
      agent: 'forge',
      cell: undefined,
      command: ['sleep', '30'],
      cwd: dir,
      env: agentEnv(),
      logPath: join(dir, 'forge.log'),
      header: '--- test\n',
    });
    reapLater(spawned.pid);
    expect(spawned.via).toBe('launcher');
    expect((await readProcessStat(spawned.pid))?.ppid).toBe(spawner.launcherPid());
    expect(lines).not.toContain('agent launcher not ready; spawning agents from the daemon');
    process.kill(spawned.pid, 'SIGKILL');
    await within(spawned.exited, 5000, 'the agent to exit');
  });

  it('close() ends and reaps the launcher and leaves agents running', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { executor, launcherPid } = await readyExecutor();
    const agent = await sleeper(executor, cell, 'forge');
    await within(executor.close(), 10_000, 'close');
    expect(await readProcessStat(launcherPid)).toBeUndefined();
    expect((await readProcessStat(agent.pid))?.state).not.toBe('Z');
  });
});

describe('launcher-program.mjs', () => {
  it('exits when its input ends (the daemon died) and leaves its agents running', async () => {
    const dir = await tempDir();
    const launcher = spawn(process.execPath, [LAUNCHER_PROGRAM], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    reapLater(launcher.pid);
    const lines = createInterface({ input: launcher.stdout })[Symbol.asyncIterator]();
    const next = async () => JSON.parse(String((await within(lines.next(), 15_000)).value));
    expect(await next()).toEqual({ type: 'ready' });
    const request = {
      type: 'spawn',
      id: 1,
      command: ['sleep', '30'],
      cwd: dir,
      env: agentEnv(),
      logPath: join(dir, 'logs', 'forge.log'),
      header: '--- header\n',
    };
    launcher.stdin.write(`${JSON.stringify(request)}\n`);
    const answer = await next();
    expect(answer).toMatchObject({ type: 'spawned', id: 1 });
    reapLater(answer.pid);
    expect(await fs.readFile(request.logPath, 'utf8')).toBe('--- header\n');
    const exited = new Promise((resolve) => launcher.once('exit', (code) => resolve(code)));
    launcher.stdin.end();
    expect(await within(exited, 10_000, 'launcher exit')).toBe(0);
    expect(await isGoneOrZombie(answer.pid)).toBe(false);
  });
});
