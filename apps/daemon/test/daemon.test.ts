import { promises as fs } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cleanup,
  reapLater,
  spawnTsx,
  tempDir,
  testAgentPath,
  waitFor,
  within,
} from '@pit/test-kit';
import { readHeartbeat } from '@pit/cell-spec';
import { afterEach, describe, expect, it } from 'vitest';
import { connectBus } from '@pit/mission-bus';
import { sweepOnce } from '../src/daemon.js';
import { readDaemonFile } from '../src/daemon-file.js';
import type { FleetStatus } from '../src/supervisor.js';
import { makeCell } from './helpers.js';
import { cellEvents, storyOf } from './fleet.js';
import { readAgentStates } from '../src/state-store.js';

/** The daemon's records of a cell's agents (its state directory is `state/` beside `missions/`). */
const daemonState = (cellDir: string) =>
  readAgentStates(join(cellDir, '..', '..', 'state'), cellDir);

const RUN_DAEMON = fileURLToPath(new URL('./fixtures/run-daemon.ts', import.meta.url));
const TOKEN = 'e2e-token-0123456789abcdef-0123456789abcdef';
const agentPids = new Set<number>();

afterEach(async () => {
  for (const pid of agentPids) reapLater(pid);
  agentPids.clear();
  await cleanup();
});

/** A private base dir with a cell and a pit.toml (mode 0600). */
async function setup(agents: string[], extra = '') {
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
    'heartbeat_stale_s = 15', // generous: a loaded 2-core machine delays heartbeats; deaths here are seen by the process probe
    'poll_interval_s = 0.2',
    'resurrect_after_s = 0',
    '[checkpoints]',
    'interval_s = 0',
    '[bus]',
    'listen = "127.0.0.1:0"',
    '[policy.defaults]',
    'backoff = { initial = "200ms", cap = "1s", jitter = 0 }',
    extra,
    ...agents.flatMap((name) => [
      `[agents.${name}]`,
      `argv = ["${process.execPath}", "${testAgentPath}"]`,
      'startup_grace_s = 10',
      'stop_grace_s = 2',
      `[agents.${name}.probes]`,
      'failure_threshold = 1',
    ]),
  ];
  const configPath = join(base, 'pit.toml');
  await fs.writeFile(configPath, lines.join('\n'), { mode: 0o600 });
  return { base, cell, configPath, lines };
}

/** Starts `pit daemon` in a child process and waits until it serves. */
async function startDaemon(configPath: string, args: string[] = []) {
  const child = spawnTsx(RUN_DAEMON, [configPath, ...args], {
    env: { ...process.env, PIT_TEST_TOKEN: TOKEN },
  });
  const ready = await waitFor(
    () => /^(READY|FAILED) .*$/m.exec(child.output())?.[0],
    30_000,
    'the daemon to start',
  );
  if (ready.startsWith('FAILED')) return { child, url: '', failed: ready };
  const url = ready.split(' ')[1]!;
  return { child, url, failed: undefined };
}

const getStatus = async (url: string) =>
  (await (await fetch(`${url}/api/status`)).json()) as FleetStatus;
const agentOf = async (url: string, name: string) =>
  (await getStatus(url)).agents.find((agent) => agent.agent === name);
const healthyAgent = (url: string, name: string, not?: number) =>
  waitFor(
    async () => {
      const agent = await agentOf(url, name);
      if (agent?.health === 'healthy' && agent.pid && agent.pid !== not) {
        agentPids.add(agent.pid);
        return agent;
      }
      return undefined;
    },
    30_000,
    `${name} healthy`,
  );
const exitOf = (child: ReturnType<typeof spawnTsx>) =>
  new Promise<number | null>((resolve) =>
    child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code)),
  );

describe('pit daemon (e2e, real processes)', () => {
  it('serves /health and /api/status, and an approval over HTTP needs the token and revives the agent', async () => {
    const { base, cell, configPath } = await setup(
      ['forge'],
      '[policy.agents.forge]\nmode = "ask"\napproval = { channels = ["http"], timeout = "10m" }',
    );
    const daemon = await startDaemon(configPath);
    expect(daemon.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(((await (await fetch(`${daemon.url}/health`)).json()) as { ok: boolean }).ok).toBe(true);
    // Where it listens (an ephemeral port here) is recorded for `pit approve`.
    const recorded = await readDaemonFile(join(base, 'state'));
    expect(recorded).toMatchObject({
      url: daemon.url,
      bus_url: expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+/),
      started_at: expect.any(String),
    });
    expect(() => process.kill(recorded!.pid, 0)).not.toThrow();
    const forge = await healthyAgent(daemon.url, 'forge');
    process.kill(forge.pid!, 'SIGKILL');
    const approval = await waitFor(
      async () => (await agentOf(daemon.url, 'forge'))?.pending_approval,
      20_000,
      'an approval request',
    );
    const post = (headers: Record<string, string>, body: unknown = {}) =>
      fetch(`${daemon.url}/api/approvals/${approval}/approve`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
      });
    expect((await post({})).status).toBe(401);
    expect((await post({ authorization: 'Bearer not-the-token' })).status).toBe(401);
    // Who decided is the token's identity: a claimed `by` is refused.
    expect((await post({ authorization: `Bearer ${TOKEN}` }, { by: 'e2e' })).status).toBe(400);
    expect((await agentOf(daemon.url, 'forge'))?.pid).toBeUndefined();
    expect((await post({ authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    await healthyAgent(daemon.url, 'forge', forge.pid);
    const story = await waitFor(
      async () => {
        const kinds = await storyOf(cell.dir, 'forge');
        return ['revive_requested', 'revive_approved', 'agent_revived'].every((kind) =>
          kinds.includes(kind),
        )
          ? kinds
          : undefined;
      },
      10_000,
      'the approval story in the log',
    );
    expect(story).toEqual(
      expect.arrayContaining(['revive_requested', 'revive_approved', 'agent_revived']),
    );
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toContain('pit_approvals_total{outcome="approved"} 1');
    expect(metrics).toMatch(/pit_agents\{state="healthy"\} 1/);
    // The daemon's own memory (heap used, resident, heap limit), for an operator sizing the host.
    const memory = Object.fromEntries(
      [...metrics.matchAll(/^pit_daemon_memory_bytes\{kind="(\w+)"\} (\d+)$/gm)].map((match) => [
        match[1],
        Number(match[2]),
      ]),
    );
    expect(memory.heap_used).toBeGreaterThan(0);
    expect(memory.resident).toBeGreaterThan(memory.heap_used!);
    expect(memory.heap_limit).toBeGreaterThan(memory.heap_used!);
    daemon.child.kill('SIGTERM');
    expect(await within(exitOf(daemon.child), 20_000, 'daemon exit')).toBe(0);
    expect(await readDaemonFile(join(base, 'state'))).toBeUndefined();
  });

  it('registers each agent on its mission bus: the credentials in its environment let it publish', async () => {
    const { cell, configPath } = await setup(['forge']);
    const daemon = await startDaemon(configPath);
    const forge = await healthyAgent(daemon.url, 'forge');
    const environ = Object.fromEntries(
      (await fs.readFile(`/proc/${forge.pid}/environ`, 'utf8'))
        .split('\0')
        .filter(Boolean)
        .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
    );
    expect(environ.LAZARUS_BUS_URL).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    expect(environ.LAZARUS_BUS_MISSION).toBe(cell.uuid);
    const client = await connectBus({
      url: environ.LAZARUS_BUS_URL!,
      mission: environ.LAZARUS_BUS_MISSION!,
      participant: 'forge',
      token: environ.LAZARUS_BUS_TOKEN!,
      reconnect: false,
    });
    try {
      const ack = await client.publish({ topic: 'status', payload: { text: 'hello from forge' } });
      expect(ack.seq).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
    await expect(
      connectBus({
        url: environ.LAZARUS_BUS_URL!,
        mission: cell.uuid,
        participant: 'forge',
        token: 'wrong',
        reconnect: false,
        connectTimeoutMs: 3000,
      }),
    ).rejects.toThrow();
    daemon.child.kill('SIGTERM');
    await within(exitOf(daemon.child), 20_000, 'daemon exit');
  });

  it('never writes a secret into its log file: inline env and argv secrets, env_from and token values are redacted', async () => {
    const secrets = {
      aws: 'aws-secret-0123456789abcdef',
      database: 'db-password-0123456789',
      token: 'api-token-0123456789abcdef',
      password: 'cli-password-0123456789',
      fromEnv: 'env-from-secret-0123456789',
    };
    const { base, configPath, lines } = await setup(['forge']);
    const config = lines
      .join('\n')
      .replace('log_level = "debug"', 'log_level = "debug"\nlog_file = "pit.log"')
      .replace(
        `argv = ["${process.execPath}", "${testAgentPath}"]`,
        [
          `argv = ["${process.execPath}", "${testAgentPath}", "--api-token=${secrets.token}", "--password", "${secrets.password}", "--db", "postgres://admin:${secrets.database}@db.example/app"]`,
          `env = { AWS_SECRET_ACCESS_KEY = "${secrets.aws}", DATABASE_URL = "postgres://admin:${secrets.database}@db.example:5432/app" }`,
          'env_from = ["AGENT_SECRET"]',
        ].join('\n'),
      );
    await fs.writeFile(configPath, config, { mode: 0o600 });
    const child = spawnTsx(RUN_DAEMON, [configPath], {
      env: { ...process.env, PIT_TEST_TOKEN: TOKEN, AGENT_SECRET: secrets.fromEnv },
    });
    const ready = await waitFor(
      () => /^(READY|FAILED) .*$/m.exec(child.output())?.[0],
      30_000,
      'the daemon to start',
    );
    expect(ready).toMatch(/^READY /);
    await healthyAgent(ready.split(' ')[1]!, 'forge');
    const log = await fs.readFile(join(base, 'pit.log'), 'utf8');
    expect(log).toContain('config value looks like a secret; use env_from');
    expect(log).toContain('agent process started');
    expect(log).toContain('--api-token=[redacted]');
    for (const value of [...Object.values(secrets), TOKEN]) {
      expect(log).not.toContain(value);
      expect(child.output()).not.toContain(value);
    }
    child.kill('SIGTERM');
    await within(exitOf(child), 20_000, 'daemon exit');
  });

  it('refuses a second daemon on the same state dir, naming the holder’s pid', async () => {
    const { configPath } = await setup(['forge']);
    const first = await startDaemon(configPath);
    await healthyAgent(first.url, 'forge');
    const second = await startDaemon(configPath);
    expect(second.failed).toMatch(
      new RegExp(`FAILED DAEMON_LOCKED another pit daemon \\(pid ${first.child.pid}`),
    );
    expect(await within(exitOf(second.child), 20_000, 'second daemon exit')).toBe(2);
    first.child.kill('SIGTERM');
    await within(exitOf(first.child), 20_000, 'daemon exit');
  });

  it('on a busy HTTP port fails to start before starting any agent, naming the port', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as AddressInfo;
    try {
      const { base, cell, lines } = await setup(['forge']);
      const configPath = join(base, 'busy.toml');
      await fs.writeFile(
        configPath,
        lines
          .join('\n')
          .replace('listen = "127.0.0.1:0"\ntoken_env', `listen = "127.0.0.1:${port}"\ntoken_env`),
        { mode: 0o600 },
      );
      const daemon = await startDaemon(configPath);
      expect(daemon.failed).toMatch(
        new RegExp(`FAILED DAEMON_HTTP cannot listen on 127\\.0\\.0\\.1:${port}`),
      );
      expect(await within(exitOf(daemon.child), 20_000, 'daemon exit')).toBe(2);
      expect((await daemonState(cell.dir)).agents.forge?.pid).toBeUndefined();
      // No process runs in the cell (an agent runs in its workspace).
      const inCell: number[] = [];
      for (const pid of (await fs.readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
        const cwd = await fs.readlink(`/proc/${pid}/cwd`).catch(() => '');
        if (cwd.startsWith(cell.dir)) inCell.push(Number(pid));
      }
      for (const pid of inCell) reapLater(pid);
      expect(inCell).toEqual([]);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });

  it('after a SIGKILL of the daemon, a new one re-adopts running agents (no double start) and a pending approval stays pending', async () => {
    const { cell, configPath } = await setup(
      ['forge', 'anvil'],
      '[policy.agents.anvil]\nmode = "ask"\napproval = { channels = ["http"], timeout = "10m" }',
    );
    const first = await startDaemon(configPath);
    const forge = await healthyAgent(first.url, 'forge');
    const anvil = await healthyAgent(first.url, 'anvil');
    process.kill(anvil.pid!, 'SIGKILL');
    const approval = await waitFor(
      async () => (await agentOf(first.url, 'anvil'))?.pending_approval,
      20_000,
      'an approval request',
    );
    await waitFor(
      async () => (await daemonState(cell.dir)).agents.anvil?.pending_approval === approval,
      10_000,
      'the approval persisted',
    );
    process.kill(-first.child.pid!, 'SIGKILL');
    await within(exitOf(first.child), 10_000, 'daemon killed');
    // The agent outlived its daemon.
    expect(() => process.kill(forge.pid!, 0)).not.toThrow();
    const second = await startDaemon(configPath);
    expect(second.failed).toBeUndefined();
    const again = await healthyAgent(second.url, 'forge');
    expect(again.pid).toBe(forge.pid);
    const anvilNow = await agentOf(second.url, 'anvil');
    expect(anvilNow).toMatchObject({ health: 'dead', pending_approval: approval });
    expect((await getStatus(second.url)).approvals.map((item) => item.id)).toEqual([approval]);
    const story = await storyOf(cell.dir, 'forge');
    expect(story.filter((kind) => kind === 'agent_started')).toHaveLength(1);
    expect(story).not.toContain('agent_revived');
    expect(
      (await storyOf(cell.dir, 'anvil')).filter((kind) => kind === 'revive_requested'),
    ).toHaveLength(1);
    second.child.kill('SIGTERM');
    await within(exitOf(second.child), 20_000, 'daemon exit');
    // SIGTERM leaves the fleet running.
    expect(() => process.kill(forge.pid!, 0)).not.toThrow();
  });

  it('reloads on SIGHUP: an invalid config is rejected and the old one stays; a valid one adds an agent', async () => {
    const { cell, configPath, lines } = await setup(['forge']);
    const daemon = await startDaemon(configPath);
    await healthyAgent(daemon.url, 'forge');
    await fs.writeFile(configPath, `${lines.join('\n')}\n[agents.forge.probez]\n`, { mode: 0o600 });
    daemon.child.kill('SIGHUP');
    await waitFor(
      () => daemon.child.output().includes('new config rejected'),
      20_000,
      'the rejection',
    );
    expect(daemon.child.output()).toContain('agents.forge.probez: unknown key');
    expect((await agentOf(daemon.url, 'forge'))?.health).toBe('healthy');
    // A valid config that adds an agent to the cell's manifest and to the config.
    const { updateManifest } = await import('@pit/cell-spec');
    await updateManifest(cell.dir, (manifest) => {
      manifest.agents.push({ name: 'anvil', role: 'write', joined_at: new Date().toISOString() });
    });
    await fs.writeFile(
      configPath,
      [
        ...lines,
        '[agents.anvil]',
        `argv = ["${process.execPath}", "${testAgentPath}"]`,
        // Granted by the config: a name in cell.json alone no longer runs an agent (#13).
        `cells = ["${cell.uuid}"]`,
        'startup_grace_s = 10',
      ].join('\n'),
      { mode: 0o600 },
    );
    daemon.child.kill('SIGHUP');
    await healthyAgent(daemon.url, 'anvil');
    // A changed agent config is noticed at the next reload; an unchanged one is not.
    const anvil = [
      '[agents.anvil]',
      `argv = ["${process.execPath}", "${testAgentPath}"]`,
      `cells = ["${cell.uuid}"]`,
    ];
    await fs.writeFile(configPath, [...lines, ...anvil, 'startup_grace_s = 12'].join('\n'), {
      mode: 0o600,
    });
    daemon.child.kill('SIGHUP');
    const changed = () =>
      daemon.child
        .output()
        .split('\n')
        .filter((line) => line.includes('agent config changed'));
    await waitFor(() => changed().length > 0, 20_000, 'the changed config noticed');
    expect(changed()).toHaveLength(1);
    expect(changed()[0]).toContain(`${cell.uuid}/anvil`);
    daemon.child.kill('SIGTERM');
    await within(exitOf(daemon.child), 20_000, 'daemon exit');
  });

  it('stops the agents on exit with --stop-agents-on-exit', async () => {
    const { configPath } = await setup(['forge']);
    const daemon = await startDaemon(configPath, ['--stop-agents-on-exit']);
    const forge = await healthyAgent(daemon.url, 'forge');
    daemon.child.kill('SIGTERM');
    expect(await within(exitOf(daemon.child), 20_000, 'daemon exit')).toBe(0);
    expect(() => process.kill(forge.pid!, 0)).toThrow();
  });
});

describe('sweepOnce (cron one-shot)', () => {
  it('starts a new agent once and does not judge it within its startup grace; the next sweep sees it healthy with the same pid', async () => {
    const { cell, configPath } = await setup(['forge']);
    const quiet = { stream: { write: () => true }, format: 'json' as const };
    const first = await sweepOnce({ configPath, log: quiet });
    expect(first.agents[0]?.key).toBe(`${cell.uuid}/forge`);
    // Within its startup grace the new agent is not judged dead: unknown, or healthy if its first heartbeat was already there.
    expect(['unknown', 'healthy']).toContain(first.agents[0]?.health);
    const pid = (await daemonState(cell.dir)).agents.forge!.pid!;
    agentPids.add(pid);
    await waitFor(
      async () =>
        (await fs
          .stat(join(cell.dir, '.lazarus', 'heartbeats', 'forge.json'))
          .catch(() => undefined)) !== undefined,
      10_000,
      'the first heartbeat',
    );
    const second = await sweepOnce({ configPath, log: quiet });
    expect(second.healthy).toBe(true);
    expect((await daemonState(cell.dir)).agents.forge!.pid).toBe(pid);
    expect(
      (await storyOf(cell.dir, 'forge')).filter(
        (kind) => kind === 'agent_started' || kind === 'agent_revived',
      ),
    ).toEqual(['agent_started']);
  });

  it('two sweeps in a row accumulate dead time, revive nothing twice, and refuse to run beside a daemon', async () => {
    const { cell, configPath, lines } = await setup(
      ['forge'],
      '[policy.agents.forge]\ndead_after = "1h"',
    );
    // dead_after delays only a death the Pit infers: here a heartbeat that goes stale (an exit it
    // sees is acted on at once). A short staleness and startup grace keep the test quick.
    await fs.writeFile(
      configPath,
      lines
        .map((line) =>
          line.startsWith('heartbeat_stale_s')
            ? 'heartbeat_stale_s = 1'
            : line.startsWith('startup_grace_s')
              ? 'startup_grace_s = 1'
              : line,
        )
        .join('\n'),
      { mode: 0o600 },
    );
    // First sweep: the agent is seen for the first time and started.
    const first = await sweepOnce({
      configPath,
      env: { ...process.env },
      log: { stream: { write: () => true }, format: 'json' },
    });
    expect(first.agents.map((agent) => agent.key)).toEqual([`${cell.uuid}/forge`]);
    const pid = (await daemonState(cell.dir)).agents.forge!.pid!;
    agentPids.add(pid);
    // Alive but silent: once it has beaten, the process stays and its heartbeat goes stale (past
    // the 1 s and the grace).
    await waitFor(
      async () => (await readHeartbeat(cell.dir, 'forge').catch(() => undefined))?.pid === pid,
      20_000,
      'the first heartbeat',
    );
    process.kill(pid, 'SIGSTOP');
    const startedAt = Date.now();
    await waitFor(
      async () => {
        const beat = await readHeartbeat(cell.dir, 'forge').catch(() => undefined);
        const age = beat ? Date.now() - beat.timestamp * 1000 : 0;
        return age > 1_500 && Date.now() - startedAt > 1_500;
      },
      10_000,
      'the heartbeat stale',
    );
    const second = await sweepOnce({
      configPath,
      env: { ...process.env },
      log: { stream: { write: () => true }, format: 'json' },
    });
    expect(second.healthy).toBe(false);
    const afterSecond = (await daemonState(cell.dir)).agents.forge!;
    expect(afterSecond.health).toBe('dead');
    const firstDead = afterSecond.first_dead_at!;
    const third = await sweepOnce({
      configPath,
      env: { ...process.env },
      log: { stream: { write: () => true }, format: 'json' },
    });
    expect(third.healthy).toBe(false);
    const afterThird = (await daemonState(cell.dir)).agents.forge!;
    expect(afterThird.first_dead_at).toBe(firstDead);
    const waits = (await cellEvents(cell.dir)).filter(
      (event) => event.event === 'decision' && event.agent === 'forge',
    );
    expect(waits.at(-1)).toMatchObject({ action: 'wait', rule: 'dead_after' });
    expect(await storyOf(cell.dir, 'forge')).not.toContain('agent_revived');
    // Beside a running daemon, a sweep is refused.
    const daemon = await startDaemon(configPath);
    await expect(sweepOnce({ configPath, log: { stream: { write: () => true } } })).rejects.toThrow(
      /another pit daemon/,
    );
    daemon.child.kill('SIGTERM');
    await within(exitOf(daemon.child), 20_000, 'daemon exit');
  }, 90_000);
});
