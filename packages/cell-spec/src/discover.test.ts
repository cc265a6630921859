import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from './__fixtures__/helpers.js';
import { discoverCells } from './discover.js';
import { provisionCell } from './provision.js';
import { transitionCell } from './transition.js';

afterEach(removeTempDirs);

const UUID = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

describe('discoverCells', () => {
  it('splits supervised (active, frozen) from other valid cells, sorted by uuid', async () => {
    const root = await makeTempDir();
    const active = await provisionCell(root, { mission: 'a', created_by: 'ops', uuid: UUID(3) });
    const frozen = await provisionCell(root, { mission: 'f', created_by: 'ops', uuid: UUID(1) });
    await transitionCell(frozen.dir, 'frozen');
    const provisioning = await provisionCell(root, {
      mission: 'p',
      created_by: 'ops',
      uuid: UUID(2),
      status: 'provisioning',
    });
    const archived = await provisionCell(root, { mission: 'r', created_by: 'ops', uuid: UUID(4) });
    await transitionCell(archived.dir, 'archived');
    const found = await discoverCells(root, { concurrency: 2 });
    expect(found.supervised.map((cell) => [cell.uuid, cell.manifest.status])).toEqual([
      [UUID(1), 'frozen'],
      [UUID(3), 'active'],
    ]);
    expect(found.unsupervised.map((cell) => [cell.uuid, cell.manifest.status])).toEqual([
      [UUID(2), 'provisioning'],
      [UUID(4), 'archived'],
    ]);
    expect(found.supervised[1]!.dir).toBe(active.dir);
    expect(provisioning.manifest.status).toBe('provisioning');
    expect(found.problems).toEqual([]);
  });

  it('reports every kind of problem with its path and reason, skipping nothing', async () => {
    const root = await makeTempDir();
    const good = await provisionCell(root, { mission: 'good', created_by: 'ops', uuid: UUID(1) });
    // not_a_directory: a file, and a symlink to a real cell
    await writeFile(join(root, UUID(2)), 'a file where a cell should be');
    await symlink(good.dir, join(root, UUID(3)));
    // bad_dirname
    await mkdir(join(root, 'notes'));
    // missing_manifest
    await mkdir(join(root, UUID(4)));
    // corrupt_manifest: bad JSON, and a bad field
    await mkdir(join(root, UUID(5)));
    await writeFile(join(root, UUID(5), 'cell.json'), '{"uuid": ');
    const base = JSON.parse(await readFile(join(good.dir, 'cell.json'), 'utf8'));
    await mkdir(join(root, UUID(6)));
    await writeFile(
      join(root, UUID(6), 'cell.json'),
      JSON.stringify({
        ...base,
        uuid: UUID(6),
        agents: [{ name: 'Bad Name', role: 'x', joined_at: base.created_at }],
      }),
    );
    // unknown_status
    await mkdir(join(root, UUID(7)));
    await writeFile(
      join(root, UUID(7), 'cell.json'),
      JSON.stringify({ ...base, uuid: UUID(7), status: 'hibernating' }),
    );
    // uuid_mismatch
    await mkdir(join(root, UUID(8)));
    await writeFile(join(root, UUID(8), 'cell.json'), JSON.stringify(base));
    // a cell.json that is a symlink out of the cell
    await mkdir(join(root, UUID(9)));
    await symlink('/etc/passwd', join(root, UUID(9), 'cell.json'));
    // hidden leftovers: not cells, listed as ignored
    await mkdir(join(root, `.provisioning-${UUID(10)}.abcd`));
    await mkdir(join(root, `.destroying-${UUID(11)}.abcd`));

    const found = await discoverCells(root);
    expect(found.supervised.map((cell) => cell.uuid)).toEqual([UUID(1)]);
    const problems = found.problems.map((problem) => [problem.kind, problem.path]);
    expect(problems).toEqual([
      ['not_a_directory', join(root, UUID(2))],
      ['not_a_directory', join(root, UUID(3))],
      ['missing_manifest', join(root, UUID(4), 'cell.json')],
      ['corrupt_manifest', join(root, UUID(5), 'cell.json')],
      ['corrupt_manifest', join(root, UUID(6), 'cell.json')],
      ['unknown_status', join(root, UUID(7), 'cell.json')],
      ['uuid_mismatch', join(root, UUID(8), 'cell.json')],
      ['corrupt_manifest', join(root, UUID(9), 'cell.json')],
      ['bad_dirname', join(root, 'notes')],
    ]);
    const reasons = Object.fromEntries(
      found.problems.map((problem) => [problem.path, problem.reason]),
    );
    expect(reasons[join(root, UUID(2))]).toMatch(/found a file/);
    expect(reasons[join(root, UUID(3))]).toMatch(/symbolic link/);
    expect(reasons[join(root, UUID(5), 'cell.json')]).toMatch(/not valid JSON/);
    expect(reasons[join(root, UUID(6), 'cell.json')]).toMatch(/agents\.0\.name: must match/);
    expect(reasons[join(root, UUID(7), 'cell.json')]).toMatch(
      /status: "hibernating" is not one of provisioning, active, frozen, archived, destroyed/,
    );
    expect(reasons[join(root, UUID(8), 'cell.json')]).toMatch(
      new RegExp(`uuid: ${UUID(1)} does not match the directory name ${UUID(8)}`),
    );
    expect(reasons[join(root, UUID(9), 'cell.json')]).toMatch(/symbolic link; refused/);
    expect(reasons[join(root, 'notes')]).toMatch(/version-4 UUID/);
    expect(found.ignored.map((ignored) => ignored.path)).toEqual([
      join(root, `.destroying-${UUID(11)}.abcd`),
      join(root, `.provisioning-${UUID(10)}.abcd`),
    ]);
    // Reading through the thread pool finds exactly the same, in the same order.
    expect(await discoverCells(root, { sliceMs: 0, concurrency: 3 })).toEqual(found);
    // So do time slices so short that every manifest gets a slice of its own.
    expect(await discoverCells(root, { sliceMs: 0.0001 })).toEqual(found);
  });

  it('treats a missing root as empty and reports an unreadable one', async () => {
    const dir = await makeTempDir();
    expect(await discoverCells(join(dir, 'missing'))).toEqual({
      supervised: [],
      unsupervised: [],
      problems: [],
      ignored: [],
    });
    await writeFile(join(dir, 'file'), 'x');
    const found = await discoverCells(join(dir, 'file'));
    expect(found.problems).toEqual([
      {
        path: join(dir, 'file'),
        kind: 'unreadable',
        reason: expect.stringMatching(/cannot read the cells root: ENOTDIR/),
      },
    ]);
  });
});
