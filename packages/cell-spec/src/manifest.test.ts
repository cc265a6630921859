import { existsSync } from 'node:fs';
import { readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { missionFor } from './__fixtures__/children/content.js';
import {
  bundleChild,
  fixture,
  makeTempDir,
  reapChildren,
  removeTempDirs,
  seededRandom,
  signalGroup,
  spawnBundled,
  spawnChild,
  type Child,
} from './__fixtures__/helpers.js';
import { PitError } from './errors.js';
import { readEvents } from './events.js';
import { CellManifestSchema, readManifest, updateManifest, type CellManifest } from './manifest.js';
import { cellPaths } from './paths.js';
import { provisionCell } from './provision.js';

afterEach(async () => {
  await reapChildren();
  await removeTempDirs();
});

async function codeOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (!PitError.is(error)) throw error;
    return { code: error.code, message: error.message };
  }
  throw new Error('expected a PitError, but the call succeeded');
}

async function newCell(agents = [{ name: 'forge', role: 'lead' }]) {
  const root = await makeTempDir();
  const { dir, manifest } = await provisionCell(root, {
    mission: 'Port the parser',
    created_by: 'ops',
    agents,
  });
  return { root, dir, manifest };
}

describe('CellManifestSchema', () => {
  it('accepts a realistic manifest', async () => {
    const parsed = CellManifestSchema.safeParse(await fixture('cell.json'));
    expect(parsed.success).toBe(true);
  });

  it('defaults the revision of a manifest written by a harness that does not know it', async () => {
    const manifest = await fixture('cell.json');
    delete manifest.revision;
    expect(CellManifestSchema.parse(manifest).revision).toBe(0);
  });

  it.each<
    [
      string,
      (manifest: Record<string, unknown> & { agents: Array<Record<string, unknown>> }) => void,
      RegExp,
    ]
  >([
    ['an unknown key in our own file', (m) => void (m.owner = 'x'), /Unrecognized key.*"owner"/],
    ['a wrong type', (m) => void (m.revision = '17'), /revision: .*expected number/],
    ['an unknown status', (m) => void (m.status = 'sleeping'), /status: .*"provisioning"/],
    [
      'a traversal agent name',
      (m) => void (m.agents[1]!.name = '../../etc'),
      /agents\.1\.name: must match/,
    ],
    [
      'a duplicate agent',
      (m) => void (m.agents[2]!.name = 'forge'),
      /agents\.2\.name: duplicate agent name forge/,
    ],
    [
      'a local timestamp',
      (m) => void (m.created_at = '2026-11-20T09:14:03+02:00'),
      /created_at: must be an ISO-8601 UTC timestamp/,
    ],
    ['a missing mission', (m) => void delete m.mission, /mission: .*expected string/],
    ['an isolation level 4', (m) => void (m.isolation = { level: 4 }), /isolation\.level/],
    ['a relative home', (m) => void (m.agents[0]!.home = 'home/forge'), /agents\.0\.home/],
    [
      'a non-v4 uuid',
      (m) => void (m.uuid = '3f2a1c4e-9b7d-1e2f-8a1b-0c9d8e7f6a5b'),
      /uuid: must be a lower-case version-4 UUID/,
    ],
  ])('rejects %s, naming the field', async (_label, breakIt, expected) => {
    const manifest = await fixture<
      Record<string, unknown> & { agents: Array<Record<string, unknown>> }
    >('cell.json');
    breakIt(manifest);
    const parsed = CellManifestSchema.safeParse(manifest);
    expect(parsed.success).toBe(false);
    const { formatIssues } = await import('./format-issues.js');
    expect(formatIssues(parsed.error!)).toMatch(expected);
  });
});

describe('readManifest', () => {
  it('reads what provisionCell wrote', async () => {
    const { dir, manifest } = await newCell();
    expect(await readManifest(dir)).toEqual(manifest);
  });

  it('names the file and the field of a broken manifest', async () => {
    const { dir } = await newCell();
    const manifest = JSON.parse(await readFile(join(dir, 'cell.json'), 'utf8'));
    manifest.agents[0].name = 'Forge!';
    manifest.extra = true;
    await writeFile(join(dir, 'cell.json'), JSON.stringify(manifest));
    const { code, message } = await codeOf(readManifest(dir));
    expect(code).toBe('CELL_INVALID');
    expect(message).toContain(join(dir, 'cell.json'));
    expect(message).toMatch(/agents\.0\.name: must match/);
    expect(message).toMatch(/extra/);
  });

  it('refuses corrupt JSON with CELL_INVALID', async () => {
    const { dir } = await newCell();
    await writeFile(join(dir, 'cell.json'), '{"uuid": "3f2a1c4e-');
    const { code, message } = await codeOf(readManifest(dir));
    expect(code).toBe('CELL_INVALID');
    expect(message).toMatch(/cell\.json: not valid JSON/);
  });

  it('refuses a cell.json that is a symlink to a file outside the cell', async () => {
    const { root, dir } = await newCell();
    const secret = join(root, 'shadow');
    await writeFile(secret, 'root:$6$secret:19000:0:99999:7:::\n');
    await writeFile(join(dir, 'cell.json'), '');
    const { rm } = await import('node:fs/promises');
    await rm(join(dir, 'cell.json'));
    await symlink(secret, join(dir, 'cell.json'));
    const { code, message } = await codeOf(readManifest(dir));
    expect(code).toBe('CELL_UNSAFE_PATH');
    expect(message).toMatch(/cell\.json: .*symbolic link/);
  });

  it('refuses a cell dir that is a file, and one that is a symlink', async () => {
    const root = await makeTempDir();
    await writeFile(join(root, 'not-a-dir'), 'hello');
    expect(await codeOf(readManifest(join(root, 'not-a-dir')))).toMatchObject({
      code: 'CELL_NOT_A_CELL',
      message: expect.stringMatching(/expected a cell directory, found a file/),
    });
    const { dir } = await newCell();
    await symlink(dir, join(root, 'linked'));
    expect(await codeOf(readManifest(join(root, 'linked')))).toMatchObject({
      code: 'CELL_UNSAFE_PATH',
      message: expect.stringMatching(/symbolic link/),
    });
  });

  it('refuses a manifest over 1 MiB without reading it', async () => {
    const { dir } = await newCell();
    await writeFile(join(dir, 'cell.json'), `{"pad":"${'x'.repeat(2 * 1024 * 1024)}"}`);
    expect(await codeOf(readManifest(dir))).toMatchObject({
      code: 'CELL_TOO_LARGE',
      message: expect.stringMatching(/exceeds the limit of 1048576 bytes/),
    });
  });

  it('says CELL_NOT_FOUND for a missing cell', async () => {
    const root = await makeTempDir();
    expect((await codeOf(readManifest(join(root, 'nope')))).code).toBe('CELL_NOT_FOUND');
  });
});

describe('updateManifest', () => {
  it('applies a change, increments the revision and stamps updated_at', async () => {
    const { dir } = await newCell();
    const now = new Date('2026-11-22T10:00:00.000Z');
    const updated = await updateManifest(
      dir,
      (m) => void (m.issue = 'https://gitea.example.org/pit/missions/issues/7'),
      { now: () => now },
    );
    expect(updated).toMatchObject({
      revision: 1,
      issue: 'https://gitea.example.org/pit/missions/issues/7',
      updated_at: now.toISOString(),
    });
    expect(await readManifest(dir)).toEqual(updated);
  });

  it('accepts a change that returns a new manifest', async () => {
    const { dir } = await newCell();
    const updated = await updateManifest(dir, (m) => ({ ...m, name: 'renamed' }));
    expect(updated.name).toBe('renamed');
  });

  it('writes nothing when the result breaks the schema, and names the field', async () => {
    const { dir, manifest } = await newCell();
    const { code, message } = await codeOf(
      updateManifest(dir, (m) => void (m.agents[0]!.name = '../../etc')),
    );
    expect(code).toBe('CELL_INVALID');
    expect(message).toMatch(/cell\.json: update rejected: agents\.0\.name: must match/);
    expect(await readManifest(dir)).toEqual(manifest);
  });

  it('refuses to change the uuid', async () => {
    const { dir } = await newCell();
    const { code, message } = await codeOf(
      updateManifest(dir, (m) => void (m.uuid = '00000000-0000-4000-8000-000000000000')),
    );
    expect(code).toBe('CELL_INVALID');
    expect(message).toMatch(/uuid: may not change/);
  });

  it('refuses with CELL_CONFLICT when the expected revision is stale (compare-and-swap)', async () => {
    const { dir } = await newCell();
    await updateManifest(dir, (m) => void (m.name = 'first'), { expectedRevision: 0 });
    const { code, message } = await codeOf(
      updateManifest(dir, (m) => void (m.name = 'second'), { expectedRevision: 0 }),
    );
    expect(code).toBe('CELL_CONFLICT');
    expect(message).toMatch(/revision is 1, expected 0/);
    expect((await readManifest(dir)).name).toBe('first');
  });

  it('enforces the lifecycle on a status change, naming both states, and writes nothing', async () => {
    const { dir } = await newCell();
    const { code, message } = await codeOf(
      updateManifest(dir, (m) => void (m.status = 'destroyed')),
    );
    expect(code).toBe('CELL_ILLEGAL_TRANSITION');
    expect(message).toMatch(/cannot go from active to destroyed/);
    expect((await readManifest(dir)).status).toBe('active');
  });

  it('appends the lifecycle event of a legal status change', async () => {
    const { dir } = await newCell();
    await updateManifest(dir, (m) => void (m.status = 'frozen'), { reason: 'maintenance' });
    const kinds: unknown[] = [];
    for await (const entry of readEvents(cellPaths(dir).events))
      if (entry.ok) kinds.push(entry.event);
    expect(kinds.at(-1)).toMatchObject({
      event: 'cell_frozen',
      from: 'active',
      reason: 'maintenance',
    });
  });

  it('passes an error thrown by the change through and releases the lock', async () => {
    const { dir } = await newCell();
    await expect(updateManifest(dir, () => Promise.reject(new Error('boom')))).rejects.toThrow(
      'boom',
    );
    expect(existsSync(join(dir, 'cell.json.lock'))).toBe(false);
    expect((await updateManifest(dir, () => undefined)).revision).toBe(1);
  });

  it('loses no update when several processes update the same manifest at once', async () => {
    const { dir } = await newCell([]);
    const workers = 4;
    const perWorker = 25;
    const children = Array.from({ length: workers }, (_, index) =>
      spawnChild('manifest-incrementer.ts', [dir, String(index), String(perWorker)]),
    );
    await Promise.all(children.map((child) => child.waitForLine((line) => line === 'ready')));
    for (const child of children) child.send('go');
    await Promise.all(
      children.map((child) => child.waitForLine((line) => line === 'done', 120_000)),
    );
    const results = await Promise.all(children.map((child) => child.exited));
    expect(results.every((result) => result.code === 0)).toBe(true);
    const manifest = await readManifest(dir);
    expect(manifest.revision).toBe(workers * perWorker);
    const names = new Set(manifest.agents.map((agent) => agent.name));
    expect(names.size).toBe(workers * perWorker);
    for (let worker = 0; worker < workers; worker += 1)
      for (let index = 0; index < perWorker; index += 1)
        expect(names).toContain(`w${worker}-${index}`);
  }, 120_000);
});

describe('updateManifest under SIGKILL', () => {
  it('always leaves the old or the new valid manifest, and a killed updater never blocks the next update', async () => {
    const { dir } = await newCell();
    const manifestPath = join(dir, 'cell.json');
    // The parent's own updates write the same deterministic content as the child's.
    const parentUpdate = () =>
      updateManifest(dir, (m) => void (m.mission = missionFor(m.revision + 1)), {
        lockTimeoutMs: 5000,
      });
    let confirmed = (await parentUpdate()).revision;
    const random = seededRandom(0x5eed1);
    const kills = 100;
    const writer = await bundleChild('manifest-writer.ts');
    let staleLocks = 0;
    let killedMidWrite = 0;
    let next: Child = spawnBundled(writer, [dir]);
    for (let round = 0; round < kills; round += 1) {
      const current = next;
      await current.waitForLine((line) => line === 'ready');
      // Start the next writer now, so its start-up overlaps this one's run.
      if (round + 1 < kills) next = spawnBundled(writer, [dir]);
      current.send('go');
      // The seeded schedule: kill after 0–3 completed updates, then 0–6 ms into the next one.
      const completed = Math.floor(random() * 4);
      if (completed > 0)
        await current.waitForLine((line) => line === `rev ${confirmed + completed}`);
      await new Promise((resolve) => setTimeout(resolve, random() * 6));
      signalGroup(current, 'SIGKILL');
      const { signal } = await current.exited;
      expect(signal).toBe('SIGKILL');
      const reported = current.lines
        .filter((line) => line.startsWith('rev '))
        .map((line) => Number(line.slice(4)));
      const lastReported = Math.max(confirmed, ...reported);
      if (existsSync(`${manifestPath}.lock`)) staleLocks += 1;
      // Old or new content: a valid manifest at the last reported revision or the one being written.
      const onDisk = await readManifest(dir);
      expect([lastReported, lastReported + 1]).toContain(onDisk.revision);
      expect(onDisk.mission).toBe(missionFor(onDisk.revision));
      if (onDisk.revision === lastReported + 1) killedMidWrite += 1;
      // The stale lock (if the child died holding it) must not block this update.
      confirmed = (await parentUpdate()).revision;
      expect(confirmed).toBe(onDisk.revision + 1);
    }
    await next.exited.catch(() => undefined);
    // Killed writers' temp files are cleaned up by the next update.
    const leftovers = (await readdir(dir)).filter((name) => name.endsWith('.tmp'));
    expect(leftovers).toEqual([]);
    expect(staleLocks).toBeGreaterThan(0);
    // Both kinds of kill moment happen: inside the lock (it is left behind) and between rename and report.
    expect(killedMidWrite + staleLocks).toBeGreaterThan(0);
    const final: CellManifest = await readManifest(dir);
    expect(final.revision).toBe(confirmed);
  }, 180_000);
});
