import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { PitError } from '@pit/cell-spec';
import {
  assertConfigPermissions,
  loadConfig,
  loadConfigFile,
  locateConfig,
  parseConfig,
  resolveArgv,
} from './config.js';
import { secretEnvNames } from './config-schema.js';

afterEach(cleanup);

/** A directory tree standing in for cwd, home and /etc, all private (mode 0700). */
async function tree() {
  const base = await tempDir('pit-config-');
  const dirs = { cwd: join(base, 'cwd'), home: join(base, 'home'), etc: join(base, 'etc') };
  for (const dir of Object.values(dirs)) await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.mkdir(join(dirs.home, '.config', 'pit'), { recursive: true, mode: 0o700 });
  return { base, ...dirs, systemPath: join(dirs.etc, 'pit.toml') };
}

const write = async (path: string, text: string, mode = 0o600) => {
  await fs.writeFile(path, text, { mode });
  await fs.chmod(path, mode);
  return path;
};

const codeOf = (error: unknown) => (PitError.is(error) ? error.code : String(error));

describe('locateConfig', () => {
  it('searches --config, PIT_CONFIG, ./pit.toml, ~/.config/pit/pit.toml, /etc/pit/pit.toml in that order', async () => {
    const t = await tree();
    const options = { env: {}, cwd: t.cwd, home: t.home, systemPath: t.systemPath };
    expect(await locateConfig(options)).toEqual({ source: 'default' });
    await write(t.systemPath, '');
    expect(await locateConfig(options)).toEqual({ source: 'system', path: t.systemPath });
    const user = await write(join(t.home, '.config', 'pit', 'pit.toml'), '');
    expect(await locateConfig(options)).toEqual({ source: 'user', path: user });
    const local = await write(join(t.cwd, 'pit.toml'), '');
    expect(await locateConfig(options)).toEqual({ source: 'cwd', path: local });
    const fromEnv = await write(join(t.base, 'env.toml'), '');
    expect(await locateConfig({ ...options, env: { PIT_CONFIG: fromEnv } })).toEqual({
      source: 'env',
      path: fromEnv,
    });
    const fromFlag = await write(join(t.cwd, 'flag.json'), '{}');
    expect(
      await locateConfig({ ...options, env: { PIT_CONFIG: fromEnv }, flag: 'flag.json' }),
    ).toEqual({ source: 'flag', path: fromFlag });
  });

  it('fails when the file named by --config or PIT_CONFIG does not exist', async () => {
    const t = await tree();
    await expect(
      locateConfig({ flag: 'missing.toml', env: {}, cwd: t.cwd, home: t.home }),
    ).rejects.toThrow(/--config: .*missing\.toml: no such file/);
    const error = await locateConfig({
      env: { PIT_CONFIG: '/nonexistent/pit.toml' },
      cwd: t.cwd,
      home: t.home,
    }).catch((caught: unknown) => caught);
    expect(codeOf(error)).toBe('DAEMON_CONFIG_NOT_FOUND');
    expect(String(error)).toContain('PIT_CONFIG');
  });
});

describe('loadConfig', () => {
  it('uses the embedded default when no file exists: ./.pit/missions with safe defaults', async () => {
    const t = await tree();
    const loaded = await loadConfig({
      env: {},
      cwd: t.cwd,
      home: t.home,
      systemPath: t.systemPath,
    });
    expect(loaded.source).toBe('default');
    expect(loaded.config.cells.root).toBe(join(t.cwd, '.pit', 'missions'));
    expect(loaded.config.daemon.state_dir).toBe(join(t.cwd, '.pit', 'state'));
    expect(loaded.config.daemon.pid_file).toBe(join(t.cwd, '.pit', 'state', 'pit.pid'));
    expect(loaded.config.daemon.http).toEqual({
      enabled: true,
      listen: '127.0.0.1:7420',
      token_env: 'PIT_HTTP_TOKEN',
      allow_remote: false,
      allowed_hosts: [],
      max_connections: 256,
      max_connections_per_address: 64,
      max_event_streams: 32,
      max_event_streams_per_address: 8,
      header_timeout_s: 10,
      idle_timeout_s: 60,
      approvers: {},
    });
    expect(loaded.config.daemon.stop_agents_on_exit).toBe(false);
    expect(loaded.config.agents).toEqual({});
  });

  it('loads the annotated example, resolving relative paths against the file’s directory', async () => {
    const t = await tree();
    const example = await fs.readFile(new URL('../examples/pit.toml', import.meta.url), 'utf8');
    const path = await write(join(t.cwd, 'pit.toml'), example);
    const loaded = await loadConfig({
      env: { ANTHROPIC_API_KEY: 'sk-test-value', PIT_HTTP_TOKEN: 'tok-123456' },
      cwd: t.cwd,
      home: t.home,
      systemPath: t.systemPath,
    });
    expect(loaded).toMatchObject({ source: 'cwd', path, baseDir: t.cwd });
    const { config } = loaded;
    expect(config.cells.root).toBe(join(t.cwd, '.pit', 'missions'));
    expect(config.agents.forge).toMatchObject({
      argv: ['node', join(t.cwd, 'agents', 'forge.js')],
      argv_base: 'config',
      home: '/srv/wizards/forge',
      isolation: { level: 2, network: 'host' },
      substitutes: ['anvil'],
      host: 'local',
    });
    expect(config.agents.forge?.config_files[0]?.canonical).toEqual({
      repo: 'https://git.example.org/fleet/config.git',
      ref: 'main',
      path: 'agents/forge.json',
    });
    expect(config.agents.anvil?.isolation).toEqual({ level: 3 });
    expect(config.agents.gateway).toMatchObject({
      cell: 'none',
      cwd: '/srv/gateway',
      probes: { tcp: '127.0.0.1:9000', heartbeat: false, timeout_s: 5 },
    });
    expect(config.agents.far?.host).toBe('far-1');
    expect(loaded.secrets.sort()).toEqual(['sk-test-value', 'tok-123456']);
  });

  it('reads JSON by extension', async () => {
    const t = await tree();
    const path = await write(
      join(t.base, 'pit.json'),
      JSON.stringify({
        cells: { root: '/var/missions', poll_interval_s: 2 },
        agents: { forge: { argv: ['true'] } },
      }),
    );
    const { config } = await loadConfigFile(path, { env: {} });
    expect(config.cells).toMatchObject({
      root: '/var/missions',
      poll_interval_s: 2,
      heartbeat_stale_s: 90,
    });
    expect(config.agents.forge?.isolation).toEqual({ level: 1 });
  });

  it('reports every problem at once, with key path, line and column', async () => {
    const t = await tree();
    const path = await write(
      join(t.base, 'pit.toml'),
      [
        '[daemon]', //                                   1
        'log_level = "loud"', //                         2
        'stat_dir = "/tmp/x"', //                        3
        '', //                                           4
        '[agents.forge]', //                             5
        'argvv = ["node"]', //                           6
        'isolation = 4', //                              7
        'substitutes = ["ghost"]', //                    8
        '', //                                           9
        '[agents.forge.probes]', //                      10
        'health_url = "ftp://x"', //                     11
        '', //                                           12
        '[agents."Bad Name"]', //                        13
        'argv = ["x"]', //                               14
        '', //                                           15
        '[telegram]', //                                 16
        'token = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh"', // 17
      ].join('\n'),
    );
    const error = await loadConfigFile(path, { env: {} }).catch((caught: unknown) => caught);
    expect(codeOf(error)).toBe('DAEMON_CONFIG_INVALID');
    const problems = (
      error as {
        problems: Array<{ path: string; line?: number; column?: number; message: string }>;
      }
    ).problems;
    const find = (key: string) => problems.find((problem) => problem.path === key);
    expect(find('daemon.log_level')).toMatchObject({ line: 2, column: 1 });
    expect(find('daemon.stat_dir')).toMatchObject({ line: 3, column: 1, message: 'unknown key' });
    expect(find('agents.forge.argvv')).toMatchObject({
      line: 6,
      column: 1,
      message: 'unknown key',
    });
    expect(find('agents.forge.isolation.level')).toMatchObject({
      line: 7,
      message: expect.stringContaining('must be 1'),
    });
    expect(find('agents.forge.substitutes.0')).toMatchObject({
      line: 8,
      message: 'no agent ghost is configured',
    });
    expect(find('agents.forge.probes.health_url')).toMatchObject({ line: 11, column: 1 });
    expect(find('agents.Bad Name')).toMatchObject({ line: 13 });
    expect(find('telegram.token')).toMatchObject({
      line: 17,
      message: expect.stringContaining('token_env'),
    });
    expect(problems.length).toBeGreaterThanOrEqual(8);
    // The message lists them all, one per line, as file:line:column: key: message.
    expect((error as Error).message).toContain(`${path}:6:1: agents.forge.argvv: unknown key`);
    expect((error as Error).message).toContain(`${path}:17:1: telegram.token:`);
  });

  it('reports a TOML syntax error with its line and column', () => {
    const result = parseConfig('[cells]\nroot = "x"\npoll_interval_s = = 3\n', 'toml');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems[0]).toMatchObject({ path: '(syntax)', line: 3 });
  });

  it('checks [cluster]: each bad key named with what was expected; absent means alone', () => {
    const result = parseConfig(
      [
        '[cluster]',
        'servers = ["http://10.0.0.1:4222"]',
        'host_id = "host one"',
        'lease_s = 0.5',
        'replicas = 2',
        'on_partition = "fight"',
        'token_env = "not-a-var"',
        'records_retention_days = 0.5',
      ].join('\n'),
      'toml',
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const byPath = Object.fromEntries(result.problems.map((p) => [p.path, p.message]));
    expect(byPath['cluster.servers.0']).toMatch(/NATS URL such as nats:\/\/127\.0\.0\.1:4222/);
    expect(byPath['cluster.host_id']).toMatch(/letters, digits, _ or -/);
    expect(byPath['cluster.lease_s']).toMatch(/at least 1 second/);
    expect(byPath['cluster.replicas']).toBeDefined();
    expect(byPath['cluster.on_partition']).toMatch(/stop|keep/);
    expect(byPath['cluster.token_env']).toMatch(/environment variable name/);
    expect(byPath['cluster.records_retention_days']).toMatch(/at least 1 day/);
    const missing = parseConfig('[cluster]\nlease_s = 5\n', 'toml');
    expect(missing.ok).toBe(false);
    if (!missing.ok)
      expect(missing.problems.map((p) => p.path)).toEqual(
        expect.arrayContaining(['cluster.servers', 'cluster.host_id']),
      );
    const alone = parseConfig('[cells]\nroot = "x"\n', 'toml');
    expect(alone.ok && alone.config.cluster).toBe(undefined);
    const fine = parseConfig(
      '[cluster]\nservers = ["nats://127.0.0.1:4222"]\nhost_id = "host-1"\n',
      'toml',
    );
    expect(fine.ok && fine.config.cluster).toEqual({
      servers: ['nats://127.0.0.1:4222'],
      host_id: 'host-1',
      lease_s: 15,
      replicas: 3,
      on_partition: 'stop',
      records_retention_days: 7,
    });
  });

  it('reports a JSON syntax error with its line', () => {
    const result = parseConfig('{\n  "cells": {\n    "root": "x",\n  }\n}', 'json');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems[0]?.path).toBe('(syntax)');
  });

  it('refuses secrets written in the config, including an agent’s env', () => {
    const result = parseConfig(
      '[agents.forge]\nargv = ["x"]\nenv = { OPENAI_API_KEY = "sk-live-123" }\n[nostr]\nprivate_key = "abc"\n',
      'toml',
    );
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.problems[0]).toMatchObject({
        path: 'agents.forge.env.OPENAI_API_KEY',
        line: 3,
        column: 9,
        message: expect.stringContaining('environment variable name'),
      });
      expect(result.problems).toContainEqual(
        expect.objectContaining({
          path: 'nostr.private_key',
          line: 5,
          message: expect.stringContaining('private_key_env'),
        }),
      );
    }
  });

  it('names the environment variables that hold secrets', () => {
    const result = parseConfig(
      '[daemon.http]\ntoken_env = "TOKEN_A"\n[telegram]\ntoken_env = "TG"\nchat_id = 42\n[agents.forge]\nargv = ["x"]\nenv_from = ["KEY_B"]\n',
      'toml',
    );
    expect(result.ok && secretEnvNames(result.config).sort()).toEqual(['KEY_B', 'TG', 'TOKEN_A']);
  });

  it('validates [policy] with @pit/policy’s schema, with positions', () => {
    const result = parseConfig(
      '[policy.defaults]\nmode = "sometimes"\n\n[policy.missions.forge]\nbackoff = { initial = "10s", factr = 2 }\n',
      'toml',
    );
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(
        result.problems.find((problem) => problem.path === 'policy.defaults.mode'),
      ).toMatchObject({ line: 2, column: 1 });
      expect(
        result.problems.find((problem) => problem.path === 'policy.missions.forge.backoff.factr'),
      ).toMatchObject({ line: 5, message: 'unknown key' });
    }
    const good = parseConfig('[policy.defaults]\nmode = "yes"\ndead_after = "30s"\n', 'toml');
    expect(good.ok && good.config.policy.defaults).toMatchObject({
      mode: 'auto',
      dead_after: 30_000,
    });
  });

  it('accepts the older [cells] keys and says, at their line, which key to write instead', () => {
    const old = parseConfig('[cells]\nresurrect_after_s = 120\nmax_revive_attempts = 5\n', 'toml');
    expect(old.ok && old.notices).toEqual([
      {
        path: 'cells.resurrect_after_s',
        message: 'deprecated: write dead_after = "2m" under [policy.defaults] instead',
        line: 2,
        column: 1,
      },
      {
        path: 'cells.max_revive_attempts',
        message: 'deprecated: write max_revive_attempts = 5 under [policy.defaults] instead',
        line: 3,
        column: 1,
      },
    ]);
    const both = parseConfig(
      '[cells]\nresurrect_after_s = 120\n[policy.defaults]\ndead_after = "1m"\n',
      'toml',
    );
    expect(both.ok && both.notices).toEqual([
      expect.objectContaining({
        path: 'cells.resurrect_after_s',
        message: expect.stringMatching(/ignored: \[policy\.defaults\] sets dead_after, which wins/),
      }),
    ]);
    const current = parseConfig('[policy.defaults]\ndead_after = "1m"\n', 'toml');
    expect(current.ok && current.notices).toEqual([]);
  });

  it('requires cwd for an agent outside cells', () => {
    const result = parseConfig('[agents.gw]\ncell = "none"\nargv = ["x"]\n', 'toml');
    expect(!result.ok && result.problems[0]).toMatchObject({
      path: 'agents.gw.cwd',
      message: expect.stringContaining('outside cells'),
    });
  });

  it('defaults [logs] to 10 MiB × 5 files and names a bad value with what is expected', () => {
    const defaults = parseConfig('', 'toml');
    expect(defaults.ok && defaults.config.logs).toEqual({
      max_bytes: 10 * 1024 * 1024,
      keep: 5,
      merge_stderr: false,
    });
    const result = parseConfig(
      '[logs]\nmax_bytes = 100\nkeep = 0\nsize = 1\nmerge_stderr = "yes"\n[agents.forge]\nargv = ["x"]\nmerge_stderr = 1\n',
      'toml',
    );
    expect(!result.ok && result.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          path: 'logs.max_bytes',
          message: expect.stringContaining('at least 4096'),
        }),
        expect.objectContaining({
          path: 'logs.keep',
          message: expect.stringContaining('at least 1'),
        }),
        expect.objectContaining({ path: 'logs.size', message: 'unknown key' }),
        expect.objectContaining({
          path: 'logs.merge_stderr',
          message: expect.stringContaining('must be true or false'),
        }),
        expect.objectContaining({
          path: 'agents.forge.merge_stderr',
          message: expect.stringContaining('must be true or false'),
        }),
      ]),
    );
  });

  it('refuses an agent <name>.err beside an agent <name> whose stderr log it would share, unless that one merges its stderr', () => {
    const clash = parseConfig(
      '[agents.forge]\nargv = ["x"]\n[agents."forge.err"]\nargv = ["y"]\n',
      'toml',
    );
    expect(!clash.ok && clash.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          path: 'agents.forge.err',
          message: expect.stringContaining("logs/forge.err.log is also agent forge's stderr log"),
        }),
      ]),
    );
    const merged = parseConfig(
      '[agents.forge]\nargv = ["x"]\nmerge_stderr = true\n[agents."forge.err"]\nargv = ["y"]\n',
      'toml',
    );
    expect(merged.ok).toBe(true);
  });

  it('defaults [mcp] to served and read-only; actions need an approver, a bound agent must be a name', () => {
    const defaults = parseConfig('', 'toml');
    expect(defaults.ok && defaults.config.mcp).toEqual({ enabled: true, actions: false });
    const result = parseConfig(
      '[mcp]\nactions = true\naction = true\n[daemon.http.approvers.ann]\ntoken_env = "PIT_ANN"\nagent = "Not A Name"\n',
      'toml',
    );
    expect(!result.ok && result.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'mcp.action', message: 'unknown key' }),
        expect.objectContaining({
          path: 'daemon.http.approvers.ann.agent',
          message: expect.stringContaining('must be an agent name'),
        }),
      ]),
    );
    const alone = parseConfig('[mcp]\nactions = true\n', 'toml');
    expect(!alone.ok && alone.problems).toEqual([
      expect.objectContaining({
        path: 'mcp.actions',
        message: expect.stringContaining('no approver is configured'),
        line: 2,
      }),
    ]);
    const bound = parseConfig(
      '[mcp]\nactions = true\n[daemon.http.approvers.bot]\ntoken_env = "PIT_BOT"\nagent = "3f2a/forge"\n',
      'toml',
    );
    expect(bound.ok && bound.config.daemon.http.approvers.bot).toEqual({
      token_env: 'PIT_BOT',
      agent: '3f2a/forge',
    });
  });

  it('refuses an unknown extension', async () => {
    const t = await tree();
    const path = await write(join(t.base, 'pit.yaml'), 'a: 1');
    await expect(loadConfigFile(path, { env: {} })).rejects.toThrow(/use \.toml or \.json/);
  });
});

describe('resolveArgv', () => {
  it('resolves a relative program and its script against the config directory, nothing else', () => {
    expect(resolveArgv(['node', 'agent.js', '--config', 'forge.json', '60'], '/etc/pit')).toEqual([
      'node',
      '/etc/pit/agent.js',
      '--config',
      'forge.json',
      '60',
    ]);
    expect(resolveArgv(['bin/agent', 'run'], '/etc/pit')).toEqual(['/etc/pit/bin/agent', 'run']);
    expect(resolveArgv(['sleep', '60'], '/etc/pit')).toEqual(['sleep', '60']);
    expect(resolveArgv(['sh', '-c', 'exec ./x > /tmp/y'], '/etc/pit')).toEqual([
      'sh',
      '-c',
      'exec ./x > /tmp/y',
    ]);
    expect(resolveArgv(['/usr/bin/python3', '/srv/a.py'], '/etc/pit')).toEqual([
      '/usr/bin/python3',
      '/srv/a.py',
    ]);
  });

  it('leaves argv as written with argv_base = "workspace"', async () => {
    const t = await tree();
    await write(
      join(t.cwd, 'pit.toml'),
      '[agents.forge]\nargv = ["node", "agent.js"]\nargv_base = "workspace"\n[agents.anvil]\nargv = ["node", "agent.js"]\n',
    );
    const { config } = await loadConfig({
      env: {},
      cwd: t.cwd,
      home: t.home,
      systemPath: t.systemPath,
    });
    expect(config.agents.forge?.argv).toEqual(['node', 'agent.js']);
    expect(config.agents.anvil?.argv).toEqual(['node', join(t.cwd, 'agent.js')]);
  });

  it('refuses a home outside [sandbox] home_roots', () => {
    const parsed = parseConfig('[agents.forge]\nhome = "/etc"\n', 'toml');
    expect(parsed.ok).toBe(false);
    expect(JSON.stringify(parsed)).toContain('home_roots');
  });

  it('takes [sandbox] agent_cgroups as auto by default, and refuses a relative path naming what it expects', () => {
    const fine = parseConfig('', 'toml');
    expect(fine.ok && fine.config.sandbox.agent_cgroups).toBe('auto');
    const parsed = parseConfig('[sandbox]\nagent_cgroups = "sys/fs/cgroup"\n', 'toml');
    expect(parsed.ok).toBe(false);
    expect(JSON.stringify(parsed)).toMatch(
      /sandbox\.agent_cgroups.*must be \\"auto\\", \\"off\\" or an absolute path to a cgroup2 directory/,
    );
  });

  it('leaves the host cgroup2 mount alone by default ([sandbox] cgroup_favordynmods = false) and refuses a string naming the field', () => {
    const fine = parseConfig('', 'toml');
    expect(fine.ok && fine.config.sandbox.cgroup_favordynmods).toBe(false);
    const on = parseConfig('[sandbox]\ncgroup_favordynmods = true\n', 'toml');
    expect(on.ok && on.config.sandbox.cgroup_favordynmods).toBe(true);
    const parsed = parseConfig('[sandbox]\ncgroup_favordynmods = "yes"\n', 'toml');
    expect(parsed.ok).toBe(false);
    expect(JSON.stringify(parsed)).toMatch(/sandbox\.cgroup_favordynmods/);
  });

  it('takes [sandbox] uid and gid as 65534 by default, and refuses 0 or a fraction naming the field', () => {
    const fine = parseConfig('', 'toml');
    expect(fine.ok && [fine.config.sandbox.uid, fine.config.sandbox.gid]).toEqual([65534, 65534]);
    const chosen = parseConfig('[sandbox]\nuid = 4200\ngid = 4201\n', 'toml');
    expect(chosen.ok && [chosen.config.sandbox.uid, chosen.config.sandbox.gid]).toEqual([
      4200, 4201,
    ]);
    const root = parseConfig('[sandbox]\nuid = 0\n', 'toml');
    expect(root.ok).toBe(false);
    expect(JSON.stringify(root)).toMatch(/sandbox\.uid.*must not be 0/);
    const fraction = parseConfig('[sandbox]\ngid = 1.5\n', 'toml');
    expect(fraction.ok).toBe(false);
    expect(JSON.stringify(fraction)).toMatch(/sandbox\.gid.*whole number/);
  });
});

describe('assertConfigPermissions (StrictModes)', () => {
  it('accepts a file only its owner can write, in private directories', async () => {
    const t = await tree();
    const path = await write(join(t.base, 'pit.toml'), '', 0o644);
    await expect(assertConfigPermissions(path, process.getuid!())).resolves.toBeUndefined();
  });

  it('refuses a file writable by group or others', async () => {
    const t = await tree();
    for (const mode of [0o664, 0o646]) {
      const path = await write(join(t.base, `pit-${mode.toString(8)}.toml`), '', mode);
      const error = await assertConfigPermissions(path, process.getuid!()).catch(
        (caught: unknown) => caught,
      );
      expect(codeOf(error)).toBe('DAEMON_CONFIG_UNSAFE');
      expect(String(error)).toMatch(/writable by (group|others).*chmod go-w/);
    }
  });

  it('refuses a file in a directory others can write (without the sticky bit)', async () => {
    const t = await tree();
    const open = join(t.base, 'open');
    await fs.mkdir(open);
    await fs.chmod(open, 0o777);
    const path = await write(join(open, 'pit.toml'), '');
    await expect(assertConfigPermissions(path, process.getuid!())).rejects.toThrow(
      /open: directory of the config .* writable by group and others/,
    );
    await fs.chmod(open, 0o1777);
    await expect(assertConfigPermissions(path, process.getuid!())).resolves.toBeUndefined();
  });

  it('refuses a file owned by another non-root user, and loadConfig refuses it too', async () => {
    const t = await tree();
    const path = await write(join(t.base, 'pit.toml'), '');
    // As root, hand the file to another user; as an ordinary user, claim to be another one.
    const uid = process.getuid!();
    if (uid === 0) await fs.chown(path, 4242, 4242);
    const daemonUid = uid === 0 ? 0 : uid + 1;
    await expect(assertConfigPermissions(path, daemonUid)).rejects.toThrow(
      /owned by uid \d+, neither root nor the daemon's user/,
    );
    await expect(loadConfigFile(path, { env: {}, uid: daemonUid })).rejects.toThrow(/StrictModes/);
  });
});

describe("RESURRECTION_CONFIG (the first daemons' variable)", () => {
  it('is read last, after every pit.toml location, with a deprecation notice', async () => {
    const t = await tree();
    const legacy = await write(join(t.base, 'legacy.toml'), '[cells]\npoll_interval_s = 15\n');
    const options = {
      env: { RESURRECTION_CONFIG: legacy },
      cwd: t.cwd,
      home: t.home,
      systemPath: t.systemPath,
    };
    expect(await locateConfig(options)).toEqual({ source: 'resurrection-env', path: legacy });
    const loaded = await loadConfig(options);
    expect(loaded.config.cells.poll_interval_s).toBe(15);
    expect(loaded.notices[0]).toBe(
      `${legacy}: RESURRECTION_CONFIG is deprecated (read only when no pit.toml is found elsewhere): name this file with PIT_CONFIG or --config instead`,
    );
    await write(t.systemPath, '');
    expect(await locateConfig(options)).toEqual({ source: 'system', path: t.systemPath });
  });

  it('names the import command for a seed format, and for a lazarus-pit.toml', async () => {
    const t = await tree();
    const options = { cwd: t.cwd, home: t.home, systemPath: t.systemPath };
    const pool = await write(join(t.base, 'resurrection_pool.json'), '{"poll_interval": 60}');
    const error = await loadConfig({ ...options, env: { RESURRECTION_CONFIG: pool } }).catch(
      (caught: unknown) => caught,
    );
    expect(codeOf(error)).toBe('DAEMON_CONFIG_INVALID');
    expect((error as Error).message).toContain(
      `RESURRECTION_CONFIG=${pool}: not a pit.toml (the first daemons' .json format; the Pit reads only TOML from RESURRECTION_CONFIG): convert it with \`pit config import ${pool} -o pit.toml\``,
    );
    const seedToml = await write(join(t.base, 'lazarus-pit.toml'), '[gateway]\nport = 8765\n');
    const invalid = await loadConfig({ ...options, env: { RESURRECTION_CONFIG: seedToml } }).catch(
      (caught: unknown) => caught,
    );
    expect(codeOf(invalid)).toBe('DAEMON_CONFIG_INVALID');
    expect((invalid as Error).message).toMatch(/gateway/);
    expect((invalid as Error).message).toContain(
      `if this is a lazarus-pit.toml, convert it with \`pit config import ${seedToml} -o pit.toml\``,
    );
    await expect(
      loadConfig({ ...options, env: { RESURRECTION_CONFIG: join(t.base, 'gone.toml') } }),
    ).rejects.toThrow(/RESURRECTION_CONFIG: .*gone\.toml: no such file/);
  });
});
