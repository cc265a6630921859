import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup, reapLater, tempDir, waitFor, within } from '@pit/test-kit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PitError } from '@pit/cell-spec';
import { agentEnv, makeCell, script } from '../test/helpers.js';
import { createExecutor, type AgentProcess, type Executor } from './executor.js';
import { readProcessStartTime, readProcessStat } from './proc.js';

let executor: Executor | undefined;

afterEach(async () => {
  for (const agent of executor?.running() ?? []) reapLater(agent.pid);
  await executor?.close();
  executor = undefined;
  launcherMode = false;
  await cleanup();
});

/** Every start and stop promise holds both ways agents are forked. */
const modes = [
  { name: 'spawned by the daemon', launcher: false },
  { name: 'spawned by the agent launcher', launcher: true },
];
let launcherMode = false;

const make = (options: Parameters<typeof createExecutor>[0] = {}): Executor => {
  const created = createExecutor({
    env: process.env,
    stopGraceMs: 5000,
    adoptPollMs: 50,
    launcher: launcherMode,
    ...options,
  });
  executor = created;
  if (!launcherMode) return created;
  // Through the launcher once it is ready (before that, agents are spawned directly).
  const ready = waitFor(() => created.launcherPid(), 15_000, 'the agent launcher');
  return {
    ...created,
    async start(spec) {
      await ready;
      const started = await created.start(spec);
      expect(started.via).toBe('launcher');
      return started;
    },
  };
};

describe.each(modes)('createExecutor (level 1, $name)', ({ launcher }) => {
  beforeEach(() => {
    launcherMode = launcher;
  });

  it('runs the agent in its workspace with LAZARUS_CELL_UUID and appends its stdout to logs/<agent>.log, its stderr to logs/<agent>.err.log', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      'echo "cwd=$(pwd) cell=$LAZARUS_CELL_UUID agent=$LAZARUS_AGENT"; echo oops >&2; exit 3',
    );
    const agent = await make().start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
    });
    reapLater(agent.pid);
    const exit = await within(agent.exited, 10_000, 'exit');
    expect(exit).toMatchObject({ code: 3, signal: null, how: 'waited' });
    const log = await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8');
    expect(log).toContain(`cwd=${join(cell.dir, 'workspace')} cell=${cell.uuid} agent=forge`);
    expect(log).not.toContain('oops');
    const errors = await fs.readFile(join(cell.dir, 'logs', 'forge.err.log'), 'utf8');
    expect(errors).toMatch(/^--- pit: starting forge at level 1 .*\noops\n$/);
    expect(agent.exit).toBe(exit);
  });

  it('forks only once the caller’s record of the start has landed (`recorded`)', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const flag = join(cell.dir, 'recorded');
    // The agent runs on only if the record (here: a file) exists when it starts.
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      `test -e "${flag}" || exit 3\nexec sleep 30`,
    );
    let landed = false;
    // The record lands a while after the start is asked for: well after the fork would have been.
    const recorded = new Promise<void>((resolve) =>
      setTimeout(() => {
        void fs.writeFile(flag, '').then(() => {
          landed = true;
          resolve();
        });
      }, 300),
    );
    const agent = await make().start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
      recorded,
    });
    reapLater(agent.pid);
    expect(landed).toBe(true);
    expect(agent.exit).toBeUndefined();
    expect((await readProcessStat(agent.pid))?.state).toMatch(/^[RSD]$/);
  });

  it('appends stdout and stderr to the one log, in the order written, with mergeStderr', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agent = await make().start({
      agent: 'forge',
      argv: ['sh', '-c', 'echo one; echo two >&2; echo three'],
      env: agentEnv(),
      cell,
      mergeStderr: true,
    });
    reapLater(agent.pid);
    await within(agent.exited, 10_000, 'exit');
    const log = await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8');
    expect(log).toMatch(/\none\ntwo\nthree\n$/);
    expect(await fs.readdir(join(cell.dir, 'logs'))).not.toContain('forge.err.log');
  });

  it('rotates a full log to <agent>.log.1 before a start, keeping at most keep files', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const logs = join(cell.dir, 'logs');
    await fs.writeFile(join(logs, 'forge.log'), 'x'.repeat(5000));
    await fs.writeFile(join(logs, 'forge.log.1'), 'older\n');
    await fs.writeFile(join(logs, 'forge.err.log'), 'e'.repeat(5000));
    const started = make({ logRotation: { maxBytes: 4096, keep: 2 } });
    for (const round of [1, 2]) {
      const agent = await started.start({
        agent: 'forge',
        argv: ['sh', '-c', `echo round ${round}`],
        env: agentEnv(),
        cell,
      });
      reapLater(agent.pid);
      await within(agent.exited, 10_000, 'exit');
    }
    // Round 1 rotated the 5000-byte log away (the old .1 dropped); round 2 found it small.
    expect((await fs.readdir(logs)).filter((name) => name.startsWith('forge')).sort()).toEqual([
      'forge.err.log',
      'forge.err.log.1',
      'forge.log',
      'forge.log.1',
    ]);
    expect(await fs.readFile(join(logs, 'forge.log.1'), 'utf8')).toBe('x'.repeat(5000));
    expect(await fs.readFile(join(logs, 'forge.err.log.1'), 'utf8')).toBe('e'.repeat(5000));
    const live = await fs.readFile(join(logs, 'forge.log'), 'utf8');
    expect(live).toContain('round 1');
    expect(live).toContain('round 2');
  });

  it('records the pid and the start time read from /proc, in the agent’s own process group', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agent = await make().start({
      agent: 'forge',
      argv: ['sleep', '30'],
      env: agentEnv(),
      cell,
    });
    reapLater(agent.pid);
    const stat = await readProcessStat(agent.pid);
    expect(stat?.startTime).toBe(agent.startTime);
    expect(stat?.pgrp).toBe(agent.pid);
    expect(stat?.sid).toBe(agent.pid);
    expect(agent).toMatchObject({ level: 1, adopted: false, cell: cell.uuid });
  });

  it('notices an exit at once even while a grandchild still holds the log open', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      'sleep 30 &\necho $! > grandchild.pid\nexit 7',
    );
    const agent = await make({ killGroupOnExit: false }).start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
    });
    reapLater(agent.pid);
    const exit = await within(agent.exited, 5000, 'exit with a grandchild holding stdout');
    expect(exit.code).toBe(7);
    const grandchild = Number(
      (await fs.readFile(join(cell.dir, 'workspace', 'grandchild.pid'), 'utf8')).trim(),
    );
    expect((await readProcessStat(grandchild))?.state).not.toBe('Z');
  });

  it('kills what is left of the process group when the agent exits', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      'sleep 30 &\necho $! > grandchild.pid\nexit 0',
    );
    const agent = await make().start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
    });
    reapLater(agent.pid);
    await within(agent.exited, 5000, 'exit');
    const grandchild = Number(
      (await fs.readFile(join(cell.dir, 'workspace', 'grandchild.pid'), 'utf8')).trim(),
    );
    await waitFor(
      async () => {
        const stat = await readProcessStat(grandchild);
        return stat === undefined || stat.state === 'Z';
      },
      5000,
      'the grandchild to die',
    );
  });

  it('calls onExit for every exit', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const seen: string[] = [];
    const agent = await make({
      onExit: (process, exit) => seen.push(`${process.agent}:${exit.code}`),
    }).start({ agent: 'forge', argv: ['sh', '-c', 'exit 4'], env: agentEnv(), cell });
    await within(agent.exited, 5000);
    expect(seen).toEqual(['forge:4']);
    expect(executor?.running()).toEqual([]);
  });

  it('runs an agent outside cells in its configured cwd with its configured log', async () => {
    const dir = await tempDir();
    const agent = await make().start({
      agent: 'gateway',
      argv: ['sh', '-c', 'pwd; echo "cell=${LAZARUS_CELL_UUID-none}"'],
      env: agentEnv(),
      cwd: dir,
      logPath: join(dir, 'logs', 'gateway.log'),
    });
    await within(agent.exited, 5000);
    const log = await fs.readFile(join(dir, 'logs', 'gateway.log'), 'utf8');
    expect(log).toContain(`${dir}\ncell=none`);
    expect(agent.cell).toBeUndefined();
  });

  it('writes its header line before the output of every start, and makes the log directory again when it was removed', async () => {
    const dir = await tempDir();
    const logPath = join(dir, 'logs', 'nested', 'gateway.log');
    const started = make();
    const run = async (word: string) =>
      within(
        started
          .start({ agent: 'gateway', argv: ['echo', word], env: agentEnv(), cwd: dir, logPath })
          .then((agent) => agent.exited),
        5000,
      );
    await run('first');
    await run('second');
    expect(
      (await fs.readFile(logPath, 'utf8')).split('\n').map((line) => line.replace(/ \(.*\)/, '')),
    ).toEqual([
      '--- pit: starting gateway at level 1: ["echo","first"]',
      'first',
      '--- pit: starting gateway at level 1: ["echo","second"]',
      'second',
      '',
    ]);
    await fs.rm(join(dir, 'logs'), { recursive: true });
    await run('third');
    expect(await fs.readFile(logPath, 'utf8')).toMatch(
      /^--- pit: starting gateway at level 1 \(.*\): \["echo","third"\]\nthird\n$/,
    );
  });

  it('refuses a command that does not exist with DAEMON_SPAWN_FAILED naming it', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const error = await make()
      .start({ agent: 'forge', argv: ['/nonexistent/agent-binary'], env: agentEnv(), cell })
      .catch((caught: unknown) => caught);
    expect(PitError.is(error) && error.code).toBe('DAEMON_SPAWN_FAILED');
    expect(String((error as Error).message)).toContain('/nonexistent/agent-binary');
  });

  it("creates a cell's missing workspace/ (mode 0755) before starting the agent in it, and says so", async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    await fs.rm(join(cell.dir, 'workspace'), { recursive: true });
    const warnings: Array<[string, unknown]> = [];
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (message: string, fields?: unknown) => void warnings.push([message, fields]),
      error: () => undefined,
    };
    const agent = await make({ logger }).start({
      agent: 'forge',
      argv: ['sh', '-c', 'pwd'],
      env: agentEnv(),
      cell,
    });
    await within(agent.exited, 5000);
    const stat = await fs.lstat(join(cell.dir, 'workspace'));
    expect(stat.isDirectory()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o755);
    expect(await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8')).toContain(
      `${join(cell.dir, 'workspace')}\n`,
    );
    expect(warnings).toEqual([
      ['cell workspace created', expect.objectContaining({ cell: cell.uuid, agent: 'forge' })],
    ]);
  });

  it('refuses a working directory that does not exist, naming it rather than the program', async () => {
    const dir = await tempDir();
    const error = await make()
      .start({
        agent: 'gateway',
        argv: ['sh', '-c', 'true'],
        env: agentEnv(),
        cwd: join(dir, 'gone'),
        logPath: join(dir, 'gateway.log'),
      })
      .catch((caught: unknown) => caught);
    expect(PitError.is(error) && error.code).toBe('DAEMON_SPAWN_FAILED');
    expect(String((error as Error).message)).toBe(
      `agent gateway: working directory ${join(dir, 'gone')} does not exist (or is a link to nothing): the agent cannot start in it`,
    );
  });

  it('refuses a bad agent name before touching the disk', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    await expect(
      make().start({ agent: '../etc', argv: ['true'], env: agentEnv(), cell }),
    ).rejects.toThrow(/must match/);
  });
});

describe.each(modes)('Executor.stop ($name)', ({ launcher }) => {
  beforeEach(() => {
    launcherMode = launcher;
  });

  it('sends SIGTERM to the process group and resolves with the exit', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agent = await make().start({
      agent: 'forge',
      argv: ['sleep', '30'],
      env: agentEnv(),
      cell,
    });
    reapLater(agent.pid);
    const exit = await within(executor!.stop(agent), 10_000, 'stop');
    expect(exit).toMatchObject({ code: null, signal: 'SIGTERM' });
  });

  it('stops a stopped (SIGSTOP) agent at once: SIGTERM is followed by SIGCONT, not a whole grace', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agent = await make().start({
      agent: 'forge',
      argv: ['sleep', '30'],
      env: agentEnv(),
      cell,
    });
    reapLater(agent.pid);
    process.kill(agent.pid, 'SIGSTOP');
    await waitFor(
      async () =>
        (await fs.readFile(`/proc/${agent.pid}/stat`, 'utf8')).split(') ')[1]?.[0] === 'T',
      5000,
      'the agent stopped (state T)',
    );
    // A grace far longer than the bound: only a SIGTERM the process handles at once can end it in time.
    const exit = await within(executor!.stop(agent, { graceMs: 120_000 }), 10_000, 'stop');
    expect(exit).toMatchObject({ code: null, signal: 'SIGTERM' });
  });

  it('sends SIGKILL after the grace period when the agent ignores SIGTERM', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      'trap "" TERM\necho ready\nwhile :; do sleep 0.05; done',
    );
    const agent = await make().start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
    });
    reapLater(agent.pid);
    await waitFor(
      async () =>
        (await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8')).includes('ready'),
      5000,
      'agent ready',
    );
    const exit = await within(executor!.stop(agent, { graceMs: 200 }), 10_000, 'stop');
    expect(exit.signal).toBe('SIGKILL');
  });

  it('returns the recorded exit for an agent that already exited', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agent = await make().start({ agent: 'forge', argv: ['true'], env: agentEnv(), cell });
    const exit = await within(agent.exited, 5000);
    expect(await executor!.stop(agent)).toBe(exit);
  });
});

describe('Executor.adopt', () => {
  const instance = 'adopt-test-instance';
  const nonce = '0123456789abcdef0123456789abcdef';
  /** The marks the executor puts in an agent's environment. */
  const marks = (extra: Record<string, string> = {}) => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    PIT_INSTANCE: instance,
    LAZARUS_AGENT: 'forge',
    PIT_SPAWN: nonce,
    ...extra,
  });
  /**
   * Starts `sleep` as an orphan leading its own session (its parent shell exits), as an agent is
   * after a daemon restart, with `env` as its environment.
   */
  const startOrphan = async (dir: string, env: NodeJS.ProcessEnv = marks()): Promise<number> => {
    const pidFile = join(dir, 'orphan.pid');
    const shell = spawn('sh', ['-c', `setsid sleep 60 & echo $! > ${pidFile}`], {
      detached: true,
      stdio: 'ignore',
      env,
    });
    reapLater(shell.pid);
    await within(new Promise((resolve) => shell.once('exit', resolve)), 5000);
    const pid = Number((await fs.readFile(pidFile, 'utf8')).trim());
    reapLater(pid);
    await waitFor(async () => (await readProcessStat(pid))?.sid === pid, 5000, 'its own session');
    return pid;
  };

  it('adopts a running process by pid, start time and marks, and notices when it dies', async () => {
    const dir = await tempDir();
    const pid = await startOrphan(dir);
    const startTime = (await readProcessStartTime(pid))!;
    const adopted = await make({ instance }).adopt({ agent: 'forge', pid, startTime, nonce });
    expect(adopted).toMatchObject({ pid, startTime, adopted: true, nonce });
    process.kill(pid, 'SIGTERM');
    const exit = await within(adopted!.exited, 5000, 'adopted exit');
    // Orphans here are not reaped by PID 1: the status is read from the zombie's /proc/<pid>/stat.
    expect(['zombie', 'vanished']).toContain(exit.how);
    if (exit.how === 'zombie') expect(exit.signal).toBe('SIGTERM');
  });

  it('refuses a pid whose start time differs (a recycled pid) and a dead pid', async () => {
    const dir = await tempDir();
    const pid = await startOrphan(dir);
    const startTime = (await readProcessStartTime(pid))!;
    expect(
      await make({ instance }).adopt({ agent: 'forge', pid, startTime: startTime + 1, nonce }),
    ).toBeUndefined();
    expect(
      await executor!.adopt({ agent: 'forge', pid: 2 ** 22 + 12345, startTime, nonce }),
    ).toBeUndefined();
  });

  it('refuses a live process with the right start time that lacks the marks of this daemon, this agent or this start', async () => {
    const dir = await tempDir();
    const cases: Array<[string, NodeJS.ProcessEnv]> = [
      ['foreign', { PATH: process.env.PATH ?? '/usr/bin:/bin' }],
      ['another daemon', marks({ PIT_INSTANCE: 'another-instance' })],
      ['another agent', marks({ LAZARUS_AGENT: 'anvil' })],
      ['another cell', marks({ LAZARUS_CELL_UUID: '9b2f8a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c' })],
      ['another start', marks({ PIT_SPAWN: 'f'.repeat(32) })],
    ];
    make({ instance });
    for (const [what, env] of cases) {
      const pid = await startOrphan(dir, env);
      const startTime = (await readProcessStartTime(pid))!;
      expect(
        await executor!.adopt({ agent: 'forge', pid, startTime, nonce }),
        what,
      ).toBeUndefined();
      process.kill(pid, 'SIGKILL');
    }
  });

  it('stops an adopted agent (its group, checked by start time first)', async () => {
    const shell = spawn('sh', ['-c', 'trap "" TERM; while :; do sleep 0.05; done'], {
      detached: true,
      stdio: 'ignore',
      env: marks(),
    });
    reapLater(shell.pid);
    const pid = shell.pid!;
    const startTime = (await readProcessStartTime(pid))!;
    const adopted = (await make({ instance }).adopt({
      agent: 'forge',
      pid,
      startTime,
      nonce,
    })) as AgentProcess;
    const exit = await within(executor!.stop(adopted, { graceMs: 200 }), 10_000, 'stop adopted');
    expect(exit.at).toBeInstanceOf(Date);
    expect((await readProcessStat(pid))?.state ?? 'gone').toMatch(/gone|Z/);
  });
});
