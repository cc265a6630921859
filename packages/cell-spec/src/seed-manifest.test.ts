import { mkdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fixtureText, makeTempDir, removeTempDirs } from './__fixtures__/helpers.js';
import { discoverCells } from './discover.js';
import { readManifest, updateManifest } from './manifest.js';
import { applySeedDefaults, SEED_MANIFEST_DEFAULTS } from './seed-manifest.js';

afterEach(removeTempDirs);

/** The uuid of the seed's example cell (mission-cell-spec.md in seed 001). */
const SEED_UUID = 'a3f7c901-1234-4b5e-8def-000000000001';

/** A cell whose cell.json is exactly what seed 001's `_make_cell` writes (seed-001-cell.json). */
async function seedCell(): Promise<{ root: string; dir: string }> {
  const root = await makeTempDir();
  const dir = join(root, SEED_UUID);
  await mkdir(dir);
  await writeFile(join(dir, 'cell.json'), await fixtureText('seed-001-cell.json'));
  await utimes(
    join(dir, 'cell.json'),
    new Date('2026-04-06T00:00:00Z'),
    new Date('2026-04-06T00:00:00Z'),
  );
  return { root, dir };
}

describe('seed-format cell.json', () => {
  it('is discovered as a supervised cell, listing the fields it defaulted', async () => {
    const { root } = await seedCell();
    const found = await discoverCells(root);
    expect(found.problems).toEqual([]);
    expect(found.supervised).toHaveLength(1);
    const cell = found.supervised[0]!;
    expect(cell.defaulted).toEqual([
      'created_at',
      'created_by',
      'agents.0.role',
      'agents.0.joined_at',
    ]);
    expect(cell.manifest).toMatchObject({
      uuid: SEED_UUID,
      status: 'active',
      mission: 'test mission',
      created_at: '2026-04-06T00:00:00.000Z',
      created_by: SEED_MANIFEST_DEFAULTS.created_by,
      agents: [
        {
          name: 'claude',
          role: SEED_MANIFEST_DEFAULTS.role,
          joined_at: '2026-04-06T00:00:00.000Z',
        },
      ],
    });
  });

  it('is read the same way through the thread pool and by readManifest', async () => {
    const { root, dir } = await seedCell();
    const found = await discoverCells(root, { sliceMs: 0 });
    expect(found.supervised[0]?.defaulted).toHaveLength(4);
    expect((await readManifest(dir)).created_by).toBe('unknown');
  });

  it('has its defaults written out by the first update, after which nothing is defaulted', async () => {
    const { root, dir } = await seedCell();
    await updateManifest(dir, (manifest) => {
      manifest.issue = 'https://forge.example/issues/879';
    });
    const written = JSON.parse(await readFile(join(dir, 'cell.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(written).toMatchObject({ created_by: 'unknown', revision: 1 });
    const found = await discoverCells(root);
    expect(found.supervised[0]?.defaulted).toBeUndefined();
  });

  it('still refuses a field that is present but wrong, naming it', async () => {
    const { root, dir } = await seedCell();
    const raw = JSON.parse(await fixtureText('seed-001-cell.json')) as {
      agents: Array<Record<string, unknown>>;
    };
    raw.agents[0]!.role = '';
    await writeFile(join(dir, 'cell.json'), JSON.stringify(raw));
    const found = await discoverCells(root);
    expect(found.supervised).toEqual([]);
    expect(found.problems[0]?.kind).toBe('corrupt_manifest');
    expect(found.problems[0]?.reason).toMatch(/agents\.0\.role/);
  });

  it('leaves a full manifest alone (nothing defaulted) and never calls the clock for it', () => {
    const full = {
      uuid: SEED_UUID,
      mission: 'm',
      created_at: '2026-04-06T00:00:00Z',
      created_by: 'allegro',
      status: 'active',
      agents: [{ name: 'claude', role: 'developer', joined_at: '2026-04-06T00:01:00Z' }],
    };
    const result = applySeedDefaults(full, () => {
      throw new Error('the clock is not needed');
    });
    expect(result).toEqual({ value: full, defaulted: [] });
  });

  it('takes created_at from the file when the seed leaves it out', async () => {
    const { dir } = await seedCell();
    const mtime = (await stat(join(dir, 'cell.json'))).mtime.toISOString();
    expect((await readManifest(dir)).created_at).toBe(mtime);
  });
});
