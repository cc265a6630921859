import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cellPaths, provisionCell, readEvents } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, readTree } from '../test/helpers.js';
import { createCheckpoint, listCheckpoints, pruneCheckpoints } from './checkpoint.js';
import { sha256 } from './files.js';
import { restoreCheckpoint, restoreLimits } from './restore-checkpoint.js';

let root: string;
let cell: string;
let workspace: string;

beforeEach(async () => {
  root = await makeTempDir();
  cell = (
    await provisionCell(join(root, 'missions'), {
      mission: 'checkpoints',
      created_by: 'test',
      agents: [{ name: 'forge', role: 'lead' }],
    })
  ).dir;
  workspace = cellPaths(cell).workspace;
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function populate(): Promise<void> {
  await fs.writeFile(join(workspace, 'README.md'), '# mission\n');
  await fs.mkdir(join(workspace, 'src', 'deep', 'deeper'), { recursive: true });
  await fs.writeFile(join(workspace, 'src', 'main.ts'), 'export const x = 1;\n', { mode: 0o640 });
  await fs.writeFile(join(workspace, 'src', 'deep', 'deeper', 'blob.bin'), randomBytes(300 * 1024));
  await fs.writeFile(join(workspace, 'zeros.bin'), Buffer.alloc(2 * 1024 * 1024));
  await fs.writeFile(join(workspace, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await fs.writeFile(join(workspace, 'secret.key'), randomBytes(32), { mode: 0o600 });
  await fs.mkdir(join(workspace, 'empty'), { mode: 0o750 });
  await fs.mkdir(join(workspace, 'private'), { mode: 0o700 });
  await fs.mkdir(join(workspace, 'nested-empty', 'inner'), { recursive: true });
  await fs.symlink('src/main.ts', join(workspace, 'main-link'));
  await fs.writeFile(join(workspace, 'empty-file'), '');
}

describe('createCheckpoint', () => {
  it('writes <ts>.tar.gz and a manifest, and appends checkpoint_created', async () => {
    await populate();
    const now = new Date('2026-11-22T17:43:00.123Z');
    const checkpoint = await createCheckpoint(cell, {
      createdBy: 'forge',
      reason: 'before refactor',
      now: () => now,
    });
    expect(checkpoint.name).toBe('2026-11-22T17-43-00.123Z');
    expect(checkpoint.archive).toBe(join(cell, 'checkpoints', '2026-11-22T17-43-00.123Z.tar.gz'));
    const manifest = JSON.parse(
      await fs.readFile(join(cell, 'checkpoints', '2026-11-22T17-43-00.123Z.json'), 'utf8'),
    ) as Record<string, unknown>;
    const archive = await fs.readFile(checkpoint.archive);
    expect(manifest).toMatchObject({
      ts: now.toISOString(),
      sha256: sha256(archive),
      bytes: archive.length,
      files: 7,
      created_by: 'forge',
      reason: 'before refactor',
      skipped: [],
    });
    const events = [];
    for await (const entry of readEvents(cellPaths(cell).events)) events.push(entry);
    expect(events.at(-1)).toMatchObject({
      ok: true,
      known: true,
      event: {
        event: 'checkpoint_created',
        checkpoint: checkpoint.name,
        sha256: sha256(archive),
        bytes: archive.length,
      },
    });
    expect(
      (await fs.readdir(join(cell, 'checkpoints'))).filter((name) => name.endsWith('.tmp')),
    ).toEqual([]);
  });

  it('names two checkpoints of the same millisecond apart', async () => {
    const now = () => new Date('2026-11-22T17:43:00.123Z');
    const first = await createCheckpoint(cell, { createdBy: 'forge', now });
    const second = await createCheckpoint(cell, { createdBy: 'forge', now });
    expect([first.name, second.name]).toEqual([
      '2026-11-22T17-43-00.123Z',
      '2026-11-22T17-43-00.123Z-2',
    ]);
    expect((await listCheckpoints(cell)).checkpoints.map((item) => item.name)).toEqual([
      second.name,
      first.name,
    ]);
  });

  it('leaves out symlinks pointing out of the workspace and FIFOs, and says so', async () => {
    await fs.writeFile(join(workspace, 'ok.txt'), 'ok');
    await fs.symlink('/etc/passwd', join(workspace, 'passwd'));
    await fs.symlink('../../..', join(workspace, 'up'));
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [join(workspace, 'pipe')]);
    const checkpoint = await createCheckpoint(cell, { createdBy: 'forge' });
    expect(checkpoint.manifest.skipped.map((item) => item.path).sort()).toEqual([
      'passwd',
      'pipe',
      'up',
    ]);
    const restored = await restoreCheckpoint(cell, checkpoint.name);
    expect(restored.entries).toBe(2);
    expect(await fs.readdir(workspace)).toEqual(['ok.txt']);
  });

  it('refuses a cell without a workspace', async () => {
    await fs.rm(workspace, { recursive: true });
    await expect(createCheckpoint(cell, { createdBy: 'forge' })).rejects.toMatchObject({
      code: 'SNAPSHOT_NOT_FOUND',
    });
    await fs.symlink(root, workspace);
    await expect(createCheckpoint(cell, { createdBy: 'forge' })).rejects.toMatchObject({
      code: 'SNAPSHOT_UNSAFE_PATH',
    });
  });
});

describe('restoreCheckpoint', () => {
  it('round-trips binary files, empty directories, modes and links exactly', async () => {
    await populate();
    await fs.chmod(workspace, 0o750);
    const before = await readTree(workspace);
    const checkpoint = await createCheckpoint(cell, { createdBy: 'forge' });
    // The agent wrecks the workspace.
    await fs.rm(join(workspace, 'src'), { recursive: true });
    await fs.writeFile(join(workspace, 'README.md'), 'gone');
    await fs.chmod(join(workspace, 'run.sh'), 0o644);
    await fs.writeFile(join(workspace, 'junk'), 'junk');
    await fs.chmod(workspace, 0o777);
    const restored = await restoreCheckpoint(cell, {
      restoredBy: 'pit',
      reason: 'substitute takes over',
    });
    expect(restored.checkpoint.name).toBe(checkpoint.name);
    expect(await readTree(workspace)).toEqual(before);
    expect((await fs.stat(workspace)).mode & 0o7777).toBe(0o750);
    expect((await fs.readdir(cell)).filter((name) => name.startsWith('.workspace-'))).toEqual([]);
    const events = [];
    for await (const entry of readEvents(cellPaths(cell).events)) events.push(entry);
    expect(events.at(-1)).toMatchObject({
      ok: true,
      known: true,
      event: {
        event: 'checkpoint_restored',
        checkpoint: checkpoint.name,
        restored_by: 'pit',
        reason: 'substitute takes over',
      },
    });
  });

  it('restores the newest checkpoint by default, or the one named', async () => {
    let clock = Date.parse('2026-11-22T10:00:00.000Z');
    const now = () => new Date((clock += 1000));
    await fs.writeFile(join(workspace, 'v'), '1');
    const one = await createCheckpoint(cell, { createdBy: 'forge', now });
    await fs.writeFile(join(workspace, 'v'), '2');
    await createCheckpoint(cell, { createdBy: 'forge', now });
    await fs.writeFile(join(workspace, 'v'), '3');
    await restoreCheckpoint(cell);
    expect(await fs.readFile(join(workspace, 'v'), 'utf8')).toBe('2');
    await restoreCheckpoint(cell, one.name);
    expect(await fs.readFile(join(workspace, 'v'), 'utf8')).toBe('1');
  });

  it('refuses unknown and malformed checkpoint names', async () => {
    await expect(restoreCheckpoint(cell)).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
    await expect(restoreCheckpoint(cell, '2026-11-22T17-43-00.123Z')).rejects.toMatchObject({
      code: 'SNAPSHOT_NOT_FOUND',
    });
    await expect(restoreCheckpoint(cell, '../../etc/passwd')).rejects.toMatchObject({
      code: 'SNAPSHOT_BAD_NAME',
    });
  });
});

describe('listCheckpoints and pruneCheckpoints', () => {
  it('reports a corrupt manifest and a missing archive instead of skipping them', async () => {
    const good = await createCheckpoint(cell, {
      createdBy: 'forge',
      now: () => new Date('2026-11-22T10:00:00.000Z'),
    });
    const gone = await createCheckpoint(cell, {
      createdBy: 'forge',
      now: () => new Date('2026-11-22T11:00:00.000Z'),
    });
    await fs.rm(gone.archive);
    await fs.writeFile(join(cell, 'checkpoints', '2026-11-22T12-00-00.000Z.json'), '{ "ts": ');
    const list = await listCheckpoints(cell);
    expect(list.checkpoints.map((item) => item.name)).toEqual([good.name]);
    expect(list.problems.map((problem) => problem.name).sort()).toEqual([
      gone.name,
      '2026-11-22T12-00-00.000Z',
    ]);
  });

  it('keeps the newest N, removes those over the age limit but never the newest, and clears crash leftovers', async () => {
    const base = Date.parse('2026-11-22T10:00:00.000Z');
    const names: string[] = [];
    for (let i = 0; i < 6; i += 1)
      names.push(
        (
          await createCheckpoint(cell, {
            createdBy: 'forge',
            now: () => new Date(base + i * 3_600_000),
          })
        ).name,
      );
    const byCount = await pruneCheckpoints(cell, {
      keep: 4,
      now: () => new Date(base + 6 * 3_600_000),
    });
    expect(byCount.removed).toEqual([names[1], names[0]]);
    expect(byCount.kept).toEqual([names[5], names[4], names[3], names[2]]);
    // An orphan archive (crash between archive and manifest) and a dead writer's temp file.
    const dir = join(cell, 'checkpoints');
    await fs.writeFile(join(dir, '2026-11-22T09-00-00.000Z.tar.gz'), 'orphan');
    await fs.utimes(
      join(dir, '2026-11-22T09-00-00.000Z.tar.gz'),
      new Date(base - 7_200_000),
      new Date(base - 7_200_000),
    );
    await fs.writeFile(
      join(dir, '.2026-11-22T09-30-00.000Z.tar.gz.999999999.0123456789ab.tmp'),
      'partial',
    );
    const byAge = await pruneCheckpoints(cell, {
      keep: 10,
      maxAgeMs: 90 * 60_000,
      now: () => new Date(base + 5 * 3_600_000 + 60_000),
    });
    expect(byAge.removed).toEqual([names[3], names[2]]);
    expect(byAge.kept).toEqual([names[5], names[4]]);
    expect(byAge.leftovers.sort()).toEqual([
      '.2026-11-22T09-30-00.000Z.tar.gz.999999999.0123456789ab.tmp',
      '2026-11-22T09-00-00.000Z.tar.gz',
    ]);
    const old = await pruneCheckpoints(cell, {
      maxAgeMs: 1,
      now: () => new Date(base + 100 * 3_600_000),
    });
    expect(old.kept).toEqual([names[5]]);
    expect((await fs.readdir(dir)).sort()).toEqual([`${names[5]}.json`, `${names[5]}.tar.gz`]);
  });
});

describe('a checkpoint store outside the cell', () => {
  it('keeps archives in the store, ignores a future-named archive planted in the cell, and picks the newest by recorded time', async () => {
    await populate();
    const store = join(root, 'state', 'checkpoints', 'cell');
    const first = await createCheckpoint(cell, {
      store,
      createdBy: 'pit-daemon',
      now: () => new Date('2026-11-22T10:00:00.000Z'),
    });
    await fs.writeFile(join(workspace, 'README.md'), '# changed\n');
    const second = await createCheckpoint(cell, {
      store,
      createdBy: 'pit-daemon',
      now: () => new Date('2026-11-22T11:00:00.000Z'),
    });
    expect(first.archive.startsWith(store)).toBe(true);
    // An agent plants a copy named far in the future in the cell's own checkpoints/.
    const planted = join(cellPaths(cell).checkpoints, '2099-01-01T00-00-00.000Z');
    await fs.copyFile(first.archive, `${planted}.tar.gz`);
    await fs.writeFile(
      `${planted}.json`,
      JSON.stringify({ ...first.manifest, name: '2099-01-01T00-00-00.000Z' }),
    );
    const listed = await listCheckpoints(cell, { store });
    expect(listed.checkpoints.map((item) => item.name)).toEqual([second.name, first.name]);
    const restored = await restoreCheckpoint(cell, { store });
    expect(restored.checkpoint.name).toBe(second.name);
    expect(await fs.readFile(join(workspace, 'README.md'), 'utf8')).toBe('# changed\n');
  });

  it('orders by the manifest’s recorded time, not by file name', async () => {
    await populate();
    const store = join(root, 'store');
    const older = await createCheckpoint(cell, {
      store,
      createdBy: 'pit-daemon',
      now: () => new Date('2026-11-22T10:00:00.000Z'),
    });
    // A manifest renamed to a later name but recording the earlier time stays the older one.
    const later = '2098-01-01T00-00-00.000Z';
    await fs.rename(older.archive, join(store, `${later}.tar.gz`));
    await fs.writeFile(
      join(store, `${later}.json`),
      JSON.stringify({ ...older.manifest, name: later }),
    );
    await fs.rm(older.manifestPath);
    const newer = await createCheckpoint(cell, {
      store,
      createdBy: 'pit-daemon',
      now: () => new Date('2026-11-22T12:00:00.000Z'),
    });
    const listed = await listCheckpoints(cell, { store });
    expect(listed.checkpoints.map((item) => item.name)).toEqual([newer.name, later]);
  });
});

describe('restoreLimits', () => {
  it('derives the limits from the checkpoint (4×, with a floor) and never exceeds the caps', () => {
    expect(restoreLimits({ entries: 100, unpacked_bytes: 10 * 1024 ** 2 })).toEqual({
      maxEntries: 400,
      maxBytes: 40 * 1024 ** 2,
    });
    expect(restoreLimits({ entries: 1, unpacked_bytes: 10 })).toEqual({
      maxEntries: 64,
      maxBytes: 1024 ** 2,
    });
    expect(
      restoreLimits({ entries: 1e6, unpacked_bytes: 1e12 }, { maxEntries: 5000, maxBytes: 1e9 }),
    ).toEqual({ maxEntries: 5000, maxBytes: 1e9 });
  });
});
