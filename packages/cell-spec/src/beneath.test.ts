import { spawn } from 'node:child_process';
import { closeSync, constants, writeSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from './__fixtures__/helpers.js';
import {
  openDirectoryBeneath,
  openFileBeneath,
  openFileBeneathSync,
  readFileBeneath,
  writeFileAtomicBeneath,
} from './beneath.js';
import { writeFileAtomic } from './atomic.js';

afterEach(removeTempDirs);

const APPEND = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT;

async function cellAndOutside(): Promise<{ cell: string; outside: string }> {
  const base = await makeTempDir();
  const cell = join(base, 'cell');
  const outside = join(base, 'outside');
  await mkdir(cell);
  await mkdir(outside);
  return { cell, outside };
}

describe('openFileBeneath', () => {
  it('creates missing directories and appends to a file inside the root', async () => {
    const { cell } = await cellAndOutside();
    const handle = await openFileBeneath(cell, join(cell, 'logs', 'forge.log'), {
      flags: APPEND,
      createParents: true,
    });
    await handle.write('one\n');
    await handle.close();
    const sync = openFileBeneathSync(cell, 'logs/forge.log', { flags: APPEND });
    writeSync(sync, 'two\n');
    closeSync(sync);
    expect(await readFile(join(cell, 'logs', 'forge.log'), 'utf8')).toBe('one\ntwo\n');
  });

  it('refuses a directory component that is a symlink, naming it, and creates nothing outside', async () => {
    const { cell, outside } = await cellAndOutside();
    await symlink(outside, join(cell, 'logs'));
    const expected = {
      code: 'CELL_UNSAFE_PATH',
      message: expect.stringContaining(`${join(cell, 'logs')} is a symbolic link; refused`),
    };
    await expect(
      openFileBeneath(cell, 'logs/events.jsonl', { flags: APPEND, createParents: true }),
    ).rejects.toMatchObject(expected);
    expect(() => openFileBeneathSync(cell, 'logs/forge.log', { flags: APPEND })).toThrow(
      expect.objectContaining(expected),
    );
    await expect(
      writeFileAtomicBeneath(cell, 'logs/x.json', '{}', { createParents: true }),
    ).rejects.toMatchObject(expected);
    await expect(readFileBeneath(cell, 'logs/x.json')).rejects.toMatchObject(expected);
    expect(await readdir(outside)).toEqual([]);
  });

  it('refuses a deeper component and the last one when they are links', async () => {
    const { cell, outside } = await cellAndOutside();
    await mkdir(join(cell, '.lazarus'));
    await symlink(outside, join(cell, '.lazarus', 'resume'));
    await expect(
      writeFileAtomicBeneath(cell, '.lazarus/resume/sub.json', '{}', { createParents: true }),
    ).rejects.toMatchObject({
      code: 'CELL_UNSAFE_PATH',
      message: expect.stringContaining(`${join(cell, '.lazarus', 'resume')} is a symbolic link`),
    });
    await writeFile(join(outside, 'target'), 'secret');
    await mkdir(join(cell, 'logs'));
    await symlink(join(outside, 'target'), join(cell, 'logs', 'forge.log'));
    await expect(openFileBeneath(cell, 'logs/forge.log', { flags: APPEND })).rejects.toMatchObject({
      code: 'CELL_UNSAFE_PATH',
      message: expect.stringContaining(join(cell, 'logs', 'forge.log')),
    });
    await expect(readFileBeneath(cell, 'logs/forge.log')).rejects.toMatchObject({
      code: 'CELL_UNSAFE_PATH',
    });
    expect(await readFile(join(outside, 'target'), 'utf8')).toBe('secret');
  });

  it('refuses paths that leave the root', async () => {
    const { cell } = await cellAndOutside();
    await expect(readFileBeneath(cell, '../outside/x')).rejects.toMatchObject({
      code: 'CELL_UNSAFE_PATH',
    });
    await expect(readFileBeneath(cell, 'logs/../../x')).rejects.toMatchObject({
      code: 'CELL_BAD_NAME',
    });
  });
});

describe('openDirectoryBeneath', () => {
  it('keeps writing into the directory it opened after that directory is swapped for a link', async () => {
    const { cell, outside } = await cellAndOutside();
    const logs = await openDirectoryBeneath(cell, 'logs', { create: true });
    try {
      await rename(join(cell, 'logs'), join(cell, 'logs.moved'));
      await symlink(outside, join(cell, 'logs'));
      await writeFileAtomic(logs.entry('events.jsonl'), 'x\n');
    } finally {
      await logs.close();
    }
    expect(await readdir(outside)).toEqual([]);
    expect(await readFile(join(cell, 'logs.moved', 'events.jsonl'), 'utf8')).toBe('x\n');
  });

  it('never writes outside while another process swaps a component for a link during the walks', async () => {
    const { cell, outside } = await cellAndOutside();
    await mkdir(join(cell, 'bus', 'inbox'), { recursive: true });
    // The swapper flips bus/ between the real directory and a link to outside, as fast as it can.
    const swapper = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs'); const [cell, outside] = process.argv.slice(1);
         const bus = cell + '/bus', real = cell + '/bus.real';
         process.stdout.write('go\\n');
         for (;;) { try { fs.renameSync(bus, real); fs.symlinkSync(outside, bus); fs.unlinkSync(bus); fs.renameSync(real, bus); } catch {} }`,
        cell,
        outside,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise((resolve) => swapper.stdout.once('data', resolve));
      let written = 0;
      let refused = 0;
      // At least 50 walks, and on until the swapper has been caught at least once (bounded).
      for (let index = 0; index < 2000 && (index < 50 || refused === 0); index += 1) {
        try {
          await writeFileAtomicBeneath(cell, `bus/inbox/m-${index}.json`, '{}');
          written += 1;
        } catch (error) {
          expect((error as { code: string }).code).toMatch(/CELL_UNSAFE_PATH|CELL_NOT_FOUND/);
          refused += 1;
        }
      }
      expect(refused).toBeGreaterThan(0);
      expect(written + refused).toBeGreaterThanOrEqual(50);
    } finally {
      swapper.kill('SIGKILL');
      await new Promise((resolve) => swapper.once('exit', resolve));
    }
    expect(await readdir(outside)).toEqual([]);
  });
});
