import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readEvents, readHeartbeat, readManifest } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'pit-cli-cells-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const uuidOf = (stdout: string) => /created cell ([0-9a-f-]{36})/.exec(stdout)?.[1] ?? '';

describe('pit cell and pit cells', () => {
  it('creates a cell, lists it, freezes, resumes, archives and destroys it', async () => {
    const created = await pit([
      '--cells-root',
      root,
      'cell',
      'create',
      '--mission',
      'Port the parser',
      '--agent',
      'forge:lead',
      '--agent',
      'allegro',
      '--name',
      'parser',
      '--isolation',
      '2',
    ]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const uuid = uuidOf(created.stdout);
    const manifest = await readManifest(join(root, uuid));
    expect(manifest).toMatchObject({
      status: 'active',
      name: 'parser',
      isolation: { level: 2 },
      agents: [
        { name: 'forge', role: 'lead' },
        { name: 'allegro', role: 'write' },
      ],
    });

    const listed = await pit(['--cells-root', root, 'cells', 'list', '--json']);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).cells.map((c: { uuid: string }) => c.uuid)).toEqual([uuid]);

    expect(
      (await pit(['--cells-root', root, 'cell', 'freeze', uuid, '--reason', 'maintenance'])).stdout,
    ).toContain('now frozen');
    expect((await pit(['--cells-root', root, 'cell', 'resume', uuid])).stdout).toContain(
      'now active',
    );
    expect((await pit(['--cells-root', root, 'cell', 'archive', uuid])).code).toBe(0);
    expect(
      JSON.parse((await pit(['--cells-root', root, 'cells', 'list', '--json'])).stdout).cells,
    ).toEqual([]);
    expect(
      JSON.parse((await pit(['--cells-root', root, 'cells', 'list', '--all', '--json'])).stdout)
        .cells,
    ).toHaveLength(1);

    const kinds: string[] = [];
    for await (const entry of readEvents(join(root, uuid, 'logs', 'events.jsonl')))
      if (entry.ok) kinds.push(entry.event.event);
    expect(kinds).toEqual([
      'cell_created',
      'agent_joined',
      'agent_joined',
      'cell_activated',
      'cell_frozen',
      'cell_activated',
      'cell_archived',
    ]);

    const destroyed = await pit(['--cells-root', root, 'cell', 'destroy', uuid]);
    expect(destroyed.code).toBe(0);
    expect(existsSync(join(root, uuid))).toBe(false);
  });

  it('refuses an illegal transition with exit 1, naming both states', async () => {
    const uuid = uuidOf(
      (await pit(['--cells-root', root, 'cell', 'create', '--mission', 'm', '--agent', 'forge']))
        .stdout,
    );
    const result = await pit(['--cells-root', root, 'cell', 'resume', uuid]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot go from active to active/);
    const destroy = await pit(['--cells-root', root, 'cell', 'destroy', uuid]);
    expect(destroy.code).toBe(1);
    expect(destroy.stderr).toMatch(/from active to destroyed/);
  });

  it('refuses a traversal agent name with exit 2 and writes nothing', async () => {
    const result = await pit([
      '--cells-root',
      root,
      'cell',
      'create',
      '--mission',
      'm',
      '--agent',
      '../../etc',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/agents\.0\.name: "\.\.\/\.\.\/etc" must match/);
    expect(
      JSON.parse((await pit(['--cells-root', root, 'cells', 'list', '--all', '--json'])).stdout)
        .cells,
    ).toEqual([]);
  });

  it('reports a corrupt cell instead of skipping it, with exit 3', async () => {
    await pit(['--cells-root', root, 'cell', 'create', '--mission', 'm', '--agent', 'forge']);
    const bad = join(root, '3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b');
    rmSync(bad, { recursive: true, force: true });
    writeFileSync(bad, 'not a directory');
    const result = await pit(['--cells-root', root, 'cells', 'list']);
    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(/active/);
    expect(result.stderr).toContain(`problem: ${bad}: expected a cell directory, found a file`);
  });

  it('exits 2 on an unknown command or a missing option, with usage on stderr', async () => {
    expect((await pit(['nonsense'])).code).toBe(2);
    const missing = await pit(['--cells-root', root, 'cell', 'create']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--mission/);
  });
});

describe('pit heartbeat', () => {
  it('writes a heartbeat for a shell agent and advances the cycle by itself', async () => {
    const uuid = uuidOf(
      (await pit(['--cells-root', root, 'cell', 'create', '--mission', 'm', '--agent', 'forge']))
        .stdout,
    );
    expect(
      (
        await pit([
          '--cells-root',
          root,
          'heartbeat',
          '--cell',
          uuid,
          '--agent',
          'forge',
          '--status',
          'working',
          '--cycle',
          '7',
        ])
      ).code,
    ).toBe(0);
    expect(
      (await pit(['--cells-root', root, 'heartbeat', '--cell', uuid, '--agent', 'forge'])).code,
    ).toBe(0);
    const beat = await readHeartbeat(join(root, uuid), 'forge');
    expect(beat).toMatchObject({ agent: 'forge', cycle: 8, status: 'ok', cell_uuid: uuid });
    expect(Math.abs(Date.now() / 1000 - beat.timestamp)).toBeLessThan(60);
  });

  it('refuses an agent that is not in the cell', async () => {
    const uuid = uuidOf(
      (await pit(['--cells-root', root, 'cell', 'create', '--mission', 'm', '--agent', 'forge']))
        .stdout,
    );
    const result = await pit([
      '--cells-root',
      root,
      'heartbeat',
      '--cell',
      uuid,
      '--agent',
      'ghost',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('not an agent of cell');
  });
});
