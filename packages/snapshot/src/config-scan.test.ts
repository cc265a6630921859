import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir } from '../test/helpers.js';
import {
  normalizeConfigPaths,
  RACY_WINDOW_MS,
  scanConfig,
  StatIndex,
  symlinkStaysInside,
} from './config-scan.js';

let dir: string;
beforeEach(async () => {
  dir = await makeTempDir();
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('scanConfig', () => {
  it('walks directories in byte-wise order and reports every entry kind', async () => {
    await fs.mkdir(join(dir, 'cfg', 'B'), { recursive: true });
    await fs.writeFile(join(dir, 'cfg', 'b'), 'b');
    await fs.writeFile(join(dir, 'cfg', 'B', 'x'), 'x');
    await fs.writeFile(join(dir, 'cfg', 'a'), 'a');
    await fs.symlink('a', join(dir, 'cfg', 'c'));
    const scan = await scanConfig([join(dir, 'cfg')], {
      index: new StatIndex(),
      maxFileBytes: 1024,
      withContent: false,
      nowMs: Date.now,
    });
    expect(scan.entries.map((entry) => [entry.path.slice(dir.length), entry.kind])).toEqual([
      ['/cfg', 'dir'],
      ['/cfg/B', 'dir'],
      ['/cfg/B/x', 'file'],
      ['/cfg/a', 'file'],
      ['/cfg/b', 'file'],
      ['/cfg/c', 'symlink'],
    ]);
  });

  it('trusts a cached hash only once the file is older than the racy window', async () => {
    const path = join(dir, 'f');
    await fs.writeFile(path, 'one');
    const stat = await fs.stat(path);
    const index = new StatIndex();
    index.remember(path, stat, 'hash-one', stat.ctimeMs + 10);
    expect(index.lookup(path, stat)).toBeUndefined();
    index.remember(path, stat, 'hash-one', stat.ctimeMs + RACY_WINDOW_MS + 1);
    expect(index.lookup(path, stat)).toBe('hash-one');
    await fs.chmod(path, 0o600);
    expect(index.lookup(path, await fs.stat(path))).toBeUndefined();
  });

  it('refuses a file over the size limit', async () => {
    await fs.writeFile(join(dir, 'big'), Buffer.alloc(2048));
    await expect(
      scanConfig([join(dir, 'big')], {
        index: new StatIndex(),
        maxFileBytes: 1024,
        withContent: false,
        nowMs: Date.now,
      }),
    ).rejects.toMatchObject({ code: 'SNAPSHOT_TOO_LARGE' });
  });
});

describe('normalizeConfigPaths', () => {
  it('normalizes, deduplicates and sorts; refuses relative paths', () => {
    expect(normalizeConfigPaths(['/b/', '/a/./x', '/b'], 'test')).toEqual(['/a/x', '/b']);
    expect(() => normalizeConfigPaths(['rel'], 'test')).toThrow(/absolute/);
    expect(() => normalizeConfigPaths([], 'test')).toThrow(/at least one/);
  });
});

describe('symlinkStaysInside', () => {
  it('resolves relative to the link', () => {
    expect(symlinkStaysInside('/r/a/l', '../b', '/r')).toBe(true);
    expect(symlinkStaysInside('/r/a/l', '../../b', '/r')).toBe(false);
    expect(symlinkStaysInside('/r/l', '/r/x', '/r')).toBe(true);
    expect(symlinkStaysInside('/r/l', '/rx', '/r')).toBe(false);
  });
});
