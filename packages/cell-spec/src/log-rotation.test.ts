import { mkdir, readdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from './__fixtures__/helpers.js';
import { PitError } from './errors.js';
import { createEventAppender, readEventLog } from './events.js';
import { openLogFiles, rotatedLogPath, rotateLogFiles } from './log-rotation.js';

afterEach(removeTempDirs);

describe('rotatedLogPath', () => {
  it('numbers before the extension (infix) or after the name (suffix)', () => {
    expect(rotatedLogPath('/c/logs/events.jsonl', 0)).toBe('/c/logs/events.jsonl');
    expect(rotatedLogPath('/c/logs/events.jsonl', 3)).toBe('/c/logs/events.3.jsonl');
    expect(rotatedLogPath('/c/logs/forge.1.log', 1, 'suffix')).toBe('/c/logs/forge.1.log.1');
  });
});

describe('rotateLogFiles', () => {
  it('shifts the older files, drops the oldest beyond keep and leaves no live file', async () => {
    const dir = await makeTempDir();
    const log = join(dir, 'events.jsonl');
    for (const [index, text] of ['live', 'one', 'two', 'three', 'stale'].entries())
      await writeFile(rotatedLogPath(log, index), text);
    await rotateLogFiles(log, { keep: 3 });
    expect((await readdir(dir)).sort()).toEqual(['events.1.jsonl', 'events.2.jsonl']);
    expect(await readFile(rotatedLogPath(log, 1), 'utf8')).toBe('live');
    expect(await readFile(rotatedLogPath(log, 2), 'utf8')).toBe('one');
  });

  it('refuses a logs directory that an agent made a link, beneath the cell', async () => {
    const cell = await makeTempDir();
    const elsewhere = await makeTempDir();
    await writeFile(join(elsewhere, 'events.jsonl'), 'x');
    await symlink(elsewhere, join(cell, 'logs'));
    const error: unknown = await rotateLogFiles(join(cell, 'logs', 'events.jsonl'), {
      keep: 2,
      beneath: cell,
    }).catch((caught: unknown) => caught);
    expect(PitError.is(error) && error.code).toBe('CELL_UNSAFE_PATH');
    expect(await readdir(elsewhere)).toEqual(['events.jsonl']);
  });
});

describe('openLogFiles', () => {
  it('sees each file once when the log rotates between its opens', async () => {
    const dir = await makeTempDir();
    const log = join(dir, 'a.log');
    await writeFile(log, 'new');
    await writeFile(`${log}.1`, 'old');
    const files = await openLogFiles(log, { naming: 'suffix' });
    // Renamed after opening: the open handles still read the same files.
    await rename(`${log}.1`, `${log}.2`);
    await rename(log, `${log}.1`);
    const texts = await Promise.all(files.map((file) => file.handle.readFile('utf8')));
    await Promise.all(files.map((file) => file.handle.close()));
    expect(texts).toEqual(['old', 'new']);
  });
});

describe('an event log rotated by size', () => {
  it('keeps every file under max_bytes, at most keep files, and loses no line of the kept window', async () => {
    const dir = await makeTempDir();
    await mkdir(join(dir, 'logs'));
    const log = join(dir, 'logs', 'events.jsonl');
    const appender = createEventAppender(log, {
      beneath: dir,
      rotate: { maxBytes: 2048, keep: 3 },
    });
    try {
      for (let cycle = 0; cycle < 200; cycle += 1)
        await appender.append({ event: 'heartbeat', agent: 'forge', cycle });
    } finally {
      await appender.close();
    }
    const names = (await readdir(join(dir, 'logs'))).sort();
    expect(names).toEqual(['events.1.jsonl', 'events.2.jsonl', 'events.jsonl']);
    for (const name of names)
      expect((await stat(join(dir, 'logs', name))).size).toBeLessThanOrEqual(2048);
    const cycles: number[] = [];
    for await (const entry of readEventLog(log, { beneath: dir })) {
      expect(entry.ok).toBe(true);
      if (entry.ok && entry.event.event === 'heartbeat') cycles.push(Number(entry.event.cycle));
    }
    expect(cycles.at(-1)).toBe(199);
    expect(cycles).toEqual(cycles.map((_, index) => cycles[0]! + index));
  });
});
