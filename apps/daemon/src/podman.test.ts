import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup, reapLater, tempDir, waitFor, within } from '@pit/test-kit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { agentEnv, makeCell, script } from '../test/helpers.js';
import { createExecutor, type Executor } from './executor.js';
import { CONTAINERS_CONF, createPodman, DEFAULT_AGENT_IMAGE, podmanAvailable } from './podman.js';

const availability = await podmanAvailable('podman', process.env);
const reason = availability.ok
  ? availability.version
  : `skipped: ${availability.reason}; install with apps/daemon/ISOLATION.md`;
if (!availability.ok) console.warn(`isolation level 3 tests ${reason}`);

let executor: Executor | undefined;
afterEach(async () => {
  for (const agent of executor?.running() ?? []) reapLater(agent.pid);
  executor = undefined;
  await cleanup();
});
afterAll(async () => {
  // Rootless podman leaves a pause process holding its user namespace: stop it.
  const runtimeDir = process.env.XDG_RUNTIME_DIR;
  if (!runtimeDir || process.getuid?.() === 0) return;
  const pid = Number(
    (
      await fs.readFile(join(runtimeDir, 'libpod', 'tmp', 'pause.pid'), 'utf8').catch(() => '')
    ).trim(),
  );
  if (pid > 1) process.kill(pid, 'SIGKILL');
});

describe('createPodman', () => {
  it('builds the podman run command line with only the cell mounted, no network, env by name only', async () => {
    const dir = await tempDir();
    const podman = createPodman({ configDir: dir, env: {} });
    const argv = podman.runArgv({
      name: 'pit-forge-1',
      writable: ['/cells/x'],
      readonly: ['/opt/tools'],
      workdir: '/cells/x/workspace',
      envNames: ['API_KEY'],
      argv: ['sh', 'agent.sh'],
    });
    expect(argv).toEqual(
      expect.arrayContaining([
        'run',
        '--rm',
        '--read-only',
        '--network',
        'none',
        '--volume',
        '/cells/x:/cells/x:rw',
        '--volume',
        '/opt/tools:/opt/tools:ro',
        '--env',
        'API_KEY',
      ]),
    );
    expect(argv.slice(-3)).toEqual([DEFAULT_AGENT_IMAGE, 'sh', 'agent.sh']);
    expect(podman.env.CONTAINERS_CONF).toBe(join(dir, 'containers.conf'));
    expect(
      podman
        .runArgv({
          name: 'n',
          image: 'rootfs:/srv/rootfs',
          writable: [],
          workdir: '/',
          envNames: [],
          network: 'host',
          argv: ['true'],
        })
        .slice(-3),
    ).toEqual(['--rootfs', '/srv/rootfs', 'true']);
  });
});

describe('isolation level 3 (Podman)', () => {
  it.skipIf(!availability.ok)(
    `runs the agent in a container that sees only its cell (${reason})`,
    async () => {
      const cell = await makeCell([{ name: 'forge' }]);
      const configDir = await tempDir('pit-podman-');
      const agentScript = await script(
        join(cell.dir, 'workspace', 'agent.sh'),
        [
          'echo "cwd=$(pwd) cell=$LAZARUS_CELL_UUID secret=$PIT_TEST_SECRET"',
          'echo inside > from-container.txt && echo "wrote workspace"',
          `for target in cell.json logs/events.jsonl .lazarus/state.json checkpoints/x bus/x; do (echo x >> ${cell.dir}/$target) 2>&1 | grep -q 'Read-only file system' && echo "refused $target"; done`,
          `echo '{}' > ${cell.dir}/.lazarus/heartbeats/forge.json && echo "wrote heartbeat"`,
          'echo x > /etc/escape 2>/dev/null && echo "WROTE /etc" || echo "etc refused"',
          'test -e /etc/debian_version && echo "HOST /etc VISIBLE" || echo "host /etc not visible"',
          `test -e ${process.cwd()} && echo "HOST PATH VISIBLE" || echo "host paths not visible"`,
          'echo "procs: $(ls /proc | grep -cE "^[0-9]+$")"',
          'echo "links: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\\n" " ")"',
        ].join('\n'),
      );
      executor = createExecutor({ env: process.env, podmanConfigDir: configDir });
      const agent = await executor.start({
        agent: 'forge',
        argv: ['sh', agentScript],
        env: { ...agentEnv(), PIT_TEST_SECRET: 's3cret-value' },
        cell,
        isolation: { level: 3 },
      });
      reapLater(agent.pid);
      expect(agent.container).toBe(`pit-forge-${cell.uuid.slice(0, 8)}`);
      const exit = await within(agent.exited, 60_000, 'container agent');
      const log = await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8');
      expect(exit.code, log).toBe(0);
      expect(log).toContain(
        `cwd=${join(cell.dir, 'workspace')} cell=${cell.uuid} secret=s3cret-value`,
      );
      expect(log).toContain('wrote workspace');
      // The cell is read-only but for workspace/ and .lazarus/heartbeats/ (#13).
      for (const target of [
        'cell.json',
        'logs/events.jsonl',
        '.lazarus/state.json',
        'checkpoints/x',
        'bus/x',
      ])
        expect(log).toContain(`refused ${target}`);
      expect(log).toContain('wrote heartbeat');
      expect(log).toContain('etc refused');
      expect(log).toContain('host /etc not visible');
      expect(log).toContain('host paths not visible');
      expect(Number(/procs: (\d+)/.exec(log)?.[1])).toBeLessThan(8);
      expect(log).toMatch(/links: lo \n/);
      expect(await fs.readFile(join(cell.dir, 'workspace', 'from-container.txt'), 'utf8')).toBe(
        'inside\n',
      );
      expect(await fs.readFile(join(configDir, 'containers.conf'), 'utf8')).toBe(CONTAINERS_CONF);
      // The secret went in through the environment, never on the command line.
      const argvSeen = log.split('\n')[0] ?? '';
      expect(argvSeen).not.toContain('s3cret-value');
    },
  );

  it.skipIf(!availability.ok)(
    `stops a containerised agent with SIGTERM forwarded to it (${reason})`,
    async () => {
      const cell = await makeCell([{ name: 'forge' }]);
      const configDir = await tempDir('pit-podman-');
      const agentScript = await script(
        join(cell.dir, 'workspace', 'agent.sh'),
        'trap "echo got TERM; exit 0" TERM\necho ready\nwhile :; do sleep 0.1; done',
      );
      executor = createExecutor({
        env: process.env,
        podmanConfigDir: configDir,
        stopGraceMs: 20_000,
      });
      const agent = await executor.start({
        agent: 'forge',
        argv: ['sh', agentScript],
        env: agentEnv(),
        cell,
        isolation: { level: 3 },
      });
      reapLater(agent.pid);
      await waitFor(
        async () =>
          (await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8')).includes('ready'),
        60_000,
        'container ready',
      );
      const exit = await within(executor.stop(agent), 30_000, 'stop container');
      expect(exit.code).toBe(0);
      expect(await fs.readFile(join(cell.dir, 'logs', 'forge.log'), 'utf8')).toContain('got TERM');
    },
  );
});
