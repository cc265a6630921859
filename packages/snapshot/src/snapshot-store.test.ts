import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { appendEvent, CellEventSchema, provisionCell, readEvents, cellPaths } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, mountTmpfs, readTree } from '../test/helpers.js';
import { SnapshotError } from './errors.js';
import { sha256 } from './files.js';
import { createSnapshotStore, type SnapshotStore } from './snapshot-store.js';

let root: string;
let stateDir: string;
let requestLog: string;
let config: string;
let store: SnapshotStore;

const parsesAsJson = (bytes: Buffer) => JSON.parse(bytes.toString('utf8'));

async function readLog(path: string): Promise<Array<Record<string, unknown>>> {
  const text = await fs.readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** A file tree's names, sizes and mtimes: proves that nothing was written. */
async function fingerprint(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (current: string) => {
    for (const name of (await fs.readdir(current)).sort()) {
      const path = join(current, name);
      const stat = await fs.lstat(path);
      out.push(`${path} ${stat.ino} ${stat.size} ${stat.mtimeMs} ${stat.ctimeMs}`);
      if (stat.isDirectory()) await walk(path);
    }
  };
  await walk(dir);
  return out;
}

beforeEach(async () => {
  root = await makeTempDir();
  stateDir = join(root, 'state');
  requestLog = join(root, 'state', 'requests.jsonl');
  config = join(root, 'home', 'forge', '.config', 'agent');
  await fs.mkdir(config, { recursive: true });
  await fs.mkdir(stateDir, { recursive: true });
  await fs.writeFile(
    join(config, 'agent.json'),
    '{\n  "model": "claude-sonnet",\n  "provider": "anthropic"\n}\n',
    { mode: 0o600 },
  );
  await fs.mkdir(join(config, 'providers'), { mode: 0o750 });
  await fs.writeFile(
    join(config, 'providers', 'anthropic.json'),
    '{ "base_url": "https://api.anthropic.com" }\n',
    { mode: 0o640 },
  );
  await fs.writeFile(join(config, 'start.sh'), '#!/bin/sh\nexec agent --config agent.json\n', {
    mode: 0o755,
  });
  store = createSnapshotStore({ stateDir, requestLog });
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('createSnapshotStore', () => {
  it('deadman: healthy → snapshot saved; failure → config rolled back to last known good; rollback logged with timestamp, agent, old and new hash; snapshot in a predictable per-agent place', async () => {
    const configFile = join(config, 'agent.json');
    const goodBytes = await fs.readFile(configFile);
    const goodTree = await readTree(config);

    // Healthy check → snapshot saved as last known good.
    const saved = await store.snapshot('forge', [config], {
      validate: (bytes, path) => (path.endsWith('.json') ? parsesAsJson(bytes) : undefined),
    });
    expect(saved.status).toBe('saved');
    expect(saved.previous).toBeNull();

    // …in a predictable per-agent place.
    const dir = join(stateDir, 'snapshots', 'forge');
    expect(saved.dir).toBe(dir);
    const pointer = JSON.parse(await fs.readFile(join(dir, 'last-good.json'), 'utf8')) as {
      current: string;
    };
    expect(pointer.current).toBe(saved.set);
    await expect(fs.access(join(dir, 'sets', `${saved.set}.json`))).resolves.toBeUndefined();
    for (const file of saved.files)
      expect(sha256(await fs.readFile(join(dir, 'objects', file.sha256)))).toBe(file.sha256);

    // The agent mutates its own config at runtime (a new model and provider), corrupts it, and dies.
    const agent = spawn(process.execPath, [
      '-e',
      `const fs = require('node:fs');
       fs.writeFileSync(${JSON.stringify(configFile)}, '{\\n  "model": "gpt-9-preview",\\n  "provider": "openrouter",\\n  "api_key": ');
       fs.chmodSync(${JSON.stringify(configFile)}, 0o644);
       fs.writeFileSync(${JSON.stringify(join(config, 'providers', 'openrouter.json'))}, '{}');
       process.exit(1);`,
    ]);
    const [exitCode] = (await once(agent, 'exit')) as [number];
    expect(exitCode).toBe(1);
    const corruptBytes = await fs.readFile(configFile);
    expect(() => parsesAsJson(corruptBytes)).toThrow();

    // Failure → the config is rolled back to last known good before the restart.
    const rolledBack = await store.rollback('forge', { reason: 'agent_dead: exited with code 1' });
    expect(rolledBack.status).toBe('rolled_back');
    expect(rolledBack.source).toBe('snapshot');
    expect(rolledBack.files).toEqual([
      { path: configFile, old_sha256: sha256(corruptBytes), new_sha256: sha256(goodBytes) },
    ]);
    expect(await fs.readFile(configFile)).toEqual(goodBytes);
    expect((await fs.stat(configFile)).mode & 0o7777).toBe(0o600);
    expect(await readTree(config)).toEqual(goodTree);
    // The file the agent added was moved into the store, not deleted.
    expect(rolledBack.moved_aside).toEqual([
      { path: join(config, 'providers', 'openrouter.json'), sha256: sha256('{}'), kind: 'file' },
    ]);
    expect((await fs.readFile(join(dir, 'objects', sha256('{}')))).toString()).toBe('{}');

    // The rollback is logged with timestamp, agent, old and new hash.
    const log = await readLog(requestLog);
    expect(log).toHaveLength(1);
    const record = log[0] as Record<string, unknown>;
    expect(record).toMatchObject({
      agent: 'forge',
      event: 'config_rolled_back',
      reason: 'agent_dead: exited with code 1',
    });
    expect(Date.parse(record.ts as string)).not.toBeNaN();
    expect(record.files).toEqual([
      { path: configFile, old_sha256: sha256(corruptBytes), new_sha256: sha256(goodBytes) },
    ]);
    expect(CellEventSchema.safeParse(record).success).toBe(true);
    expect(record).toEqual(rolledBack.record);

    // The same record fits a cell's events.jsonl.
    const cell = await provisionCell(join(root, 'missions'), {
      mission: 'deadman',
      created_by: 'test',
      agents: [{ name: 'forge', role: 'lead' }],
    });
    await appendEvent(cellPaths(cell.dir).events, rolledBack.record!);
    const events = [];
    for await (const entry of readEvents(cellPaths(cell.dir).events)) events.push(entry);
    expect(events.at(-1)).toMatchObject({
      ok: true,
      known: true,
      event: { event: 'config_rolled_back', agent: 'forge' },
    });
  });

  it('a second rollback is a no-op: nothing written, nothing logged', async () => {
    await store.snapshot('forge', [config]);
    await fs.writeFile(join(config, 'agent.json'), 'garbage');
    expect((await store.rollback('forge')).status).toBe('rolled_back');
    const before = await fingerprint(root);
    const second = await store.rollback('forge');
    expect(second).toMatchObject({ status: 'unchanged', files: [], moved_aside: [], record: null });
    expect(await readLog(requestLog)).toHaveLength(1);
    const after = (await fingerprint(root)).filter(
      (line) => !line.includes(`${join(stateDir, 'snapshots', 'forge')} `),
    );
    expect(after).toEqual(
      before.filter((line) => !line.includes(`${join(stateDir, 'snapshots', 'forge')} `)),
    );
  });

  it('confirms an unchanged config with stat calls only and writes nothing', async () => {
    const t0 = Date.now();
    const clock = { now: t0 };
    store = createSnapshotStore({ stateDir, now: () => new Date(clock.now) });
    const first = await store.snapshot('forge', [config]);
    clock.now = t0 + 10_000; // past the racy window: cached hashes are trusted
    await store.snapshot('forge', [config]);
    const before = await fingerprint(root);
    const again = await store.snapshot('forge', [config]);
    expect(again).toMatchObject({ status: 'unchanged', set: first.set });
    expect(await fingerprint(root)).toEqual(before);
  });

  it('notices an edit that keeps the size and the mtime (ctime and inode are part of the key)', async () => {
    const t0 = Date.now();
    const clock = { now: t0 };
    store = createSnapshotStore({ stateDir, now: () => new Date(clock.now) });
    const path = join(config, 'agent.json');
    const first = await store.snapshot('forge', [config]);
    clock.now = t0 + 10_000;
    await store.snapshot('forge', [config]);
    const stat = await fs.stat(path);
    const original = await fs.readFile(path, 'utf8');
    const handle = await fs.open(path, 'r+');
    await handle.write(original.replace('sonnet', 'SONNET'), 0);
    await handle.close();
    await fs.utimes(path, stat.atime, stat.mtime);
    expect((await fs.stat(path)).size).toBe(stat.size);
    const second = await store.snapshot('forge', [config]);
    expect(second.status).toBe('saved');
    expect(second.set).not.toBe(first.set);
  });

  it('takes a new snapshot when the config changes and keeps the previous one in the history', async () => {
    const first = await store.snapshot('forge', [config]);
    await fs.writeFile(join(config, 'agent.json'), '{ "model": "claude-opus" }\n', { mode: 0o600 });
    const second = await store.snapshot('forge', [config]);
    expect(second).toMatchObject({ status: 'saved', previous: first.set });
    const history = await store.history('forge');
    expect(history.map((entry) => [entry.set, entry.current])).toEqual([
      [second.set, true],
      [first.set, false],
    ]);
    expect(history[0]?.files).toBe(3);
  });

  it('restores files deleted since the snapshot and moves added ones into the store, never deleting them', async () => {
    await store.snapshot('forge', [config]);
    const good = await readTree(config);
    await fs.rm(join(config, 'providers'), { recursive: true });
    await fs.writeFile(join(config, 'notes.md'), 'agent scribbles\n');
    await fs.mkdir(join(config, 'cache'));
    await fs.writeFile(join(config, 'cache', 'blob.bin'), Buffer.from([0, 1, 2, 255]));
    await fs.symlink('agent.json', join(config, 'current'));
    const result = await store.rollback('forge');
    expect(result.files).toEqual([
      {
        path: join(config, 'providers', 'anthropic.json'),
        old_sha256: null,
        new_sha256: expect.any(String),
      },
    ]);
    expect(result.moved_aside.map((file) => [file.path, file.kind])).toEqual([
      [join(config, 'cache', 'blob.bin'), 'file'],
      [join(config, 'current'), 'symlink'],
      [join(config, 'notes.md'), 'file'],
    ]);
    // The added directory stays (empty); everything the snapshot had is back, byte for byte, mode for mode.
    const tree = await readTree(config);
    expect(tree).toEqual({ ...good, cache: expect.stringMatching(/^dir /) });
    const asideDir = join(stateDir, 'snapshots', 'forge', 'aside');
    const records = await fs.readdir(asideDir);
    expect(records).toHaveLength(1);
    const record = JSON.parse(await fs.readFile(join(asideDir, records[0] as string), 'utf8')) as {
      files: Array<{ path: string; sha256: string }>;
    };
    const blob = record.files.find((file) => file.path.endsWith('blob.bin'));
    expect(
      await fs.readFile(join(stateDir, 'snapshots', 'forge', 'objects', blob?.sha256 as string)),
    ).toEqual(Buffer.from([0, 1, 2, 255]));
    // Moved-aside objects survive garbage collection.
    await store.gc('forge');
    expect((await store.verify('forge')).ok).toBe(true);
    await expect(
      fs.access(join(stateDir, 'snapshots', 'forge', 'objects', blob?.sha256 as string)),
    ).resolves.toBeUndefined();
  });

  it('restores a symbolic link inside a config directory', async () => {
    await fs.symlink('providers/anthropic.json', join(config, 'default-provider'));
    await store.snapshot('forge', [config]);
    await fs.rm(join(config, 'default-provider'));
    await fs.symlink('start.sh', join(config, 'default-provider'));
    const result = await store.rollback('forge');
    expect(result.files.map((file) => file.path)).toEqual([join(config, 'default-provider')]);
    expect(await fs.readlink(join(config, 'default-provider'))).toBe('providers/anthropic.json');
  });

  it('refuses a snapshot of files that do not parse, naming every one, and keeps the last known good', async () => {
    const first = await store.snapshot('forge', [config], {
      validate: (bytes, path) => (path.endsWith('.json') ? parsesAsJson(bytes) : undefined),
    });
    await fs.writeFile(join(config, 'agent.json'), '{ "model": ');
    await fs.writeFile(join(config, 'providers', 'anthropic.json'), 'not json');
    const error = await store
      .snapshot('forge', [config], {
        validate: (bytes, path) => (path.endsWith('.json') ? parsesAsJson(bytes) : undefined),
      })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SnapshotError);
    expect((error as SnapshotError).code).toBe('SNAPSHOT_INVALID');
    expect((error as SnapshotError).message).toContain(join(config, 'agent.json'));
    expect((error as SnapshotError).message).toContain(join(config, 'providers', 'anthropic.json'));
    expect((await store.history('forge')).map((entry) => entry.set)).toEqual([first.set]);
  });

  it('keeps the last N sets and garbage-collects objects no set refers to', async () => {
    store = createSnapshotStore({ stateDir, keep: 2 });
    const sets: string[] = [];
    for (const model of ['a', 'b', 'c', 'd']) {
      await fs.writeFile(join(config, 'agent.json'), `{ "model": "${model}" }\n`);
      sets.push((await store.snapshot('forge', [config])).set);
    }
    expect((await store.history('forge')).map((entry) => entry.set)).toEqual([sets[3], sets[2]]);
    const dir = join(stateDir, 'snapshots', 'forge');
    expect((await fs.readdir(join(dir, 'sets'))).sort()).toEqual(
      [`${sets[2]}.json`, `${sets[3]}.json`].sort(),
    );
    const objects = await fs.readdir(join(dir, 'objects'));
    expect(objects).not.toContain(sha256('{ "model": "a" }\n'));
    expect(objects).not.toContain(sha256('{ "model": "b" }\n'));
    expect(objects).toContain(sha256('{ "model": "c" }\n'));
    expect(objects).toHaveLength(2 + 2); // agent.json c and d, the provider, start.sh
    expect(await store.verify('forge')).toMatchObject({ ok: true, sets: 2, objects: 4 });
    // An older retained set can be restored explicitly.
    const back = await store.rollback('forge', { to: sets[2] });
    expect(back.set).toBe(sets[2]);
    expect(await fs.readFile(join(config, 'agent.json'), 'utf8')).toBe('{ "model": "c" }\n');
  });

  it('diffs the live config against last known good with hashes and a unified diff', async () => {
    await store.snapshot('forge', [config]);
    await fs.writeFile(
      join(config, 'agent.json'),
      '{\n  "model": "gpt-9",\n  "provider": "anthropic"\n}\n',
    );
    await fs.chmod(join(config, 'start.sh'), 0o700);
    await fs.writeFile(join(config, 'extra.txt'), 'hello\n');
    const diff = await store.diff('forge');
    expect(diff.changed).toBe(true);
    expect(diff.files.map((file) => [file.path, file.change])).toEqual([
      [join(config, 'agent.json'), 'modified'],
      [join(config, 'extra.txt'), 'added'],
      [join(config, 'start.sh'), 'mode'],
    ]);
    const agentJson = diff.files[0];
    expect(agentJson?.good_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(agentJson?.diff).toContain('-  "model": "claude-sonnet",\n+  "model": "gpt-9",\n');
    expect(diff.files[2]).toMatchObject({ good_mode: 0o755, live_mode: 0o700 });
    await store.rollback('forge');
    expect((await store.diff('forge')).changed).toBe(false);
  });

  it('refuses to restore a corrupt object, reports it, and touches nothing', async () => {
    const saved = await store.snapshot('forge', [config]);
    const target = saved.files.find((file) => file.path.endsWith('agent.json'));
    const object = join(stateDir, 'snapshots', 'forge', 'objects', target?.sha256 as string);
    await fs.chmod(object, 0o644);
    await fs.writeFile(object, '{ "model": "evil" }\n');
    await fs.writeFile(join(config, 'agent.json'), 'broken');
    await fs.writeFile(join(config, 'start.sh'), 'broken too');
    const before = await readTree(config);
    const error = await store.rollback('forge').catch((caught: unknown) => caught);
    expect((error as SnapshotError).code).toBe('SNAPSHOT_CORRUPT');
    expect((error as SnapshotError).message).toContain(target?.sha256);
    expect(await readTree(config)).toEqual(before);
    expect(await readLog(requestLog)).toEqual([]);
    const verify = await store.verify('forge');
    expect(verify.ok).toBe(false);
    expect(verify.problems.join('\n')).toContain('refusing to restore a corrupt object');
  });

  it('refuses a missing config file, a root that is a symlink, a symlink out of bounds and a FIFO', async () => {
    const codeOf = (promise: Promise<unknown>) =>
      promise.then(
        () => 'resolved',
        (error: unknown) => (error as SnapshotError).code,
      );
    expect(await codeOf(store.snapshot('forge', [join(config, 'missing.json')]))).toBe(
      'SNAPSHOT_NOT_FOUND',
    );
    await fs.symlink(join(config, 'agent.json'), join(root, 'linked.json'));
    expect(await codeOf(store.snapshot('forge', [join(root, 'linked.json')]))).toBe(
      'SNAPSHOT_UNSAFE_PATH',
    );
    await fs.symlink('/etc/passwd', join(config, 'passwd'));
    expect(await codeOf(store.snapshot('forge', [config]))).toBe('SNAPSHOT_UNSAFE_PATH');
    await fs.rm(join(config, 'passwd'));
    await fs.symlink('../../../../outside', join(config, 'escape'));
    expect(await codeOf(store.snapshot('forge', [config]))).toBe('SNAPSHOT_UNSAFE_PATH');
    await fs.rm(join(config, 'escape'));
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [join(config, 'pipe')]);
    expect(await codeOf(store.snapshot('forge', [config]))).toBe('SNAPSHOT_UNSAFE_PATH');
    expect(await codeOf(store.snapshot('forge', ['relative/path']))).toBe('SNAPSHOT_INVALID');
    expect(await codeOf(store.snapshot('../etc', [config]))).toBe('SNAPSHOT_BAD_NAME');
    await expect(fs.access(join(stateDir, 'snapshots'))).rejects.toThrow();
  });

  it('refuses to roll back over a config file that became a directory, and loses nothing', async () => {
    await store.snapshot('forge', [config]);
    await fs.rm(join(config, 'agent.json'));
    await fs.mkdir(join(config, 'agent.json'));
    await fs.writeFile(join(config, 'agent.json', 'precious'), 'keep me');
    await fs.writeFile(join(config, 'start.sh'), 'changed');
    const before = await readTree(config);
    const error = await store.rollback('forge').catch((caught: unknown) => caught);
    expect((error as SnapshotError).code).toBe('SNAPSHOT_UNSAFE_PATH');
    expect((error as SnapshotError).message).toContain(join(config, 'agent.json'));
    expect(await readTree(config)).toEqual(before);
  });

  it('refuses to write through a config subdirectory replaced by a symlink', async () => {
    await store.snapshot('forge', [config]);
    const outside = join(root, 'outside');
    await fs.mkdir(outside);
    await fs.rm(join(config, 'providers'), { recursive: true });
    await fs.symlink(outside, join(config, 'providers'));
    const error = await store.rollback('forge').catch((caught: unknown) => caught);
    expect((error as SnapshotError).code).toBe('SNAPSHOT_UNSAFE_PATH');
    expect(await fs.readdir(outside)).toEqual([]);
  });

  it('refuses with SNAPSHOT_MISSING when there is no snapshot and no canonical source', async () => {
    const error = await store.rollback('forge').catch((caught: unknown) => caught);
    expect((error as SnapshotError).code).toBe('SNAPSHOT_MISSING');
    expect((error as SnapshotError).message).toContain('forge');
    await expect(store.diff('forge')).rejects.toMatchObject({ code: 'SNAPSHOT_MISSING' });
    expect(await store.history('forge')).toEqual([]);
  });

  it('snapshots several separate files as one set', async () => {
    const other = join(root, 'home', 'forge', '.env');
    await fs.writeFile(other, 'TOKEN_NAME=FORGE\n', { mode: 0o600 });
    const saved = await store.snapshot('forge', [join(config, 'agent.json'), other]);
    expect(saved.files.map((file) => file.path)).toEqual(
      [other, join(config, 'agent.json')].sort(),
    );
    await fs.rm(other);
    await fs.writeFile(join(config, 'agent.json'), 'x');
    const result = await store.rollback('forge');
    expect(result.files.map((file) => [file.path, file.old_sha256 === null])).toEqual([
      [join(config, 'agent.json'), false],
      [other, true],
    ]);
    expect((await fs.stat(other)).mode & 0o777).toBe(0o600);
  });
});

describe('createSnapshotStore on a full disk', () => {
  let mount: { dir: string; unmount: () => Promise<void> } | undefined;

  afterEach(async () => {
    await mount?.unmount();
    mount = undefined;
  });

  /** Fills the filesystem of `dir` until only about `leaveBytes` are free. */
  async function fill(dir: string, leaveBytes: number): Promise<string> {
    const filler = join(dir, 'filler');
    const handle = await fs.open(filler, 'w');
    const chunk = Buffer.alloc(64 * 1024, 7);
    let size = 0;
    try {
      for (;;) {
        const { bytesWritten } = await handle.write(chunk);
        size += bytesWritten;
      }
    } catch (error) {
      expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    await handle.truncate(Math.max(0, size - leaveBytes));
    await handle.close();
    return filler;
  }

  it('keeps the previous snapshot current when the store runs out of space mid-snapshot', async () => {
    mount = await mountTmpfs(1024 * 1024);
    store = createSnapshotStore({ stateDir: mount.dir });
    const first = await store.snapshot('forge', [config]);
    for (const name of ['a.bin', 'b.bin', 'c.bin'])
      await fs.writeFile(join(config, name), randomBytes(400 * 1024));
    const error = await store.snapshot('forge', [config]).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SnapshotError);
    expect((error as SnapshotError).code).toBe('SNAPSHOT_IO');
    expect((error as SnapshotError).retryable).toBe(true);
    expect((error as SnapshotError).message).toMatch(/no space left/);
    expect((await store.history('forge')).map((entry) => entry.set)).toEqual([first.set]);
    expect(await store.verify('forge')).toMatchObject({ ok: true, sets: 1 });
    const objects = join(mount.dir, 'snapshots', 'forge', 'objects');
    expect((await fs.readdir(objects)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    // The partial objects are garbage; once space is back the snapshot goes through.
    await store.gc('forge');
    for (const name of ['a.bin', 'b.bin']) await fs.rm(join(config, name));
    expect((await store.snapshot('forge', [config])).status).toBe('saved');
    expect((await store.verify('forge')).ok).toBe(true);
  });

  it('leaves the config wholly as it was when the disk fills during a rollback', async () => {
    mount = await mountTmpfs(1024 * 1024);
    const live = join(mount.dir, 'agent');
    await fs.mkdir(live);
    for (const name of ['a.bin', 'b.bin', 'c.bin'])
      await fs.writeFile(join(live, name), randomBytes(200 * 1024));
    await store.snapshot('forge', [live]);
    for (const name of ['a.bin', 'b.bin', 'c.bin'])
      await fs.writeFile(join(live, name), 'corrupted');
    const before = await readTree(live);
    const filler = await fill(mount.dir, 100 * 1024);
    const error = await store.rollback('forge').catch((caught: unknown) => caught);
    expect((error as SnapshotError).code).toBe('SNAPSHOT_IO');
    expect((error as SnapshotError).retryable).toBe(true);
    expect(await readTree(live)).toEqual(before);
    expect(await readLog(requestLog)).toEqual([]);
    expect((await store.verify('forge')).journal).toBe(false);
    await fs.rm(filler);
    const result = await store.rollback('forge');
    expect(result.files).toHaveLength(3);
    expect(await readLog(requestLog)).toHaveLength(1);
  });
});
