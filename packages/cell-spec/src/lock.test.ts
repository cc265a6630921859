import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from './__fixtures__/helpers.js';
import { withFileLock } from './lock.js';

afterEach(removeTempDirs);

/** The pid of a process that has exited and been reaped. */
function deadPid(): number {
  const result = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(result.stdout);
}

describe('withFileLock', () => {
  it('serialises read-modify-write sections in one process', async () => {
    const dir = await makeTempDir();
    const counter = join(dir, 'counter');
    await writeFile(counter, '0');
    await Promise.all(
      Array.from({ length: 20 }, () =>
        withFileLock(`${counter}.lock`, async () => {
          const value = Number(await readFile(counter, 'utf8'));
          await new Promise((resolve) => setImmediate(resolve));
          await writeFile(counter, String(value + 1));
        }),
      ),
    );
    expect(await readFile(counter, 'utf8')).toBe('20');
    expect(existsSync(`${counter}.lock`)).toBe(false);
  });

  it('breaks at once a lock whose holder is dead (pid and token, or an older pid-only lock)', async () => {
    const dir = await makeTempDir();
    const lock = join(dir, 'x.lock');
    for (const content of [`${deadPid()}\nabcdef\n`, `${deadPid()}\n`]) {
      await writeFile(lock, content);
      const started = Date.now();
      expect(await withFileLock(lock, async () => 'ran', { timeoutMs: 10_000 })).toBe('ran');
      expect(Date.now() - started).toBeLessThan(5000);
      expect(existsSync(lock)).toBe(false);
    }
  });

  it('refuses with a retryable CELL_LOCKED naming the holder when a live process holds it', async () => {
    const dir = await makeTempDir();
    const lock = join(dir, 'x.lock');
    await writeFile(lock, `${process.pid}\nsomeone-else\n`);
    await expect(withFileLock(lock, async () => 'ran', { timeoutMs: 50 })).rejects.toMatchObject({
      code: 'CELL_LOCKED',
      retryable: true,
      message: expect.stringContaining(`still held by pid ${process.pid} after 50 ms`),
    });
    expect(await readFile(lock, 'utf8')).toBe(`${process.pid}\nsomeone-else\n`);
  });

  it('breaks a lock without a pid only once it is older than staleMs', async () => {
    const dir = await makeTempDir();
    const lock = join(dir, 'x.lock');
    await writeFile(lock, '');
    await expect(
      withFileLock(lock, async () => 'ran', { timeoutMs: 30, staleMs: 60_000 }),
    ).rejects.toMatchObject({ code: 'CELL_LOCKED' });
    const old = new Date(Date.now() - 120_000);
    await utimes(lock, old, old);
    expect(await withFileLock(lock, async () => 'ran', { timeoutMs: 5000, staleMs: 60_000 })).toBe(
      'ran',
    );
  });

  it('releases only its own lock', async () => {
    const dir = await makeTempDir();
    const lock = join(dir, 'x.lock');
    await withFileLock(lock, async () => {
      // Another process judged us dead and took the lock meanwhile.
      await writeFile(lock, `${process.pid}\nnew-holder\n`);
    });
    expect(await readFile(lock, 'utf8')).toBe(`${process.pid}\nnew-holder\n`);
  });

  it('leaves no temporary files behind', async () => {
    const dir = await makeTempDir();
    await withFileLock(join(dir, 'x.lock'), async () => undefined);
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(dir)).toEqual([]);
  });

  it('says CELL_NOT_FOUND when the directory does not exist', async () => {
    const dir = await makeTempDir();
    await expect(
      withFileLock(join(dir, 'missing', 'x.lock'), async () => undefined),
    ).rejects.toMatchObject({ code: 'CELL_NOT_FOUND' });
  });
});
