import { chmodSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { provisionCell } from '@pit/cell-spec';
import {
  cleanup,
  freePort,
  isGone,
  reapLater,
  spawnTsx,
  tempDir,
  testAgentPath,
  waitFor,
  within,
} from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

// What `pit status` shows of an agent waiting for a human and then denied, read from what a real
// daemon wrote: no pid for a dead agent, the request under APPROVAL (never its expiry under
// BACKOFF) only while it waits, times in the JSON as ISO strings, and cell ids other commands take.

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const TOKEN = 'the-operators-token-0123456789abcdef-0123';

afterEach(cleanup);

type StatusJson = {
  agents: Array<{ agent: string; health: string; pid?: number; pending_approval?: string }>;
  approvals: Array<{ id: string }>;
};

/** Every field holding a time, as [path, value], anywhere in `value`. */
function times(value: unknown, path = ''): Array<[string, unknown]> {
  if (Array.isArray(value)) return value.flatMap((item, index) => times(item, `${path}[${index}]`));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, item]): Array<[string, unknown]> =>
    /(_at|_until|^since|^ts)$/.test(key)
      ? [[`${path}.${key}`, item]]
      : times(item, `${path}.${key}`),
  );
}

/** The table row of `agent` in `pit status`, split into its columns. */
function row(table: string, agent: string): Record<string, string> {
  const lines = table.split('\n');
  const header = lines.find((line) => line.startsWith('CELL'))!;
  const line = lines.find((candidate) => candidate.split(/\s{2,}/)[1] === agent)!;
  const names = header.split(/\s{2,}/);
  const cells = line.split(/\s{2,}/);
  return Object.fromEntries(names.map((name, index) => [name, cells[index] ?? '']));
}

describe('pit status', () => {
  it('shows a dead agent without its old pid, its pending request under APPROVAL only while it waits, and ISO times in --json', async () => {
    const base = await tempDir('pit-cli-status-');
    const { manifest } = await provisionCell(join(base, 'missions'), {
      mission: 'archive',
      created_by: 'test',
      agents: [{ name: 'ezra', role: 'lead' }],
    });
    const config = join(base, 'pit.toml');
    writeFileSync(
      config,
      [
        '[daemon]',
        'state_dir = "state"',
        'stop_agents_on_exit = true',
        '[daemon.http]',
        `listen = "127.0.0.1:${await freePort()}"`,
        '[cells]',
        'root = "missions"',
        'heartbeat_stale_s = 15',
        'poll_interval_s = 0.2',
        '[checkpoints]',
        'interval_s = 0',
        '[bus]',
        'enabled = false',
        '[policy.defaults]',
        'mode = "ask"',
        'approval = { channels = ["cli", "http"], timeout = "30m", on_timeout = "record_only" }',
        '[agents.ezra]',
        `argv = ["${process.execPath}", "${testAgentPath}"]`,
        'startup_grace_s = 10',
        'stop_grace_s = 2',
      ].join('\n'),
    );
    chmodSync(config, 0o600);
    const env = { ...process.env, PIT_HTTP_TOKEN: TOKEN };
    const daemon = spawnTsx(bin, ['--config', config, 'daemon', '--log-level', 'warn'], { env });
    const status = async () => {
      const result = await pit(['--config', config, 'status', '--json']);
      return { ...result, json: JSON.parse(result.stdout) as StatusJson };
    };
    const ezra = async () => (await status()).json.agents.find((agent) => agent.agent === 'ezra');

    const pid = await waitFor(
      async () => {
        const agent = await ezra();
        return agent?.health === 'healthy' ? agent.pid : undefined;
      },
      30_000,
      'ezra healthy',
    );
    process.kill(pid, 'SIGKILL');
    const approval = await waitFor(
      async () => (await ezra())?.pending_approval,
      30_000,
      'a request',
    );

    const asked = await status();
    expect(asked.json.agents[0]).toMatchObject({ health: 'dead', pending_approval: approval });
    expect(asked.json.agents[0]!.pid).toBeUndefined();
    expect(asked.json.approvals.map((item) => item.id)).toEqual([approval]);
    const shown = times(asked.json);
    expect(shown.map(([path]) => path)).toEqual(
      expect.arrayContaining(['.approvals[0].requested_at', '.approvals[0].expires_at']),
    );
    for (const [path, value] of shown)
      expect(
        typeof value === 'string' && new Date(value).toISOString() === value,
        `${path}: ${String(value)}`,
      ).toBe(true);
    const table = (await pit(['--config', config, 'status'])).stdout;
    expect(row(table, 'ezra')).toMatchObject({
      CELL: manifest.uuid.slice(0, 8),
      HEALTH: 'dead',
      PID: '-',
      BACKOFF: '-',
      APPROVAL: approval,
    });

    const denied = await pit(['--config', config, 'deny', approval, '--reason', 'not now'], {
      env,
    });
    expect(denied.code, denied.stderr).toBe(0);
    await waitFor(async () => (await ezra())?.pending_approval === undefined, 20_000, 'no request');
    const after = (await pit(['--config', config, 'status'])).stdout;
    expect(row(after, 'ezra')).toMatchObject({ HEALTH: 'dead', PID: '-', APPROVAL: '-' });
    expect((await status()).json.approvals).toEqual([]);
    // The reason given with the answer is part of the story.
    const why = await pit(['--config', config, 'why', 'ezra']);
    expect(why.stdout).toMatch(/denied by .* via http: not now/);

    // The short cell id it prints is what the commands taking a CELL take.
    const tail = await pit(['--config', config, 'bus', 'tail', manifest.uuid.slice(0, 8)]);
    expect(tail.code, tail.stderr).toBe(0);
    expect(tail.stderr).toContain(`cell ${manifest.uuid}: no bus events`);
    const list = await pit(['--config', config, 'checkpoint', 'list', manifest.uuid.slice(0, 8)]);
    expect(list.code, list.stderr).toBe(0);

    daemon.kill('SIGTERM');
    await within(
      new Promise((resolve) =>
        daemon.exitCode !== null ? resolve(0) : daemon.once('exit', resolve),
      ),
      20_000,
      'the daemon to stop',
    );
  }, 120_000);

  it('tells in `pit why` the reason given to a deny recorded with no daemon running, once the next sweep carries it out', async () => {
    const base = await tempDir('pit-cli-deny-offline-');
    await provisionCell(join(base, 'missions'), {
      mission: 'archive',
      created_by: 'test',
      agents: [{ name: 'ezra', role: 'lead' }],
    });
    const config = join(base, 'pit.toml');
    writeFileSync(
      config,
      [
        '[daemon]',
        'state_dir = "state"',
        '[daemon.http]',
        'enabled = false',
        '[cells]',
        'root = "missions"',
        'heartbeat_stale_s = 15',
        '[checkpoints]',
        'interval_s = 0',
        '[bus]',
        'enabled = false',
        '[policy.defaults]',
        'mode = "ask"',
        'dead_after = "0s"',
        'approval = { channels = ["cli"], timeout = "30m", on_timeout = "record_only" }',
        '[agents.ezra]',
        `argv = ["${process.execPath}", "${testAgentPath}"]`,
        'startup_grace_s = 10',
        'stop_grace_s = 2',
      ].join('\n'),
    );
    chmodSync(config, 0o600);
    const sweep = () => pit(['--config', config, 'sweep', '--once']);
    await sweep(); // starts ezra, detached
    const status = async () =>
      (JSON.parse((await pit(['--config', config, 'status', '--json'])).stdout) as StatusJson)
        .agents[0]!;
    const pid = await waitFor(async () => (await status()).pid, 20_000, 'ezra started');
    reapLater(pid);
    process.kill(pid, 'SIGKILL');
    await waitFor(() => isGone(pid), 10_000, 'ezra gone');
    await sweep(); // dead: asks
    const approval = (await status()).pending_approval;
    expect(approval).toBeDefined();
    const denied = await pit(['--config', config, 'deny', approval!, '--reason', 'offline no']);
    expect(denied.code, denied.stderr).toBe(0);
    await sweep(); // carries the answer out
    const why = await pit(['--config', config, 'why', 'ezra']);
    expect(why.stdout).toMatch(/denied by .* via cli: offline no/);
    // ezra has no config files: what was asked is a restart, with no claim of a rollback.
    expect(why.stdout).toMatch(/approval requested \(\w+\) to restart:/);
    expect(why.stdout).not.toMatch(/roll/);
    expect((await status()).pending_approval).toBeUndefined();
  }, 120_000);

  it('shows the provider matrix a running daemon persisted, and once it stopped, how old that matrix is', async () => {
    // A local stand-in for a provider's status page (Statuspage JSON), flipped by the test.
    let indicator = 'none';
    const server = createServer((_, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ status: { indicator } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const statusUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/status.json`;
    const base = await tempDir('pit-cli-providers-');
    const config = join(base, 'pit.toml');
    writeFileSync(
      config,
      [
        '[daemon]',
        'state_dir = "state"',
        '[daemon.http]',
        'enabled = false',
        '[cells]',
        'root = "missions"',
        'poll_interval_s = 0.2',
        '[checkpoints]',
        'interval_s = 0',
        '[bus]',
        'enabled = false',
        '[providers.anthropic]',
        `status_url = "${statusUrl}"`,
        'interval_s = 0.2',
        'timeout_s = 2',
      ].join('\n'),
    );
    chmodSync(config, 0o600);
    type ProvidersJson = {
      providers?: Array<{ provider: string; status: string; evidence: string[] }>;
      providers_as_of?: { written_at: string; live: boolean };
    };
    const status = async () =>
      JSON.parse((await pit(['--config', config, 'status', '--json'])).stdout) as ProvidersJson;
    const daemon = spawnTsx(bin, ['--config', config, 'daemon', '--log-level', 'warn']);
    try {
      await waitFor(
        async () => (await status()).providers?.[0]?.status === 'healthy',
        30_000,
        'anthropic healthy in pit status',
      );
      indicator = 'major';
      const live = await waitFor(
        async () => {
          const json = await status();
          return json.providers?.[0]?.status === 'dead' ? json : undefined;
        },
        30_000,
        'anthropic dead in pit status',
      );
      expect(live.providers).toEqual([
        expect.objectContaining({
          provider: 'anthropic',
          status: 'dead',
          evidence: ['status_url: status.indicator major'],
        }),
      ]);
      expect(live.providers_as_of?.live).toBe(true);
      const table = (await pit(['--config', config, 'status'])).stdout;
      expect(table).toMatch(/^providers:$/m);
      expect(table).toMatch(/^PROVIDER\s+STATE\s+SINCE\s+EVIDENCE$/m);
      expect(table).toMatch(/^anthropic\s+dead\s+\d+s ago\s+status_url: status\.indicator major$/m);
    } finally {
      daemon.kill('SIGTERM');
      await within(
        new Promise((resolve) =>
          daemon.exitCode !== null ? resolve(0) : daemon.once('exit', resolve),
        ),
        20_000,
        'the daemon to stop',
      );
      server.closeAllConnections();
      server.close();
    }
    // No daemon now: the last matrix is still shown, said to be history, with its age.
    const stale = await status();
    expect(stale.providers?.[0]?.status).toBe('dead');
    expect(stale.providers_as_of?.live).toBe(false);
    const table = (await pit(['--config', config, 'status'])).stdout;
    expect(table).toContain('daemon: not running');
    expect(table).toMatch(
      /^providers: as last seen by a daemon no longer running, written \d+s ago \(not live\)$/m,
    );
    expect(table).toMatch(/^anthropic\s+dead\s/m);
  }, 120_000);
});
