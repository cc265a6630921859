import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { provisionCell, writeHeartbeat } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';
import { readAgentStates } from '@pit/daemon';

/** The daemon's records of a cell's agents (its state directory is `state/` beside `missions/`). */
const daemonState = (cellDir: string) =>
  readAgentStates(join(cellDir, '..', '..', 'state'), cellDir);

const seedPolicy = fileURLToPath(
  new URL('../../../packages/policy/src/__fixtures__/seed-policy.toml', import.meta.url),
);

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'pit-cli-config-'));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

function writeConfig(text: string, mode = 0o600): string {
  const path = join(base, 'pit.toml');
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

describe('pit config check', () => {
  it("prints every agent's resolved policy with where each value came from", async () => {
    const policy = readFileSync(seedPolicy, 'utf8');
    const config = writeConfig(
      [
        '[daemon]',
        'state_dir = "state"',
        '[cells]',
        'root = "missions"',
        ...['bezalel', 'allegro', 'ezra', 'timmy'].flatMap((name) => [
          `[agents.${name}]`,
          'cell = "none"',
          'cwd = "."',
          `argv = ["/bin/true"]`,
        ]),
        '[telegram]',
        'token_env = "TG_TOKEN"',
        'chat_id = 1',
        'approvers = [1]',
        policy,
      ].join('\n'),
    );
    const result = await pit(['--config', config, 'config', 'check', '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      agents: Array<{
        agent: string;
        mode: string;
        mission?: string;
        substitutes: string[];
        trace: { fields: Record<string, string> };
      }>;
    };
    const ezra = report.agents.find((agent) => agent.agent === 'ezra')!;
    expect(ezra.mode).toBe('ask');
    expect(ezra.mission).toBe('archive');
    expect(ezra.trace.fields.dead_after).toBe('agent:ezra');
    expect(report.agents.find((agent) => agent.agent === 'bezalel')!.substitutes).toEqual([
      'allegro',
      'timmy',
    ]);

    const text = await pit(['--config', config, 'config', 'check']);
    expect(text.stdout).toMatch(/ezra \(outside cells, mission archive\)/);
    // Each value names the table it came from, as the file spells it.
    const ezraRows = text.stdout.slice(text.stdout.indexOf('ezra ('));
    expect(ezraRows).toMatch(/mode\s+ask\s+from \[policy\.missions\.archive\]/);
    expect(ezraRows).toMatch(/dead after\s+10m\s+from \[policy\.agents\.ezra\]/);
    expect(ezraRows).toMatch(/max revive attempts\s+8\s+from \[policy\.defaults\]/);
  }, 60_000);

  it('names the key to write instead of an older one, and still accepts the config', async () => {
    const config = writeConfig(
      [
        '[daemon]',
        'state_dir = "state"',
        '[cells]',
        'root = "missions"',
        'resurrect_after_s = 30',
        '[agents.solo]',
        'cell = "none"',
        'cwd = "."',
        'argv = ["/bin/true"]',
      ].join('\n'),
    );
    const result = await pit(['--config', config, 'config', 'check']);
    expect(result.code).toBe(0);
    // A value nobody set is the built-in default; one an older key supplied says which key.
    expect(result.stdout).toMatch(/mode\s+auto\s+from built-in default/);
    expect(result.stdout).toMatch(/max revive attempts\s+10\s+from built-in default/);
    expect(result.stdout).toMatch(
      /dead after\s+30s\s+from \[cells\] resurrect_after_s \(deprecated\)/,
    );
    expect(result.stderr).toContain(
      `notice: ${config}:5:1: cells.resurrect_after_s: deprecated: write dead_after = "30s" under [policy.defaults] instead`,
    );
  }, 60_000);

  it('reports every problem at once with line and column, exit 2', async () => {
    const config = writeConfig(
      [
        '[daemon]',
        'state_dir = "state"',
        'colour = "blue"',
        '[cells]',
        'heartbeat_stale_s = "soon"',
      ].join('\n'),
    );
    const result = await pit(['--config', config, 'config', 'check']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/pit\.toml:3:\d+: daemon\.colour: unknown key/);
    expect(result.stderr).toMatch(/pit\.toml:5:\d+: cells\.heartbeat_stale_s/);
  });

  it('refuses a config that other users may write (it holds commands the daemon runs), exit 2', async () => {
    const config = writeConfig('[daemon]\nstate_dir = "state"\n', 0o666);
    const result = await pit(['--config', config, 'config', 'check']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/writable/);
  });

  it.each([
    ['/', 'the root of the filesystem'],
    ['/etc', 'a system directory'],
    ['/usr/local/missions', 'inside /usr'],
    ['/home', 'the parent of every user'],
  ])('refuses cells.root = %s with exit 2, naming the key and why', async (root, why) => {
    const config = writeConfig(`[daemon]\nstate_dir = "state"\n[cells]\nroot = "${root}"\n`);
    const result = await pit(['--config', config, 'config', 'check']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${config}: cells.root: ${root} is ${why}`);
  });

  it('warns, without printing them, about secrets written into an agent’s env or argv, and points at env_from', async () => {
    const secrets = {
      aws: 'AKIAsecretvalue0123456789',
      database: 'hunter2-db-password',
      token: 'tok-0123456789abcdef',
      password: 'pw-0123456789abcdef',
    };
    const config = writeConfig(
      [
        '[daemon]',
        'state_dir = "state"',
        '[cells]',
        'root = "missions"',
        '[agents.forge]',
        'cell = "none"',
        'cwd = "."',
        `argv = ["/bin/true", "--api-token=${secrets.token}", "--password", "${secrets.password}"]`,
        `env = { AWS_SECRET_ACCESS_KEY = "${secrets.aws}", DATABASE_URL = "postgres://admin:${secrets.database}@db.example:5432/app", LOG_LEVEL = "debug" }`,
      ].join('\n'),
    );
    const result = await pit(['--config', config, 'config', 'check']);
    expect(result.code).toBe(0);
    const warnings = result.stderr.split('\n').filter((line) => line.startsWith('warning: '));
    expect(warnings).toEqual([
      expect.stringMatching(
        /pit\.toml:8:\d+: agents\.forge\.argv\.1: --api-token=… looks like a secret.*env_from/,
      ),
      expect.stringMatching(
        /pit\.toml:8:\d+: agents\.forge\.argv\.3: the value after --password looks like a secret.*env_from/,
      ),
      expect.stringMatching(
        /pit\.toml:9:\d+: agents\.forge\.env\.AWS_SECRET_ACCESS_KEY: looks like a secret.*env_from/,
      ),
      expect.stringMatching(
        /pit\.toml:9:\d+: agents\.forge\.env\.DATABASE_URL: holds a URL with a password.*env_from/,
      ),
    ]);
    for (const value of Object.values(secrets)) {
      expect(result.stderr).not.toContain(value);
      expect(result.stdout).not.toContain(value);
    }
  });

  it('exits 2 when --config names a file that does not exist', async () => {
    const result = await pit(['--config', join(base, 'missing.toml'), 'config', 'check']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('missing.toml: no such file');
  });
});

describe('pit sweep --once and pit status', () => {
  it('finds a dead agent, exits 1, and a second run continues from the persisted state (dead time accumulates)', async () => {
    const { dir, manifest } = await provisionCell(join(base, 'missions'), {
      mission: 'forge',
      created_by: 'test',
      agents: [{ name: 'forge', role: 'lead' }],
    });
    // A heartbeat from ten minutes ago, from a process that no longer exists: the agent is dead.
    await writeHeartbeat(dir, {
      agent: 'forge',
      cell_uuid: manifest.uuid,
      cycle: 3,
      status: 'working',
      pid: 999_999,
      timestamp: Date.now() / 1000 - 600,
    });
    const config = writeConfig(
      [
        '[daemon]',
        'state_dir = "state"',
        '[daemon.http]',
        'enabled = false',
        '[cells]',
        'root = "missions"',
        'heartbeat_stale_s = 5',
        'resurrect_after_s = 0',
        '[policy.defaults]',
        'mode = "never"',
      ].join('\n'),
    );

    const first = await pit(['--config', config, 'sweep', '--once', '--json']);
    expect(first.code).toBe(1);
    const report = JSON.parse(first.stdout) as {
      healthy: boolean;
      agents: Array<{ key: string; health: string }>;
    };
    expect(report.healthy).toBe(false);
    expect(report.agents).toEqual([
      expect.objectContaining({ key: `${manifest.uuid}/forge`, health: 'dead' }),
    ]);
    const firstDeadAt = (await daemonState(dir)).agents.forge?.first_dead_at;
    expect(firstDeadAt).toBeDefined();

    const second = await pit(['--config', config, 'sweep', '--once']);
    expect(second.code).toBe(1);
    expect(second.stdout).toMatch(/not all healthy/);
    expect((await daemonState(dir)).agents.forge?.first_dead_at).toBe(firstDeadAt);

    const status = await pit(['--config', config, 'status', '--json']);
    expect(status.code).toBe(1);
    const fleet = JSON.parse(status.stdout) as {
      daemon: unknown;
      agents: Array<{ agent: string; health: string; first_dead_at?: string }>;
    };
    expect(fleet.daemon).toBeNull();
    expect(fleet.agents).toEqual([
      expect.objectContaining({ agent: 'forge', health: 'dead', first_dead_at: firstDeadAt }),
    ]);
    const table = await pit(['--config', config, 'status']);
    expect(table.stdout).toMatch(/daemon: not running/);
    expect(table.stdout).toMatch(/forge\s+dead/);
  }, 90_000);

  it('exits 3 on a corrupt cell with no unhealthy agent, names it once, and logs it at warn', async () => {
    const { dir } = await provisionCell(join(base, 'missions'), {
      mission: 'broken',
      created_by: 'test',
      agents: [{ name: 'forge', role: 'lead' }],
    });
    writeFileSync(join(dir, 'cell.json'), '{"uuid": "not json');
    const config = writeConfig(
      [
        '[daemon]',
        'state_dir = "state"',
        'log_level = "warn"',
        '[daemon.http]',
        'enabled = false',
        '[cells]',
        'root = "missions"',
      ].join('\n'),
    );
    const manifest = join(dir, 'cell.json');

    const sweep = await pit(['--config', config, 'sweep', '--once']);
    expect(sweep.code).toBe(3);
    expect(sweep.stdout).toMatch(/0 agent\(s\) checked in \d+ ms: all healthy, 1 problem\(s\)/);
    const problemLine = sweep.stderr.split('\n').find((line) => line.startsWith('problem: '));
    expect(problemLine).toContain(manifest);
    // The path is said once, not once by discovery and again by the reason.
    expect(problemLine!.split(manifest).length - 1).toBe(1);
    // The daemon's log (the same supervisor code) says it at warn, once per pass.
    const logged = sweep.stderr
      .split('\n')
      .filter((line) => line.includes('"msg":"problem"') || /\bWARN\b.*problem/i.test(line));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain(manifest);

    const status = await pit(['--config', config, 'status', '--json']);
    expect(status.code).toBe(3);
    expect((JSON.parse(status.stdout) as { problems: string[] }).problems).toEqual([
      expect.stringContaining(manifest),
    ]);
  }, 60_000);

  it('requires --once', async () => {
    const result = await pit(['sweep']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--once is required');
  });
});
