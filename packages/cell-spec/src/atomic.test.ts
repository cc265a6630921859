import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { makeTempDir, removeTempDirs } from './__fixtures__/helpers.js';
import {
  parseJsonWith,
  readFileSafe,
  readFileSafeSync,
  readJsonFile,
  removeStaleTemps,
  writeFileAtomic,
  writeJsonAtomic,
  writeNewFile,
} from './atomic.js';
import { CellError } from './errors.js';

afterEach(removeTempDirs);

describe('writeFileAtomic', () => {
  it('replaces the file and leaves no temp file', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'a.json');
    await writeFile(path, 'old');
    await writeFileAtomic(path, 'new', { mode: 0o600 });
    expect(await readFile(path, 'utf8')).toBe('new');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('replaces a symlink at the path instead of writing through it', async () => {
    const dir = await makeTempDir();
    const target = join(dir, 'target');
    await writeFile(target, 'keep me');
    await symlink(target, join(dir, 'link'));
    await writeFileAtomic(join(dir, 'link'), 'replaced', { fsync: false });
    expect(await readFile(target, 'utf8')).toBe('keep me');
    expect(await readFile(join(dir, 'link'), 'utf8')).toBe('replaced');
  });

  it('fails with CELL_NOT_FOUND naming the path when the directory is missing', async () => {
    const dir = await makeTempDir();
    await expect(writeJsonAtomic(join(dir, 'nope', 'a.json'), {})).rejects.toMatchObject({
      code: 'CELL_NOT_FOUND',
      message: expect.stringContaining('nope/a.json'),
    });
  });
});

describe('readFileSafe and readJsonFile', () => {
  it.each([
    ['readFileSafe', readFileSafe],
    [
      'readFileSafeSync',
      async (path: string, options?: { maxBytes?: number }) => readFileSafeSync(path, options),
    ],
  ] as const)(
    '%s refuses a directory, a symlink, a FIFO and an oversized file',
    async (_name, read) => {
      const dir = await makeTempDir();
      await mkdir(join(dir, 'd'));
      await writeFile(join(dir, 'big'), 'x'.repeat(2000));
      await writeFile(join(dir, 'empty'), '');
      await symlink(join(dir, 'big'), join(dir, 'link'));
      execFileSync('mkfifo', [join(dir, 'fifo')]);
      await expect(read(join(dir, 'd'))).rejects.toMatchObject({
        code: 'CELL_UNSAFE_PATH',
        message: expect.stringContaining('found a directory'),
      });
      await expect(read(join(dir, 'link'))).rejects.toMatchObject({ code: 'CELL_UNSAFE_PATH' });
      await expect(read(join(dir, 'fifo'))).rejects.toMatchObject({
        code: 'CELL_UNSAFE_PATH',
        message: expect.stringContaining('found a FIFO'),
      });
      await expect(read(join(dir, 'big'), { maxBytes: 1000 })).rejects.toMatchObject({
        code: 'CELL_TOO_LARGE',
      });
      await expect(read(join(dir, 'missing'))).rejects.toMatchObject({ code: 'CELL_NOT_FOUND' });
      expect((await read(join(dir, 'big'), { maxBytes: 2000 })).toString()).toBe('x'.repeat(2000));
      expect((await read(join(dir, 'empty'))).length).toBe(0);
    },
  );

  it('names the file and every bad field', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'x.json');
    await writeFile(path, JSON.stringify({ a: 'one', b: -1 }));
    const schema = z.strictObject({ a: z.number(), b: z.number().nonnegative() });
    await expect(readJsonFile(path, schema)).rejects.toThrow(
      new RegExp(`${path}: a: .*expected number.*; b: .*>=0`),
    );
    expect(() => parseJsonWith(schema, '{', 'here.json')).toThrow(/here\.json: not valid JSON/);
  });
});

describe('removeStaleTemps', () => {
  it('removes temp files of dead writers and old ones, and keeps fresh ones of live writers', async () => {
    const dir = await makeTempDir();
    const dead = Number(
      spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
        encoding: 'utf8',
      }).stdout,
    );
    const names = [
      `.cell.json.${dead}.aa11.tmp`,
      `.cell.json.${process.pid}.bb22.tmp`,
      `.cell.json.${process.pid}.cc33.tmp`,
      '.other.json.1.dd44.tmp',
      'cell.json',
    ];
    for (const name of names) await writeFile(join(dir, name), 'x');
    const old = new Date(Date.now() - 3_600_000);
    await utimes(join(dir, names[2]!), old, old);
    expect(await removeStaleTemps(dir, ['cell.json'])).toBe(2);
    expect((await readdir(dir)).sort()).toEqual(
      [`.cell.json.${process.pid}.bb22.tmp`, '.other.json.1.dd44.tmp', 'cell.json'].sort(),
    );
  });

  it('tells apart names that are prefixes of each other (cell.json and cell.json.lock)', async () => {
    const dir = await makeTempDir();
    const dead = Number(
      spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
        encoding: 'utf8',
      }).stdout,
    );
    await writeFile(join(dir, `.cell.json.lock.${dead}.ee55.tmp`), 'x');
    await writeFile(join(dir, `.cell.json.${dead}.ff66.tmp`), 'x');
    expect(await removeStaleTemps(dir, ['cell.json', 'cell.json.lock'])).toBe(2);
    expect(await readdir(dir)).toEqual([]);
  });

  it('never throws for a missing directory', async () => {
    expect(await removeStaleTemps('/nonexistent/dir', ['x'])).toBe(0);
  });

  it("with 'any' and no age limit, removes dead writers' temps beside any file and keeps live ones however old", async () => {
    const dir = await makeTempDir();
    const dead = Number(
      spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
        encoding: 'utf8',
      }).stdout,
    );
    const live = `.${'ab'.repeat(32)}.${process.pid}.0123456789ab.tmp`;
    await writeFile(join(dir, `.${'cd'.repeat(32)}.${dead}.0123456789ab.tmp`), 'x');
    await writeFile(join(dir, live), 'x');
    await writeFile(join(dir, '.not-a-temp.tmp'), 'x');
    const old = new Date(Date.now() - 3_600_000);
    await utimes(join(dir, live), old, old);
    expect(await removeStaleTemps(dir, 'any', { maxAgeMs: Infinity })).toBe(1);
    expect((await readdir(dir)).sort()).toEqual(['.not-a-temp.tmp', live].sort());
  });
});

describe('writeNewFile', () => {
  it('creates the file with exactly the mode asked for', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'object');
    await writeNewFile(path, Buffer.from('bytes'), { mode: 0o444 });
    expect(await readFile(path, 'utf8')).toBe('bytes');
    expect((await stat(path)).mode & 0o777).toBe(0o444);
  });

  it('refuses a path that exists, even a symlink, and writes nothing through it', async () => {
    const dir = await makeTempDir();
    const target = join(dir, 'target');
    await writeFile(target, 'keep me');
    await symlink(target, join(dir, 'link'));
    const error = await writeNewFile(join(dir, 'link'), 'x').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CellError);
    expect((error as CellError).code).toBe('CELL_IO');
    expect(await readFile(target, 'utf8')).toBe('keep me');
  });
});
