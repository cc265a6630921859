import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

/** The older configs, copied from ../shared/seeds (each file's name says which seed). */
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pit-cli-import-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Imports `name` into `<dir>/pit.toml`, checks it with `pit config check`, and returns both. */
async function importAndCheck(name: string) {
  const out = join(dir, 'pit.toml');
  const imported = await pit(['config', 'import', fixture(name), '-o', out]);
  expect(imported.code).toBe(0);
  const text = readFileSync(out, 'utf8');
  expect(statSync(out).mode & 0o777).toBe(0o600);
  const checked = await pit(['config', 'check', '-c', out, '--json']);
  expect(checked.stderr).not.toMatch(/problem/);
  expect(checked.code).toBe(0);
  return { imported, text, checked: JSON.parse(checked.stdout) as Record<string, unknown> };
}

describe('pit config import', () => {
  it("converts seed 001's lazarus-pit.toml, commenting where each key came from", async () => {
    const { imported, text } = await importAndCheck('seed-001-lazarus-pit.toml');
    expect(text).toContain('# from [cells] resurrect_after (seconds)\ndead_after = "120s"');
    expect(text).toContain('# from [cells] heartbeat_stale_threshold\nheartbeat_stale_s = 60');
    expect(text).toContain('# from [daemon] log_level\nlog_level = "info"');
    expect(text).toContain('base_url = "https://forge.alexanderwhitestone.com/api/v1"');
    expect(text).toMatch(/^# {3}\[gateway\] port = 8765: the Pit probes each agent itself/m);
    expect(imported.stderr).toContain('6 key(s) not converted');
    expect(imported.stderr).toMatch(/^ {2}\[gateway\] health_port = 8766: /m);
  });

  it("converts seed 001's resurrection_pool.json (gateways, missions, channels), copying no secret", async () => {
    const { imported, text } = await importAndCheck('seed-001-resurrection_pool.json');
    expect(text).toContain('argv = ["python", "/root/wizards/timmy/nexus_think.py"]');
    expect(text).toContain('tcp = "127.0.0.1:8765"');
    expect(text).toContain(
      '[policy.missions.some-mission-uuid]\n# from missions.some-mission-uuid.revive_policy\nmode = "ask"',
    );
    expect(text).toContain('chat_id = -1001234567890');
    expect(text).toContain('token_env = "TELEGRAM_BOT_TOKEN"');
    expect(imported.stderr).toContain('telegram.bot_token = (secret, not copied)');
    expect(imported.stderr).toContain('nostr.recipient_pubkey = "...": not a public key');
  });

  it("converts seed 002's resurrection_pool.json into [policy] (modes, missions, substitutes)", async () => {
    const { imported, text, checked } = await importAndCheck('seed-002-resurrection_pool.json');
    expect(text).toContain(
      '[policy.defaults]\n# from dead_timeout_seconds (seconds)\ndead_after = "600s"',
    );
    expect(text).toContain(
      '[policy.missions.sovereign-core]\n# from missions.sovereign-core.mode\nmode = "no"',
    );
    expect(text).toContain('substitutes = ["allegro", "timmy"]');
    expect(imported.stderr).toMatch(/approval_channels\.nostr = .*configure \[nostr\]/);
    // The policy the daemon would run: bezalel in forge (mode yes = auto).
    expect(JSON.stringify(checked)).toMatch(/"bezalel"/);
  });

  it("converts seed 002's lazarus-registry.yaml (fleet: missions, hosts, health endpoints, substitutes)", async () => {
    const { imported, text } = await importAndCheck('seed-002-lazarus-registry.yaml');
    expect(text).toContain(
      '[agents.allegro]\n# from fleet.allegro.host (a remote host: watched, never restarted from here)\nhost = "203.0.113.10"',
    );
    expect(text).toContain('health_url = "http://127.0.0.1:8765/health"');
    expect(text).toContain('[agents.timmy]');
    expect(imported.stderr).toContain('provider_health_matrix = ');
    expect(imported.stderr).toContain('fleet.bezalel.primary = ');
  });

  it('prints to stdout without -o, refuses to replace a file without --force, and names a format it cannot read', async () => {
    const printed = await pit(['config', 'import', fixture('seed-002-resurrection_pool.json')]);
    expect(printed.code).toBe(0);
    expect(printed.stdout).toMatch(/^# pit\.toml converted by `pit config import`/);
    const out = join(dir, 'pit.toml');
    writeFileSync(out, 'keep me');
    const refused = await pit([
      'config',
      'import',
      fixture('seed-001-lazarus-pit.toml'),
      '-o',
      out,
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`${out}: already exists (--force replaces it)`);
    expect(readFileSync(out, 'utf8')).toBe('keep me');
    const neither = join(dir, 'other.json');
    writeFileSync(neither, '{"gateways_v9": []}');
    const unknown = await pit(['config', 'import', neither]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(
      `${neither}: cannot tell which resurrection_pool.json this is`,
    );
  });
});
