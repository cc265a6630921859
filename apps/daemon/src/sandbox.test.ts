import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup, reapLater, tempDir, waitFor, within } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { agentEnv, makeCell, script } from '../test/helpers.js';
import { createExecutor, type Executor } from './executor.js';
import { readProcessStat } from './proc.js';
import { sandboxArgv } from './sandbox.js';

let executor: Executor | undefined;
const varTmpDirs: string[] = [];
afterEach(async () => {
  for (const agent of executor?.running() ?? []) reapLater(agent.pid);
  executor = undefined;
  for (const dir of varTmpDirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
  await cleanup();
});

/** A scratch directory under /var/tmp: level 2 hides /tmp, and only modes keep these from the agent. */
async function varTmp(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(join('/var/tmp', prefix));
  varTmpDirs.push(dir);
  return dir;
}

/** Lists /proc/<pid> directories: every process visible from here. */
async function hostPids(): Promise<number[]> {
  return (await fs.readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
}

/** The host pid of the process whose innermost pid (in its pid namespace) is `innerPid`, in process group `pgid`. */
async function outerPidOf(innerPid: number, pgid: number): Promise<number | undefined> {
  for (const pid of await hostPids()) {
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number);
    if (!nspid || nspid.length < 2 || nspid.at(-1) !== innerPid) continue;
    if ((await readProcessStat(pid))?.pgrp === pgid) return pid;
  }
  return undefined;
}

describe('sandboxArgv', () => {
  it('refuses relative paths and paths with newlines', () => {
    expect(() =>
      sandboxArgv({ unshare: '/usr/bin/unshare', workdir: 'rel', writable: [], argv: ['true'] }),
    ).toThrow(/absolute path/);
    expect(() =>
      sandboxArgv({
        unshare: '/usr/bin/unshare',
        workdir: '/a',
        writable: ['/b\n'],
        argv: ['true'],
      }),
    ).toThrow(/newlines/);
  });
});

describe('isolation level 2 (mount + pid + user namespaces)', () => {
  it('runs the same way when the agent launcher forks it: contained, its own group, its exit code reported', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      [
        'echo inside > in-workspace.txt',
        'echo x > /etc/pit-escape 2>/dev/null && echo "WROTE /etc" || echo "etc refused"',
        'exit 5',
      ].join('\n'),
    );
    executor = createExecutor({ env: process.env, launcher: true });
    await waitFor(() => executor!.launcherPid(), 15_000, 'the agent launcher');
    const agent = await executor.start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
      isolation: { level: 2 },
    });
    reapLater(agent.pid);
    expect(agent.via).toBe('launcher');
    expect((await readProcessStat(agent.pid))?.pgrp).toBe(agent.pid);
    const exit = await within(agent.exited, 20_000, 'sandboxed agent');
    const log = await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8');
    expect(exit, log).toMatchObject({ code: 5, how: 'waited' });
    expect(log).toContain('etc refused');
    expect(await fs.readFile(join(cell.dir, 'workspace', 'in-workspace.txt'), 'utf8')).toBe(
      'inside\n',
    );
    await executor.close();
  });

  it('needs no root: an ordinary user (nobody, through setpriv when the tests run as root) is contained the same way', async () => {
    const base = await tempDir('pit-nobody-');
    await fs.chmod(base, 0o755);
    const cellDir = join(base, 'cell');
    await fs.mkdir(join(cellDir, 'workspace'), { recursive: true });
    const asRoot = process.getuid?.() === 0;
    if (asRoot)
      await fs
        .chown(cellDir, 65534, 65534)
        .then(() => fs.chown(join(cellDir, 'workspace'), 65534, 65534));
    const argv = sandboxArgv({
      unshare: '/usr/bin/unshare',
      workdir: join(cellDir, 'workspace'),
      writable: [cellDir],
      argv: [
        'sh',
        '-c',
        'echo contained > proof.txt; (echo x > /etc/pit-escape) 2>/dev/null && echo ESCAPED || echo etc-refused; echo "home=[$(ls -A /home)]"',
      ],
    });
    const command = asRoot
      ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', ...argv]
      : argv;
    const { spawn } = await import('node:child_process');
    const child = spawn(command[0]!, command.slice(1), {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    reapLater(child.pid);
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const code = await within(
      new Promise<number | null>((resolve) => child.once('exit', resolve)),
      20_000,
      'the unprivileged sandbox',
    );
    expect(code, output).toBe(0);
    expect(output).toContain('etc-refused');
    expect(output).toContain('home=[]');
    expect(await fs.readFile(join(cellDir, 'workspace', 'proof.txt'), 'utf8')).toBe('contained\n');
    if (asRoot) expect((await fs.stat(join(cellDir, 'workspace', 'proof.txt'))).uid).toBe(65534);
  });

  it('lets the agent write only its workspace and heartbeats: the rest of the cell, /etc and the host are read-only', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const outside = await tempDir('pit-outside-');
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      [
        'echo inside > in-workspace.txt && echo "wrote workspace"',
        `for target in cell.json logs/extra.txt logs/events.jsonl .lazarus/state.json checkpoints/x.tar.gz bus/x; do (echo x >> ${cell.dir}/$target) 2>&1 | grep -q 'Read-only file system' && echo "refused $target"; done`,
        `echo '{}' > ${cell.dir}/.lazarus/heartbeats/.forge.tmp && mv ${cell.dir}/.lazarus/heartbeats/.forge.tmp ${cell.dir}/.lazarus/heartbeats/forge.json && echo "wrote heartbeat"`,
        'echo x > /etc/pit-escape 2>/dev/null && echo "WROTE /etc" || echo "etc refused"',
        `echo x > ${outside}/escape.txt 2>/dev/null && echo "wrote outside path (private view)" || echo "outside refused"`,
        'echo x > /usr/pit-escape 2>/dev/null && echo "WROTE /usr" || echo "usr refused"',
        'umount /tmp 2>/dev/null && echo "UMOUNTED /tmp" || echo "umount refused"',
      ].join('\n'),
    );
    executor = createExecutor({ env: process.env });
    const agent = await executor.start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
      isolation: { level: 2 },
    });
    reapLater(agent.pid);
    const exit = await within(agent.exited, 20_000, 'sandboxed agent');
    const log = await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8');
    expect(exit.code, log).toBe(0);
    expect(log).toContain('wrote workspace');
    // Deliberately refused since #13: the cell is read-only but for workspace/ and heartbeats.
    for (const target of [
      'cell.json',
      'logs/extra.txt',
      'logs/events.jsonl',
      '.lazarus/state.json',
      'checkpoints/x.tar.gz',
      'bus/x',
    ])
      expect(log).toContain(`refused ${target}`);
    expect(log).toContain('wrote heartbeat');
    expect(await fs.readFile(join(cell.dir, '.lazarus', 'heartbeats', 'forge.json'), 'utf8')).toBe(
      '{}\n',
    );
    expect(log).toContain('etc refused');
    expect(log).toContain('usr refused');
    expect(log).toContain('umount refused');
    expect(await fs.readFile(join(cell.dir, 'workspace', 'in-workspace.txt'), 'utf8')).toBe(
      'inside\n',
    );
    // Whatever the agent believed it wrote outside its cell never reached the host.
    await expect(fs.access(join(outside, 'escape.txt'))).rejects.toThrow();
    await expect(fs.access('/etc/pit-escape')).rejects.toThrow();
    await expect(fs.access('/usr/pit-escape')).rejects.toThrow();
  });

  it('keeps the agent in its cgroup: /sys/fs/cgroup is read-only and no cgroup namespace (a writable cgroup2 of its own) can be made', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const mount = (await fs.readFile('/proc/self/mountinfo', 'utf8'))
      .split('\n')
      .find((line) => line.split(' - ')[1]?.startsWith('cgroup2 '))
      ?.split(' ')[4];
    const probe = `pit-escape-${process.pid}-${Date.now()}`;
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      [
        `cg=${mount ?? '/sys/fs/cgroup'}`,
        'echo $$ > $cg/cgroup.procs 2>/dev/null && echo "MOVED to the root group" || echo "procs refused"',
        `mkdir $cg/${probe} 2>/dev/null && echo "CREATED a group" || echo "mkdir refused"`,
        // Its own cgroup namespace (nested user namespace or not), then a fresh cgroup2 mount.
        `unshare --cgroup --mount sh -c 'mount -t cgroup2 none /tmp && mkdir /tmp/${probe} && echo "CREATED through a cgroup namespace"' 2>/dev/null || echo "cgroup namespace refused"`,
        `unshare --user --map-root-user --cgroup --mount sh -c 'mount -t cgroup2 none /tmp && echo "MOUNTED in a nested user namespace"' 2>/dev/null || echo "nested cgroup namespace refused"`,
        'mount -t cgroup2 none /tmp 2>/dev/null && echo "MOUNTED cgroup2" || echo "mount refused"',
      ].join('\n'),
    );
    executor = createExecutor({ env: process.env });
    const agent = await executor.start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
      isolation: { level: 2 },
    });
    reapLater(agent.pid);
    const exit = await within(agent.exited, 20_000, 'sandboxed agent');
    const log = await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8');
    expect(exit.code, log).toBe(0);
    for (const line of [
      'procs refused',
      'mkdir refused',
      'cgroup namespace refused',
      'nested cgroup namespace refused',
      'mount refused',
    ])
      expect(log).toContain(line);
    expect(log).not.toMatch(/MOVED|CREATED|MOUNTED/);
    if (mount) await expect(fs.access(join(mount, probe))).rejects.toThrow();
  });

  it('hides other processes, /root, /home and other agents’ homes; the agent’s own home stays readable, not writable', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const otherHome = await tempDir('pit-home-');
    await fs.writeFile(join(otherHome, 'secret.txt'), 'other agent secret');
    const ownHome = await tempDir('pit-own-home-');
    await fs.writeFile(join(ownHome, 'settings.json'), '{"mine":true}');
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      [
        `echo "procs: $(ls /proc | grep -cE '^[0-9]+$')"`,
        `echo "daemon visible: $(test -d /proc/${process.pid} && echo yes || echo no)"`,
        'echo "root: [$(ls -A /root | tr "\\n" " ")]"',
        'echo "home: [$(ls -A /home | tr "\\n" " ")]"',
        `cat ${otherHome}/secret.txt 2>/dev/null || echo "other home hidden"`,
        `echo "own: $(cat ${ownHome}/settings.json)"`,
        `(echo x > ${ownHome}/new.txt) 2>/dev/null && echo "OWN HOME WRITABLE" || echo "own home read-only"`,
      ].join('\n'),
    );
    executor = createExecutor({ env: process.env });
    const agent = await executor.start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
      isolation: { level: 2 },
      hiddenPaths: [otherHome, ownHome],
      home: ownHome,
    });
    reapLater(agent.pid);
    await within(agent.exited, 20_000, 'sandboxed agent');
    const log = await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8');
    expect(log).toContain('daemon visible: no');
    const procs = Number(/procs: (\d+)/.exec(log)?.[1]);
    expect(procs).toBeGreaterThan(0);
    expect(procs).toBeLessThan(12); // the launcher, the agent's shell and its pipeline: not the host's processes
    expect(log).toContain('root: []');
    expect(log).toContain('home: []');
    expect(log).toContain('other home hidden');
    expect(log).not.toContain('other agent secret');
    expect(log).toContain('own: {"mine":true}');
    expect(log).toContain('own home read-only');
  });

  it('tracks and stops the agent: the process inside is in the tracked process group and dies with it', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      'echo $$ > inner.pid\nwhile :; do sleep 0.05; done',
    );
    executor = createExecutor({ env: process.env, stopGraceMs: 5000 });
    const agent = await executor.start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
      isolation: { level: 2 },
    });
    reapLater(agent.pid);
    const innerPid = await waitFor(
      async () =>
        Number((await fs.readFile(join(cell.dir, 'workspace', 'inner.pid'), 'utf8')).trim()) ||
        undefined,
      15_000,
      'inner pid',
    );
    expect(innerPid).toBeGreaterThan(1);
    const outerPid = await waitFor(
      () => outerPidOf(innerPid, agent.pid),
      5000,
      'the agent as seen from the host',
    );
    expect(outerPid).not.toBe(agent.pid);
    expect((await readProcessStat(outerPid))?.pgrp).toBe(agent.pid);
    const exit = await within(executor.stop(agent), 15_000, 'stop');
    // SIGTERM reached the agent (PID ≥ 2 in its namespace); the launcher reports it as 128+15.
    expect(exit.code).toBe(143);
    const after = await readProcessStat(outerPid);
    expect(after === undefined || after.state === 'Z').toBe(true);
  });

  it('gives the agent only loopback with network = none', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const agentScript = await script(
      join(cell.dir, 'workspace', 'agent.sh'),
      'echo "links: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\\n" " ")"',
    );
    executor = createExecutor({ env: process.env });
    const agent = await executor.start({
      agent: 'forge',
      argv: ['sh', agentScript],
      env: agentEnv(),
      cell,
      isolation: { level: 2, network: 'none' },
    });
    reapLater(agent.pid);
    await within(agent.exited, 20_000, 'sandboxed agent');
    const log = await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8');
    expect(log).toMatch(/links: lo \n/);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'runs the agent of a root daemon as sandboxUser: no root-only file readable, its workspace and heartbeats writable, no cgroup namespace, network none kept',
    async () => {
      const cell = await makeCell([{ name: 'forge' }]);
      // Outside /tmp (hidden at level 2) so that only the file's mode keeps it from the agent.
      const outside = await varTmp('pit-root-only-');
      await fs.chmod(outside, 0o755);
      await fs.writeFile(join(outside, 'secret'), 'root-only', { mode: 0o600 });
      const agentScript = await script(
        join(cell.dir, 'workspace', 'agent.sh'),
        [
          `cat ${outside}/secret 2>/dev/null && echo "READ SECRET" || echo "secret refused"`,
          'head -c1 /etc/shadow >/dev/null 2>&1 && echo "READ SHADOW" || echo "shadow refused"',
          'echo inside > in-workspace.txt && echo "wrote workspace"',
          `echo '{}' > ${cell.dir}/.lazarus/heartbeats/forge.json && echo "wrote heartbeat"`,
          `(echo x >> ${cell.dir}/cell.json) 2>/dev/null && echo "WROTE cell.json" || echo "cell.json refused"`,
          'unshare --cgroup true 2>/dev/null && echo "CGROUP NAMESPACE" || echo "cgroup namespace refused"',
          'echo "links: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\\n" " ")"',
        ].join('\n'),
      );
      executor = createExecutor({ env: process.env, sandboxUser: { uid: 65534, gid: 65534 } });
      const agent = await executor.start({
        agent: 'forge',
        argv: ['sh', agentScript],
        env: agentEnv(),
        cell,
        isolation: { level: 2, network: 'none' },
      });
      reapLater(agent.pid);
      const exit = await within(agent.exited, 20_000, 'sandboxed agent');
      const log = await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8');
      const errors = await fs.readFile(join(cell.dir, 'logs', 'forge.err.log'), 'utf8');
      expect(exit.code, log + errors).toBe(0);
      for (const line of [
        'secret refused',
        'shadow refused',
        'wrote workspace',
        'wrote heartbeat',
        'cell.json refused',
        'cgroup namespace refused',
      ])
        expect(log, errors).toContain(line);
      expect(log).not.toContain('root-only');
      expect(log).toMatch(/links: lo \n/);
      expect((await fs.stat(join(cell.dir, 'workspace', 'in-workspace.txt'))).uid).toBe(65534);
      expect((await fs.stat(join(cell.dir, 'cell.json'))).uid).toBe(0);
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    'refuses, naming the path and [sandbox] uid, a writable directory the sandbox uid cannot write (an agent outside cells)',
    async () => {
      const cwd = await varTmp('pit-root-cwd-');
      await fs.chmod(cwd, 0o755);
      executor = createExecutor({ env: process.env, sandboxUser: { uid: 65534, gid: 65534 } });
      const log = join(cwd, 'agent.log');
      const agent = await executor.start({
        agent: 'forge',
        argv: ['sh', '-c', 'echo RAN-$((1 + 1))'],
        env: agentEnv(),
        cwd,
        logPath: log,
        isolation: { level: 2 },
      });
      reapLater(agent.pid);
      const exit = await within(agent.exited, 20_000, 'sandboxed agent');
      const text = await fs.readFile(log, 'utf8');
      expect(exit.code, text).toBe(125);
      expect(text).toContain(`uid 65534 cannot write ${cwd}`);
      expect(text).toContain('[sandbox] uid');
      expect(text).not.toContain('RAN-2');
    },
  );
});
