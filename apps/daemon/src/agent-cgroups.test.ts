import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { cleanup, reapLater, tempDir, waitFor } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { agentEnv, makeCell, recordingLogger, script } from '../test/helpers.js';
import { detectAgentCgroups, type AgentCgroups } from './agent-cgroups.js';
import { createExecutor, newSpawnNonce, type Executor } from './executor.js';

const executors: Executor[] = [];
afterEach(async () => {
  for (const executor of executors.splice(0)) {
    for (const agent of executor.running()) reapLater(agent.pid);
    await executor.close();
  }
  await cleanup();
});

const recording = recordingLogger;

/** Live (not zombie) processes whose argv includes `tag`. */
async function tagged(tag: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.split('\0').includes(tag)) continue;
    const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (stat && !/\) [ZX] /.test(stat)) pids.push(Number(entry));
  }
  return pids;
}

const instance = () => randomBytes(8).toString('hex');
/** The child groups (directories) of a cgroup. */
const groupsIn = async (dir: string) =>
  (await fs.readdir(dir, { withFileTypes: true }).catch(() => []))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);
const detected = await detectAgentCgroups({
  setting: 'auto',
  instance: instance(),
  logger: recording().logger,
});
await detected?.close();

describe('detectAgentCgroups', () => {
  it('falls back to the marks, saying why, when the parent is not a cgroup2 directory', async () => {
    const { logger, lines } = recording();
    const dir = await tempDir('pit-not-cgroup-');
    expect(await detectAgentCgroups({ setting: dir, instance: instance(), logger })).toBe(
      undefined,
    );
    expect(lines.join('\n')).toMatch(
      /agent cgroups unavailable; an agent’s descendants are found by their marks.*is not on a cgroup2 file system/,
    );
  });

  it('is off, and says so, when configured off', async () => {
    const { logger, lines } = recording();
    expect(await detectAgentCgroups({ setting: 'off', instance: instance(), logger })).toBe(
      undefined,
    );
    expect(lines.join('\n')).toContain('agent cgroups off');
  });
});

describe.skipIf(!detected)('agent cgroups (cgroup2 writable here)', () => {
  const make = async (launcher: boolean) => {
    const { logger, lines } = recording();
    const id = instance();
    const cgroups = (await detectAgentCgroups({ setting: 'auto', instance: id, logger }))!;
    const executor = createExecutor({
      env: process.env,
      stopGraceMs: 5000,
      adoptPollMs: 50,
      launcher,
      instance: id,
      cgroups,
      logger,
    });
    executors.push(executor);
    if (launcher) await waitFor(() => executor.launcherPid(), 15_000, 'the agent launcher');
    return { executor, cgroups, lines };
  };

  /** An agent that leaves a child in a session of its own with an empty environment, then runs. */
  const escaper = async (dir: string, tag: string) =>
    script(
      join(dir, 'workspace', 'agent.sh'),
      [
        `setsid env -i /bin/sh -c 'while :; do sleep 1; done' ${tag} < /dev/null > /dev/null 2>&1 &`,
        'exec sleep 1000',
      ].join('\n'),
    );

  const inGroup = async (cgroups: AgentCgroups, cell: string, pid: number) =>
    (await fs.readFile(join(cgroups.pathOf(cell, 'forge'), 'cgroup.procs'), 'utf8'))
      .split('\n')
      .includes(String(pid));

  it.each([false, true])(
    'kills a setsid child with an empty environment when the agent exits (launcher: %s)',
    async (launcher) => {
      const { executor, cgroups, lines } = await make(launcher);
      const cell = await makeCell([{ name: 'forge' }]);
      const tag = `escaper-${instance()}`;
      const agent = await executor.start({
        agent: 'forge',
        argv: [await escaper(cell.dir, tag)],
        env: agentEnv(),
        cell: { uuid: cell.uuid, dir: cell.dir },
      });
      // The escaped child once `env -i` has exec'd its shell (before, it still carries the marks).
      const [child] = await waitFor(
        async () => {
          const pids = await tagged(tag);
          const environ =
            pids.length === 1
              ? await fs.readFile(`/proc/${pids[0]}/environ`, 'utf8').catch(() => undefined)
              : undefined;
          return environ !== undefined && !environ.includes('PIT_INSTANCE') ? pids : undefined;
        },
        10_000,
        'the escaped child',
      );
      expect(await inGroup(cgroups, cell.uuid, agent.pid)).toBe(true);
      expect(await inGroup(cgroups, cell.uuid, child!)).toBe(true);
      if (launcher) {
        // The launcher forked it from inside the group and went back to its own group.
        const groupOf = async (pid: number | 'self') =>
          (await fs.readFile(`/proc/${pid}/cgroup`, 'utf8'))
            .split('\n')
            .find((line) => line.startsWith('0::'));
        expect(agent.via).toBe('launcher');
        expect(await groupOf(executor.launcherPid()!)).toBe(await groupOf('self'));
      }
      const marks = await fs.readFile(`/proc/${child}/environ`, 'utf8');
      expect(marks).not.toContain('PIT_INSTANCE');
      process.kill(agent.pid, 'SIGKILL');
      await agent.exited;
      await waitFor(
        async () => ((await tagged(tag)).length === 0 ? true : undefined),
        10_000,
        'the escaped child killed with its group',
      );
      await waitFor(
        () =>
          fs.access(cgroups.pathOf(cell.uuid, 'forge')).then(
            () => undefined,
            () => true,
          ),
        10_000,
        'the group removed',
      );
      expect(lines.join('\n')).toContain('killed the leftover processes of an agent (its cgroup)');
    },
  );

  it('a standing restart kills what the exited agent left in its group, then starts the next one in it', async () => {
    const { executor, cgroups } = await make(true);
    const cell = await makeCell([{ name: 'forge' }]);
    const tag = `escaper-${instance()}`;
    const spec = (nonce: string) => ({
      agent: 'forge',
      argv: ['sleep', '1000'],
      env: agentEnv(),
      nonce,
      cell: { uuid: cell.uuid, dir: cell.dir },
    });
    const first = await executor.start({
      ...spec(newSpawnNonce()),
      argv: [await escaper(cell.dir, tag)],
    });
    const [child] = await waitFor(
      async () => ((await tagged(tag)).length === 1 ? tagged(tag) : undefined),
      10_000,
      'the escaped child',
    );
    reapLater(child!);
    const next = newSpawnNonce();
    expect(await executor.standRestart(spec(next), first)).toBe(true);
    process.kill(first.pid, 'SIGKILL');
    expect(await first.exited).toMatchObject({ prestarted: next });
    const kept = await executor.start(spec(next));
    reapLater(kept.pid);
    expect(await inGroup(cgroups, cell.uuid, kept.pid)).toBe(true);
    await waitFor(async () => (await tagged(tag)).length === 0, 5000, 'the escaped child killed');
    expect(executor.running().map((agent) => agent.pid)).toEqual([kept.pid]);
  });

  it('freezes a group while work runs and thaws it after; a starting daemon thaws a group left frozen', async () => {
    const { executor, cgroups } = await make(false);
    const cell = await makeCell([{ name: 'forge' }]);
    const agent = await executor.start({
      agent: 'forge',
      argv: ['sleep', '1000'],
      env: agentEnv(),
      cell: { uuid: cell.uuid, dir: cell.dir },
    });
    const path = cgroups.pathOf(cell.uuid, 'forge');
    await waitFor(
      async () => (await inGroup(cgroups, cell.uuid, agent.pid)) || undefined,
      5000,
      'the agent in its group',
    );
    const frozenNow = async () =>
      /^frozen 1$/m.test(await fs.readFile(join(path, 'cgroup.events'), 'utf8'));
    const seen = await cgroups.whileFrozen(cell.uuid, 'forge', async () => ({
      frozen: await frozenNow(),
    }));
    expect(seen?.frozen).toBe(true);
    expect(await frozenNow()).toBe(false);
    // A daemon that stopped in the middle: the next one (same instance) thaws the group.
    await fs.writeFile(join(path, 'cgroup.freeze'), '1');
    await waitFor(() => frozenNow().then((yes) => yes || undefined), 5000, 'frozen');
    const { logger, lines } = recording();
    const again = await detectAgentCgroups({
      setting: 'auto',
      instance: cgroups.root.split('/').at(-1)!,
      logger,
    });
    expect(again?.root).toBe(cgroups.root);
    expect(await frozenNow()).toBe(false);
    expect(lines.join('\n')).toContain('thawed an agent cgroup left frozen');
    process.kill(agent.pid, 'SIGKILL');
    await agent.exited;
  });

  it('kills what an earlier start left in the group before the next start (a restarted daemon finds it by its path)', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const tag = `escaper-${instance()}`;
    // Through the launcher: once it is closed, nothing of this daemon watches the agent's exit.
    const first = await make(true);
    const agent = await first.executor.start({
      agent: 'forge',
      argv: [await escaper(cell.dir, tag)],
      env: agentEnv(),
      cell: { uuid: cell.uuid, dir: cell.dir },
    });
    await waitFor(
      async () => ((await tagged(tag)).length === 1 ? true : undefined),
      10_000,
      'the escaped child',
    );
    // The daemon goes (its agents keep running); the agent dies while no daemon watches.
    await first.executor.close();
    process.kill(agent.pid, 'SIGKILL');
    reapLater(agent.pid);
    expect(await tagged(tag)).toHaveLength(1);
    // A new daemon on the same instance finds the group by its path and empties it first.
    const { logger } = recording();
    const cgroups = (await detectAgentCgroups({
      setting: 'auto',
      instance: first.cgroups.root.split('/').pop()!,
      logger,
    }))!;
    expect(cgroups.pathOf(cell.uuid, 'forge')).toBe(first.cgroups.pathOf(cell.uuid, 'forge'));
    const second = createExecutor({ env: process.env, cgroups, logger, instance: 'x' });
    executors.push(second);
    const next = await second.start({
      agent: 'forge',
      argv: ['sleep', '1000'],
      env: agentEnv(),
      cell: { uuid: cell.uuid, dir: cell.dir },
    });
    expect(await tagged(tag)).toHaveLength(0);
    // The wrapper joins the group in the child, after the spawn: wait for it (bounded).
    await waitFor(() => inGroup(cgroups, cell.uuid, next.pid), 5_000, 'the new start in its group');
    await second.stop(next, { graceMs: 1000 });
  });

  it('puts a level-2 agent, sandbox and all, into its group, and kills the group at its exit', async () => {
    const { executor, cgroups } = await make(false);
    const cell = await makeCell([{ name: 'forge' }]);
    const tag = `escaper-${instance()}`;
    const agent = await executor.start({
      agent: 'forge',
      argv: ['sh', await escaper(cell.dir, tag)],
      env: agentEnv(),
      cell: { uuid: cell.uuid, dir: cell.dir },
      isolation: { level: 2 },
    });
    await waitFor(
      async () => ((await tagged(tag)).length === 1 ? true : undefined),
      10_000,
      'the escaped child in the sandbox',
    );
    expect(await inGroup(cgroups, cell.uuid, agent.pid)).toBe(true);
    expect(await inGroup(cgroups, cell.uuid, (await tagged(tag))[0]!)).toBe(true);
    await executor.stop(agent, { graceMs: 1000 });
    await waitFor(
      async () => ((await tagged(tag)).length === 0 ? true : undefined),
      10_000,
      'the sandbox gone with its group',
    );
  });

  it('removes at start the empty directories of other instances, and keeps one with a process or its own', async () => {
    const parent = join(dirname(detected!.root), `test-${instance()}`);
    await fs.mkdir(parent);
    const [dead, live, own] = [instance(), instance(), instance()];
    let pid: number | undefined;
    try {
      for (const id of [dead, live, own])
        await fs.mkdir(join(parent, id, 'cell.forge'), { recursive: true });
      await fs.mkdir(join(parent, dead, 'cell.anvil'));
      const child = spawn(
        '/bin/sh',
        [
          '-c',
          `echo $$ > "$0" && exec sleep 1000`,
          join(parent, live, 'cell.forge', 'cgroup.procs'),
        ],
        {
          detached: true,
          stdio: 'ignore',
        },
      );
      pid = child.pid!;
      reapLater(pid);
      await waitFor(
        async () =>
          (await fs.readFile(join(parent, live, 'cell.forge', 'cgroup.procs'), 'utf8')).trim() ===
          String(pid),
        5_000,
        'the process to join its group',
      );
      const { logger, lines } = recording();
      // Made just now: age is not what this case is about (the next case is).
      const cgroups = await detectAgentCgroups({
        setting: parent,
        instance: own,
        logger,
        pruneMinAgeMs: 0,
      });
      expect(cgroups?.root).toBe(join(parent, own));
      expect((await groupsIn(parent)).sort()).toEqual([live, own].sort());
      expect(await groupsIn(join(parent, own))).toEqual(['cell.forge']);
      expect(lines.join('\n')).toContain(
        `removed the empty agent cgroups of other daemon instances {"parent":"${parent}","instances":["${dead}"]}`,
      );
      // A group whose instance directory was pruned is made again at the next start.
      await fs.rmdir(join(parent, own, 'cell.forge'));
      await fs.rmdir(join(parent, own));
      const procs = await cgroups!.startIn('cell', 'forge', async (path) => path);
      expect(procs).toBe(join(parent, own, 'cell.forge', 'cgroup.procs'));
      await fs.access(procs);
      await cgroups!.release('cell', 'forge');
      await cgroups!.close();
    } finally {
      if (pid) process.kill(pid, 'SIGKILL');
      await waitFor(
        async () =>
          !(await fs.readFile(join(parent, live, 'cell.forge', 'cgroup.procs'), 'utf8')).trim(),
        5_000,
        'the live group empty',
      );
      for (const id of [dead, live, own]) {
        for (const group of await groupsIn(join(parent, id)))
          await fs.rmdir(join(parent, id, group)).catch(() => undefined);
        await fs.rmdir(join(parent, id)).catch(() => undefined);
      }
      await fs.rmdir(parent);
    }
  });

  it("keeps another instance's group made a moment ago: a live daemon's next start joins it", async () => {
    const parent = join(dirname(detected!.root), `test-${instance()}`);
    await fs.mkdir(parent);
    const [starting, own] = [instance(), instance()];
    try {
      // Another daemon with no agent running has just made the group of its next start.
      await fs.mkdir(join(parent, starting, 'cell.forge'), { recursive: true });
      const cgroups = await detectAgentCgroups({
        setting: parent,
        instance: own,
        logger: recording().logger,
      });
      expect((await groupsIn(parent)).sort()).toEqual([own, starting].sort());
      // Its agent joins the group (here as a start from the daemon itself joins: through a shell).
      const joined = spawn(
        '/bin/sh',
        ['-c', 'echo $$ > "$0" && exec true', join(parent, starting, 'cell.forge', 'cgroup.procs')],
        { stdio: 'ignore' },
      );
      expect(await new Promise((resolve) => joined.once('exit', resolve))).toBe(0);
      await cgroups!.close();
    } finally {
      for (const id of [starting, own]) {
        for (const group of await groupsIn(join(parent, id)))
          await fs.rmdir(join(parent, id, group)).catch(() => undefined);
        await fs.rmdir(join(parent, id)).catch(() => undefined);
      }
      await fs.rmdir(parent);
    }
  });

  it('still refuses a program that does not exist, naming it', async () => {
    const { executor } = await make(false);
    const cell = await makeCell([{ name: 'forge' }]);
    await expect(
      executor.start({
        agent: 'forge',
        argv: ['no-such-program-here'],
        env: agentEnv(),
        cell: { uuid: cell.uuid, dir: cell.dir },
      }),
    ).rejects.toThrow(/cannot start "no-such-program-here" .*ENOENT/);
  });
});
