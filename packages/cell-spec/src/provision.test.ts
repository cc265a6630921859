import { existsSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bundleChild,
  makeTempDir,
  reapChildren,
  removeTempDirs,
  seededRandom,
  signalGroup,
  spawnBundled,
  type Child,
} from './__fixtures__/helpers.js';
import { discoverCells } from './discover.js';
import { readEvents } from './events.js';
import { readManifest } from './manifest.js';
import { cellPaths } from './paths.js';
import { provisionCell, PROVISIONING_PREFIX } from './provision.js';

afterEach(async () => {
  await reapChildren();
  await removeTempDirs();
});

async function kindsOf(dir: string): Promise<string[]> {
  const kinds: string[] = [];
  for await (const entry of readEvents(cellPaths(dir).events)) {
    if (!entry.ok) throw new Error(`${dir}: line ${entry.line}: ${entry.reason}`);
    kinds.push(entry.event.event);
  }
  return kinds;
}

/** Asserts the whole tree of ARCHITECTURE.md is there. */
async function expectCompleteCell(dir: string): Promise<void> {
  const paths = cellPaths(dir);
  for (const sub of [
    paths.workspace,
    paths.logs,
    paths.checkpoints,
    paths.bus,
    paths.busInbox,
    paths.lazarus,
    paths.heartbeats,
  ]) {
    expect((await stat(sub)).isDirectory(), sub).toBe(true);
  }
  await readManifest(dir);
  expect((await kindsOf(dir))[0]).toBe('cell_created');
}

describe('provisionCell', () => {
  it('creates the whole tree, the manifest and the creation events', async () => {
    const root = join(await makeTempDir(), 'missions');
    const now = new Date('2026-11-22T09:00:00.000Z');
    const { dir, manifest } = await provisionCell(root, {
      mission: 'Port the parser',
      created_by: 'ops',
      name: 'parser-port',
      agents: [
        { name: 'forge', role: 'lead', home: '/home/forge' },
        { name: 'allegro', role: 'write' },
      ],
      isolation: 2,
      issue: 'https://gitea.example.org/pit/missions/issues/42',
      now,
    });
    expect(dir).toBe(join(root, manifest.uuid));
    expect(manifest).toMatchObject({
      status: 'active',
      revision: 0,
      created_at: now.toISOString(),
      isolation: { level: 2 },
    });
    expect(manifest.agents.map((agent) => agent.name)).toEqual(['forge', 'allegro']);
    await expectCompleteCell(dir);
    expect(await kindsOf(dir)).toEqual([
      'cell_created',
      'agent_joined',
      'agent_joined',
      'cell_activated',
    ]);
    expect((await readdir(root)).filter((name) => name.startsWith('.'))).toEqual([]);
  });

  it('leaves activation to the caller when asked for a provisioning cell', async () => {
    const root = await makeTempDir();
    const { dir, manifest } = await provisionCell(root, {
      mission: 'later',
      created_by: 'ops',
      status: 'provisioning',
      agents: [{ name: 'forge', role: 'lead' }],
    });
    expect(manifest.status).toBe('provisioning');
    expect(await kindsOf(dir)).toEqual(['cell_created', 'agent_joined']);
  });

  it('refuses a traversal agent name before touching the disk', async () => {
    const root = join(await makeTempDir(), 'missions');
    await expect(
      provisionCell(root, {
        mission: 'm',
        created_by: 'ops',
        agents: [{ name: '../../etc', role: 'lead' }],
      }),
    ).rejects.toMatchObject({
      code: 'CELL_BAD_NAME',
      message: expect.stringContaining('agents.0.name'),
    });
    expect(existsSync(root)).toBe(false);
  });

  it('refuses invalid options naming the field, and writes nothing', async () => {
    const root = await makeTempDir();
    await expect(
      provisionCell(root, {
        mission: '',
        created_by: 'ops',
        agents: [{ name: 'forge', role: '' }],
      }),
    ).rejects.toMatchObject({
      code: 'CELL_INVALID',
      message: expect.stringMatching(
        /cell\.json: manifest rejected: mission: .*; agents\.0\.role:/,
      ),
    });
    await expect(
      provisionCell(root, {
        mission: 'dup',
        created_by: 'ops',
        agents: [
          { name: 'forge', role: 'a' },
          { name: 'forge', role: 'b' },
        ],
      }),
    ).rejects.toMatchObject({
      message: expect.stringContaining('agents.1.name: duplicate agent name forge'),
    });
    expect(await readdir(root)).toEqual([]);
  });

  it('refuses an existing uuid with CELL_EXISTS and a bad one with CELL_BAD_NAME', async () => {
    const root = await makeTempDir();
    const { manifest } = await provisionCell(root, { mission: 'first', created_by: 'ops' });
    await expect(
      provisionCell(root, { mission: 'second', created_by: 'ops', uuid: manifest.uuid }),
    ).rejects.toMatchObject({ code: 'CELL_EXISTS' });
    await expect(
      provisionCell(root, { mission: 'x', created_by: 'ops', uuid: '../../etc' }),
    ).rejects.toMatchObject({ code: 'CELL_BAD_NAME' });
    expect((await readManifest(join(root, manifest.uuid))).mission).toBe('first');
    expect(await readdir(root)).toEqual([manifest.uuid]);
  });

  it('refuses a cells root that is a file', async () => {
    const root = join(await makeTempDir(), 'missions');
    await writeFile(root, 'not a directory');
    await expect(provisionCell(root, { mission: 'm', created_by: 'ops' })).rejects.toMatchObject({
      code: 'CELL_NOT_A_CELL',
      message: expect.stringContaining('cells root'),
    });
  });

  it('never leaves a half cell that discovery would take for a real one when killed mid-way', async () => {
    const root = await makeTempDir();
    await mkdir(
      join(root, `${PROVISIONING_PREFIX}3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b.0000`, 'logs'),
      { recursive: true },
    );
    const provisioner = await bundleChild('provisioner.ts');
    const random = seededRandom(0xce11);
    const confirmed = new Set<string>();
    let next: Child = spawnBundled(provisioner, [root]);
    const kills = 20;
    for (let round = 0; round < kills; round += 1) {
      const current = next;
      await current.waitForLine((line) => line === 'ready');
      if (round + 1 < kills) next = spawnBundled(provisioner, [root]);
      current.send('go');
      const completed = Math.floor(random() * 2);
      if (completed > 0)
        await current.waitForLine(
          (line) =>
            current.lines.filter((seen) => seen.startsWith('cell ')).length >= completed &&
            line.startsWith('cell '),
        );
      await new Promise((resolve) => setTimeout(resolve, random() * 8));
      signalGroup(current, 'SIGKILL');
      await current.exited;
      for (const line of current.lines) if (line.startsWith('cell ')) confirmed.add(line.slice(5));
    }
    const found = await discoverCells(root);
    expect(found.problems).toEqual([]);
    // Every reported cell is there; every cell found is complete; leftovers are never cells.
    const uuids = new Set(found.supervised.map((cell) => cell.uuid));
    for (const uuid of confirmed) expect(uuids).toContain(uuid);
    for (const cell of found.supervised) await expectCompleteCell(cell.dir);
    expect(found.ignored.length).toBeGreaterThan(1);
    for (const ignored of found.ignored) expect(ignored.path).toContain(`/${PROVISIONING_PREFIX}`);
    expect(found.ignored.every((ignored) => ignored.reason.includes('not a cell'))).toBe(true);
  }, 120_000);
});
