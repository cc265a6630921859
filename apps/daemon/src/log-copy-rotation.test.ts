import { closeSync, constants, openSync, promises as fs, writeSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { copyRotateLog, ROTATING_SUFFIX } from './log-copy-rotation.js';
import { readSteady, rotationMark } from './agent-log.js';

afterEach(cleanup);

/** A writer as an agent has it: the log opened O_APPEND, written through its own descriptor. */
function appender(path: string) {
  const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o640);
  return { write: (text: string) => writeSync(fd, text), close: () => closeSync(fd) };
}

describe('copyRotateLog', () => {
  it('moves the whole lines to .1, keeps the partial last line live, and the writer goes on after it', async () => {
    const dir = await tempDir('pit-copyrot-');
    const path = join(dir, 'forge.log');
    const writer = appender(path);
    writer.write('one\ntwo\nthr');
    expect(await copyRotateLog(path, { keep: 3, beneath: dir })).toBe(8);
    writer.write('ee\nfour\n');
    writer.close();
    expect(await fs.readFile(`${path}.1`, 'utf8')).toBe('one\ntwo\n');
    expect(await fs.readFile(path, 'utf8')).toBe('three\nfour\n');
    expect(await fs.readdir(dir)).not.toContain(`forge.log${ROTATING_SUFFIX}`);
  });

  it('shifts older files and keeps `keep` in all', async () => {
    const dir = await tempDir('pit-copyrot-');
    const path = join(dir, 'forge.log');
    const writer = appender(path);
    for (let index = 0; index < 5; index += 1) {
      writer.write(`line ${index}\n`);
      await copyRotateLog(path, { keep: 3 });
    }
    writer.close();
    expect((await fs.readdir(dir)).sort()).toEqual(['forge.log', 'forge.log.1', 'forge.log.2']);
    expect(await fs.readFile(`${path}.2`, 'utf8')).toBe('line 3\n');
    expect(await fs.readFile(`${path}.1`, 'utf8')).toBe('line 4\n');
    expect(await fs.readFile(path, 'utf8')).toBe('');
  });

  it('moves a .rotating left by a crash into place first (lines may repeat, none is lost), and readers wait on a fresh one', async () => {
    const dir = await tempDir('pit-copyrot-');
    const path = join(dir, 'forge.log');
    await fs.writeFile(`${path}.1`, 'old\n');
    await fs.writeFile(`${path}${ROTATING_SUFFIX}`, 'copied\n');
    expect((await rotationMark(path)).busy).toBe(true);
    await fs.writeFile(path, 'copied\nnew\n');
    await copyRotateLog(path, { keep: 4 });
    expect(await fs.readFile(`${path}.3`, 'utf8')).toBe('old\n');
    expect(await fs.readFile(`${path}.2`, 'utf8')).toBe('copied\n');
    expect(await fs.readFile(`${path}.1`, 'utf8')).toBe('copied\nnew\n');
    expect(await fs.readFile(path, 'utf8')).toBe('');
    const mark = await rotationMark(path);
    expect(mark.busy).toBe(false);
    expect(mark.rotated).toBe((await fs.stat(`${path}.1`)).ino);
    // A read taken while a rotation happens under it is taken again.
    let reads = 0;
    const { result } = await readSteady(path, async () => {
      reads += 1;
      if (reads === 1) {
        await fs.writeFile(path, 'more\n', { flag: 'a' });
        await copyRotateLog(path, { keep: 4 });
      }
      return reads;
    });
    expect(result).toBe(2);
  });

  it('a reader waits out a rotation that takes seconds (a large copy on a busy machine), and reads once it is done', async () => {
    const dir = await tempDir('pit-copyrot-');
    const path = join(dir, 'forge.log');
    await fs.writeFile(path, 'one\ntwo\n');
    // A rotation under way: its copy (the marker) is being written. It ends 2.5 s later, as
    // copyRotateLog ends one: the copy complete, the live file cut, the marker renamed to `.1`
    // (one step: the reader never sees neither). A reader used to give up after about 100 waits
    // of 10 ms and read in the middle of it.
    const marker = `${path}${ROTATING_SUFFIX}`;
    await fs.writeFile(marker, 'one\n');
    let done = false;
    const finishing = new Promise<void>((resolve, reject) =>
      setTimeout(() => {
        (async () => {
          await fs.appendFile(marker, 'two\n');
          await fs.truncate(path, 0);
          done = true;
          await fs.rename(marker, `${path}.1`);
        })().then(resolve, reject);
      }, 2_500),
    );
    const seen: boolean[] = [];
    const { result, steady } = await readSteady(path, async (mark) => {
      seen.push(done && !mark.busy);
      return fs.readFile(`${path}.1`, 'utf8');
    });
    await finishing;
    expect(seen).toEqual([true]);
    expect(steady).toBe(true);
    expect(result).toBe('one\ntwo\n');
  });

  it('refuses a log that is a link (beneath its cell)', async () => {
    const dir = await tempDir('pit-copyrot-');
    const outside = await tempDir('pit-copyrot-outside-');
    await fs.writeFile(join(outside, 'secret'), 'secret\n');
    await fs.symlink(join(outside, 'secret'), join(dir, 'forge.log'));
    await expect(copyRotateLog(join(dir, 'forge.log'), { keep: 3, beneath: dir })).rejects.toThrow(
      /forge\.log: cannot rotate/,
    );
    expect(await fs.readFile(join(outside, 'secret'), 'utf8')).toBe('secret\n');
  });
});
