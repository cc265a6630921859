import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cellPaths, provisionCell, readEvents } from '@pit/cell-spec';
import { createSnapshotStore } from '@pit/snapshot';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'pit-cli-snap-'));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

async function eventsOf(path: string) {
  const events: Array<Record<string, unknown>> = [];
  for await (const entry of readEvents(path)) if (entry.ok) events.push(entry.event);
  return events;
}

describe('pit snapshot list and pit rollback', () => {
  it('rolls a corrupted config back to last known good, logs the hashes, and a second rollback writes nothing', async () => {
    const home = join(base, 'forge');
    mkdirSync(home);
    const good = '{"model":"claude","provider":"anthropic"}\n';
    writeFileSync(join(home, 'agent.json'), good);
    const configPath = join(base, 'pit.toml');
    writeFileSync(
      configPath,
      [
        '[daemon]',
        'state_dir = "state"',
        '[cells]',
        'root = "missions"',
        '[agents.forge]',
        'cell = "none"',
        'cwd = "forge"',
        'argv = ["/bin/true"]',
        'config_files = [{ path = "agent.json" }]',
      ].join('\n'),
    );
    chmodSync(configPath, 0o600);
    // What the daemon does on a healthy check: snapshot the config as last known good.
    await createSnapshotStore({ stateDir: join(base, 'state') }).snapshot('forge', [
      join(home, 'agent.json'),
    ]);
    writeFileSync(join(home, 'agent.json'), '{"model":"gpt-9","provider":'); // the agent corrupted its own config

    const list = await pit(['--config', configPath, 'snapshot', 'list', 'forge']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/last known good/);

    const rolled = await pit(['--config', configPath, 'rollback', 'forge']);
    expect(rolled.stderr).toBe('');
    expect(rolled.code).toBe(0);
    expect(rolled.stdout).toMatch(/agent\.json\s+[0-9a-f]{12} → [0-9a-f]{12}/);
    expect(readFileSync(join(home, 'agent.json'), 'utf8')).toBe(good);
    const logged = (await eventsOf(join(base, 'state', 'logs', 'events.jsonl'))).filter(
      (event) => event.event === 'config_rolled_back',
    );
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      agent: 'forge',
      files: [
        {
          path: join(home, 'agent.json'),
          old_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
          new_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        },
      ],
    });

    const again = await pit(['--config', configPath, 'rollback', 'forge']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing written');

    // --restart restarts it through the same path as `pit restart`: with no daemon, recorded for the next sweep.
    const restarted = await pit(['--config', configPath, 'rollback', 'forge', '--restart']);
    expect(restarted.stderr).toBe('');
    expect(restarted.code).toBe(0);
    expect(restarted.stdout).toContain('restarts host/forge');
    const host = JSON.parse(readFileSync(join(base, 'state', 'host-state.json'), 'utf8')) as {
      agents: Record<string, { requested?: { action: string } }>;
    };
    expect(host.agents.forge?.requested?.action).toBe('restart');
  }, 60_000);

  it('refuses a rollback with no snapshot and no canonical source, exit 1', async () => {
    const configPath = join(base, 'pit.toml');
    writeFileSync(configPath, ['[daemon]', 'state_dir = "state"'].join('\n'));
    chmodSync(configPath, 0o600);
    const result = await pit(['--config', configPath, 'rollback', 'forge']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/forge/);
  });
});

describe('pit checkpoint', () => {
  it('creates, lists and restores a workspace checkpoint', async () => {
    const { dir, manifest } = await provisionCell(join(base, 'missions'), {
      mission: 'm',
      created_by: 'test',
      agents: [{ name: 'forge', role: 'lead' }],
    });
    const workspace = cellPaths(dir).workspace;
    writeFileSync(join(workspace, 'notes.md'), 'chapter one\n');
    const args = ['--cells-root', join(base, 'missions')];
    const created = await pit([
      ...args,
      'checkpoint',
      'create',
      manifest.uuid,
      '--reason',
      'before refactor',
      '--json',
    ]);
    expect(created.code).toBe(0);
    const name = (JSON.parse(created.stdout) as { name: string }).name;

    writeFileSync(join(workspace, 'notes.md'), 'scribbled over\n');
    writeFileSync(join(workspace, 'junk.txt'), 'junk');
    const listed = await pit([...args, 'checkpoint', 'list', manifest.uuid]);
    expect(listed.stdout).toContain(name);
    expect(listed.stdout).toContain('before refactor');

    const restored = await pit([...args, 'checkpoint', 'restore', manifest.uuid]);
    expect(restored.code).toBe(0);
    expect(readFileSync(join(workspace, 'notes.md'), 'utf8')).toBe('chapter one\n');
    expect(() => readFileSync(join(workspace, 'junk.txt'))).toThrow();
    const kinds = (await eventsOf(cellPaths(dir).events)).map((event) => event.event);
    expect(kinds).toEqual(expect.arrayContaining(['checkpoint_created', 'checkpoint_restored']));
  }, 60_000);
});
