import { describe, expect, it } from 'vitest';
import { ArchiveEntryChecker, type ArchiveEntryHeader } from './archive-entry.js';

const limits = { maxEntries: 100, maxBytes: 1000 };
const file = (path: string, size = 1): ArchiveEntryHeader => ({ path, type: 'File', size });

describe('ArchiveEntryChecker', () => {
  it('accepts what createCheckpoint writes', () => {
    const checker = new ArchiveEntryChecker(limits);
    const entries: ArchiveEntryHeader[] = [
      { path: './', type: 'Directory', size: 0 },
      file('./a.txt'),
      { path: './sub/', type: 'Directory', size: 0 },
      file('./sub/b'),
      { path: './link', type: 'SymbolicLink', size: 0, linkpath: 'sub/b' },
      { path: './sub/up', type: 'SymbolicLink', size: 0, linkpath: '../a.txt' },
      { path: './hard', type: 'Link', size: 0, linkpath: './a.txt' },
    ];
    expect(entries.map((entry) => checker.check(entry))).toEqual(entries.map(() => undefined));
    expect(checker.entries).toBe(7);
  });

  it.each([
    ['../../evil', 'contains ".."'],
    ['a/../../evil', 'contains ".."'],
    ['/etc/cron.d/evil', 'absolute'],
    ['C:/windows', 'absolute'],
    ['a\\..\\b', 'absolute'],
  ])('refuses the path %j', (path, message) => {
    expect(new ArchiveEntryChecker(limits).check(file(path))).toMatchObject({
      code: 'SNAPSHOT_UNSAFE_PATH',
      message: expect.stringContaining(message),
    });
  });

  it('refuses symlinks out of the root, writes through symlinks, and hard links out of the root', () => {
    const checker = new ArchiveEntryChecker(limits);
    expect(
      checker.check({ path: 'l', type: 'SymbolicLink', size: 0, linkpath: '../x' })?.message,
    ).toContain('points out');
    expect(
      checker.check({ path: 'a/b/l', type: 'SymbolicLink', size: 0, linkpath: '../../../x' })
        ?.message,
    ).toContain('points out');
    expect(
      checker.check({ path: 'abs', type: 'SymbolicLink', size: 0, linkpath: '/etc' })?.message,
    ).toContain('absolute');
    expect(
      checker.check({ path: 'ok', type: 'SymbolicLink', size: 0, linkpath: 'dir' }),
    ).toBeUndefined();
    expect(checker.check(file('ok/inside'))?.message).toContain('goes through the symbolic link');
    expect(checker.check(file('ok'))?.message).toContain('goes through the symbolic link');
    expect(
      checker.check({ path: 'h', type: 'Link', size: 0, linkpath: 'ok/x' })?.message,
    ).toContain('through a symbolic link');
    expect(
      checker.check({ path: 'h', type: 'Link', size: 0, linkpath: '../etc/passwd' })?.message,
    ).toContain('out of the workspace');
  });

  it('refuses devices, FIFOs and a root that is not a directory', () => {
    for (const type of ['CharacterDevice', 'BlockDevice', 'FIFO'])
      expect(new ArchiveEntryChecker(limits).check({ path: 'x', type, size: 0 })?.code).toBe(
        'SNAPSHOT_UNSAFE_PATH',
      );
    expect(new ArchiveEntryChecker(limits).check(file('./'))?.message).toContain(
      'root must be a directory',
    );
  });

  it('enforces the entry and byte limits', () => {
    const few = new ArchiveEntryChecker({ maxEntries: 2, maxBytes: 1000 });
    expect(few.check(file('a'))).toBeUndefined();
    expect(few.check(file('b'))).toBeUndefined();
    expect(few.check(file('c'))).toMatchObject({ code: 'SNAPSHOT_TOO_LARGE' });
    const small = new ArchiveEntryChecker({ maxEntries: 10, maxBytes: 1000 });
    expect(small.check(file('a', 600))).toBeUndefined();
    expect(small.check(file('b', 600))).toMatchObject({ code: 'SNAPSHOT_TOO_LARGE' });
  });
});
