import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { provisionCell } from '@pit/cell-spec';
import { readAgentStates } from '@pit/daemon';
import { freePort, reapLater, testAgentPath, waitFor } from '@pit/test-kit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const TOKEN = 'operator-token-0123456789-abcdef-0123456789';

let base: string;
const cleanups: Array<() => Promise<void> | void> = [];
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'pit-cli-controls-'));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  rmSync(base, { recursive: true, force: true });
});

/** The daemon's records of a cell's agents (its state directory is `state/` beside `missions/`). */
const daemonState = (cellDir: string) =>
  readAgentStates(join(cellDir, '..', '..', 'state'), cellDir);

/** Live processes whose environment marks them as `agent` of `cell` (the agent and anything it forked). */
function markedProcesses(cell: string, agent: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/\) [ZX] /.test(stat)) continue;
      if (
        environ.includes(`LAZARUS_CELL_UUID=${cell}`) &&
        environ.includes(`LAZARUS_AGENT=${agent}`)
      )
        found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

function writeConfig(port: number, agentLines: string[] = [], policy: string[] = []): string {
  const config = join(base, 'pit.toml');
  writeFileSync(
    config,
    [
      '[daemon]',
      'state_dir = "state"',
      // A daemon that leaves an agent running is slow to exit (issue #14, point 3): stop them.
      'stop_agents_on_exit = true',
      '[daemon.http]',
      `listen = "127.0.0.1:${port}"`,
      '[cells]',
      'root = "missions"',
      'heartbeat_stale_s = 5',
      'poll_interval_s = 0.2',
      '[checkpoints]',
      'interval_s = 0',
      '[bus]',
      'enabled = false',
      '[policy.defaults]',
      'backoff = { initial = "200ms", cap = "1s", jitter = 0 }',
      'rollback_before_restart = false',
      ...policy,
      '[agents.forge]',
      `argv = ["${process.execPath}", "${testAgentPath}"${agentLines.length ? `, ${agentLines.join(', ')}` : ''}]`,
      'startup_grace_s = 10',
      'stop_grace_s = 2',
    ].join('\n'),
  );
  chmodSync(config, 0o600);
  return config;
}

/** Starts `pit daemon` as a real process; resolves once its HTTP API answers. */
async function startDaemon(config: string, port: number): Promise<ChildProcess> {
  const daemon = spawn(
    process.execPath,
    [
      '--conditions=@pit/source',
      '--import',
      'tsx',
      bin,
      '--config',
      config,
      'daemon',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PIT_HTTP_TOKEN: TOKEN } },
  );
  let stderr = '';
  daemon.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const stop = async () => {
    if (daemon.exitCode !== null || daemon.signalCode !== null) return;
    const exited = new Promise((resolve) => daemon.once('exit', resolve));
    daemon.kill('SIGTERM');
    await exited;
  };
  cleanups.push(stop);
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.ok,
    30_000,
    'the daemon answering',
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n${stderr}`);
  });
  return daemon;
}

async function stopDaemon(daemon: ChildProcess): Promise<void> {
  if (daemon.exitCode !== null || daemon.signalCode !== null) return;
  const exited = new Promise((resolve) => daemon.once('exit', resolve));
  daemon.kill('SIGTERM');
  await exited;
}

/** A POST with a chosen Host header and authorization. */
function post(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const call = request({ host: '127.0.0.1', port, path, method: 'POST', headers }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    call.on('error', reject);
    call.end('{}');
  });
}

const env = { PIT_HTTP_TOKEN: TOKEN };

describe('pit restart, stop, start, reset, reload with a daemon running', () => {
  it('restarts to a new pid with one process, stops across a daemon restart, starts again; refuses without the token; why tells every control', async () => {
    const { dir, manifest } = await provisionCell(join(base, 'missions'), {
      mission: 'forging',
      created_by: 'test',
      agents: [{ name: 'forge', role: 'lead' }],
    });
    const uuid = manifest.uuid;
    const port = await freePort();
    const config = writeConfig(port);
    let daemon = await startDaemon(config, port);
    const healthyPid = (not?: number) =>
      waitFor(
        async () => {
          const agent = (await daemonState(dir).catch(() => undefined))?.agents.forge;
          return agent?.health === 'healthy' && agent.pid && agent.pid !== not
            ? agent.pid
            : undefined;
        },
        30_000,
        'forge healthy',
      );
    const first = await healthyPid();
    reapLater(first);

    // Refused: no token, a wrong token, a Host that does not name the daemon.
    const noToken = await pit(['--config', config, 'restart', 'forge'], {
      env: { PIT_HTTP_TOKEN: '' },
    });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('PIT_HTTP_TOKEN');
    const wrongToken = await pit(['--config', config, 'restart', 'forge'], {
      env: { PIT_HTTP_TOKEN: 'not-the-token-0123456789-abcdef-0123456789' },
    });
    expect(wrongToken.code).toBe(1);
    expect(wrongToken.stderr).toMatch(/refused the token/);
    const path = `/api/agents/${encodeURIComponent(`${uuid}/forge`)}/stop`;
    expect((await post(port, path, { host: `127.0.0.1:${port}` })).status).toBe(401);
    expect(
      (await post(port, path, { host: `127.0.0.1:${port}`, authorization: 'Bearer nope' })).status,
    ).toBe(401);
    expect(
      (await post(port, path, { host: `evil.example:${port}`, authorization: `Bearer ${TOKEN}` }))
        .status,
    ).toBe(421);
    expect((await post(port, '/api/reload', { host: `127.0.0.1:${port}` })).status).toBe(401);
    expect(markedProcesses(uuid, 'forge')).toEqual([first]);

    // Restart: a new pid, and one process.
    const restarted = await pit(
      ['--config', config, 'restart', 'forge', '--reason', 'new prompt'],
      { env },
    );
    expect(restarted.stderr).toBe('');
    expect(restarted.code).toBe(0);
    expect(restarted.stdout).toContain(`pid ${first} →`);
    const second = await healthyPid(first);
    reapLater(second);
    expect(markedProcesses(uuid, 'forge')).toEqual([second]);

    // Stop: the process goes, the agent shows as stopped, and stays down across a daemon restart.
    const stopped = await pit(['--config', config, 'stop', `${uuid.slice(0, 8)}/forge`], { env });
    expect(stopped.code).toBe(0);
    await waitFor(() => markedProcesses(uuid, 'forge').length === 0, 10_000, 'forge stopped');
    const status = await pit(['--config', config, 'status', '--json']);
    const shown = (
      JSON.parse(status.stdout) as { agents: Array<{ agent: string; health: string }> }
    ).agents;
    expect(shown.find((agent) => agent.agent === 'forge')?.health).toBe('stopped');
    expect(status.code).toBe(0);
    await stopDaemon(daemon);
    daemon = await startDaemon(config, port);
    // The daemon took its agents up before it answered: a start would be visible now.
    expect(markedProcesses(uuid, 'forge')).toEqual([]);
    expect((await daemonState(dir)).agents.forge?.stopped?.by).toBe('operator');

    // Start: back again.
    const started = await pit(['--config', config, 'start', 'forging/forge'], { env });
    expect(started.code).toBe(0);
    const third = await healthyPid(second);
    reapLater(third);
    expect((await daemonState(dir)).agents.forge?.stopped).toBeUndefined();
    expect(markedProcesses(uuid, 'forge')).toEqual([third]);

    // Reload: through the API, recorded in the host log.
    const reloaded = await pit(['--config', config, 'reload'], { env });
    expect(reloaded.code).toBe(0);
    expect(reloaded.stdout).toContain('config reloaded');
    const hostLog = readFileSync(join(base, 'state', 'logs', 'events.jsonl'), 'utf8');
    expect(hostLog).toMatch(/"event":"config_reloaded".*"by":"operator".*"via":"http"/);

    const why = await pit(['--config', config, 'why', 'forge', '--last', '10']);
    expect(why.code).toBe(0);
    expect(why.stdout).toContain('restart by operator via http: new prompt');
    expect(why.stdout).toContain('stop by operator via http');
    expect(why.stdout).toContain('start by operator via http');
    await stopDaemon(daemon);
  }, 180_000);

  it('reset after an escalation makes a crash-looping agent restartable again', async () => {
    const { dir } = await provisionCell(join(base, 'missions'), {
      mission: 'looping',
      created_by: 'test',
      agents: [{ name: 'forge', role: 'lead' }],
    });
    const port = await freePort();
    const config = writeConfig(
      port,
      ['"--exit-after"', '"300"'],
      ['restart_intensity = { max_restarts = 2, window = "10m" }'],
    );
    const daemon = await startDaemon(config, port);
    const events = () =>
      readFileSync(join(dir, 'logs', 'events.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { event: string; action?: string });
    await waitFor(
      () => events().some((event) => event.event === 'decision' && event.action === 'escalate'),
      30_000,
      'the escalation',
    );
    const revivedBefore = events().filter((event) => event.event === 'agent_revived').length;
    const reset = await pit(['--config', config, 'reset', 'forge'], { env });
    expect(reset.stderr).toBe('');
    expect(reset.code).toBe(0);
    expect(reset.stdout).toContain('restart budget');
    await waitFor(
      () => events().filter((event) => event.event === 'agent_revived').length > revivedBefore,
      30_000,
      'a revive after the reset',
    );
    const kinds = events().map(
      (event) => `${event.event}${event.action ? `:${event.action}` : ''}`,
    );
    expect(kinds.indexOf('agent_control:reset')).toBeGreaterThan(
      kinds.indexOf('decision:escalate'),
    );
    await stopDaemon(daemon);
    for (const pid of markedProcesses(
      JSON.parse(readFileSync(join(dir, 'cell.json'), 'utf8')).uuid,
      'forge',
    ))
      reapLater(pid);
  }, 120_000);
});

describe('pit stop and start with no daemon running', () => {
  it('records them in the state directory and the next sweep honours them; an ambiguous name is refused with its candidates', async () => {
    const { dir, manifest } = await provisionCell(join(base, 'missions'), {
      mission: 'offline',
      created_by: 'test',
      agents: [{ name: 'forge', role: 'lead' }],
    });
    const port = await freePort();
    // The agent ends by itself, so that a sweep that waits for what it started still ends.
    const config = writeConfig(port, ['"--exit-after"', '"4000"']);
    const stopped = await pit(['--config', config, 'stop', 'forge', '--reason', 'maintenance']);
    expect(stopped.stderr).toBe('');
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toContain('recorded');
    expect((await daemonState(dir)).agents.forge?.stopped?.reason).toBe('maintenance');
    const sweep = await pit(['--config', config, 'sweep', '--once', '--json']);
    expect(sweep.code).toBe(0);
    expect(markedProcesses(manifest.uuid, 'forge')).toEqual([]);
    expect(JSON.parse(sweep.stdout).agents[0].action).toBe('stopped');

    const started = await pit(['--config', config, 'start', 'forge']);
    expect(started.code).toBe(0);
    expect((await daemonState(dir)).agents.forge?.requested?.action).toBe('start');
    const second = await pit(['--config', config, 'sweep', '--once']);
    expect(second.stderr).not.toMatch(/Error/);
    const after = await daemonState(dir);
    expect(after.agents.forge?.stopped).toBeUndefined();
    expect(after.agents.forge?.requested).toBeUndefined();
    const log = readFileSync(join(dir, 'logs', 'events.jsonl'), 'utf8');
    expect(log).toMatch(/"event":"agent_control".*"action":"stop".*"pending":true/);
    expect(log).toContain('"event":"agent_started"');
    if (after.agents.forge?.pid) reapLater(after.agents.forge.pid);

    const why = await pit(['--config', config, 'why', 'forge']);
    expect(why.stdout).toContain('stop by');
    expect(why.stdout).toContain('maintenance');

    // A second cell the operator lets forge run in (a cell made later is not granted by itself).
    const secondCell = await provisionCell(join(base, 'missions'), {
      mission: 'second',
      created_by: 'test',
      agents: [],
    });
    const joined = await pit([
      '--config',
      config,
      'cell',
      'join',
      secondCell.manifest.uuid,
      'forge',
    ]);
    expect(joined.stderr).toBe('');
    expect(joined.code).toBe(0);
    const ambiguous = await pit(['--config', config, 'stop', 'forge']);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toContain('names 2 agents');
    expect(ambiguous.stderr).toContain(manifest.uuid);
    expect(ambiguous.stderr).toContain('mission second');
  }, 120_000);
});
