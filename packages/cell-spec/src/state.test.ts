import { existsSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fixture, makeTempDir, removeTempDirs } from './__fixtures__/helpers.js';
import { formatIssues } from './format-issues.js';
import { CellStateSchema, readCellState, writeCellState, type CellState } from './state.js';

afterEach(removeTempDirs);

describe('CellStateSchema', () => {
  it('accepts a realistic daemon state', async () => {
    expect(CellStateSchema.safeParse(await fixture('state.json')).success).toBe(true);
  });

  it.each<
    [
      string,
      (
        state: { agents: Record<string, Record<string, unknown>> } & Record<string, unknown>,
      ) => void,
      RegExp,
    ]
  >([
    [
      'an unknown key in our own file',
      (s) => void (s.agents.forge!.helth = 'ok'),
      /agents\.forge: Unrecognized key.*"helth"/,
    ],
    [
      'an unknown health',
      (s) => void (s.agents.forge!.health = 'zombie'),
      /agents\.forge\.health:/,
    ],
    [
      'a traversal agent name as key',
      (s) => void (s.agents['../../etc'] = { health: 'unknown' }),
      /agents\.\.\.\/\.\.\/etc/,
    ],
    ['a future version', (s) => void (s.version = 2), /version: .*1/],
  ])('rejects %s, naming the field', async (_label, breakIt, expected) => {
    const state = await fixture<
      { agents: Record<string, Record<string, unknown>> } & Record<string, unknown>
    >('state.json');
    breakIt(state);
    const parsed = CellStateSchema.safeParse(state);
    expect(parsed.success).toBe(false);
    expect(formatIssues(parsed.error!)).toMatch(expected);
  });
});

describe('readCellState and writeCellState', () => {
  it('reads an absent state as empty and round-trips a written one', async () => {
    const cell = await makeTempDir();
    expect(await readCellState(cell)).toEqual({
      version: 1,
      updated_at: '1970-01-01T00:00:00.000Z',
      agents: {},
    });
    const state = await fixture<CellState>('state.json');
    await writeCellState(cell, state);
    expect(await readCellState(cell)).toEqual(CellStateSchema.parse(state));
  });

  it('writes nothing for an invalid state and names the field', async () => {
    const cell = await makeTempDir();
    const state = await fixture<CellState>('state.json');
    (state.agents.forge as Record<string, unknown>).revive_attempts = -1;
    await expect(writeCellState(cell, state)).rejects.toMatchObject({
      code: 'CELL_INVALID',
      message: expect.stringMatching(/state\.json: state rejected: agents\.forge\.revive_attempts/),
    });
    expect(existsSync(join(cell, '.lazarus/state.json'))).toBe(false);
  });

  it('refuses a .lazarus symlinked outside the cell, for reading and writing', async () => {
    const root = await makeTempDir();
    const cell = join(root, 'cell');
    await mkdir(join(root, 'outside'), { recursive: true });
    await mkdir(cell);
    await writeFile(join(root, 'outside/state.json'), JSON.stringify(await fixture('state.json')));
    await symlink(join(root, 'outside'), join(cell, '.lazarus'));
    await expect(readCellState(cell)).rejects.toMatchObject({ code: 'CELL_UNSAFE_PATH' });
    await rm(join(root, 'outside/state.json'));
    await expect(
      writeCellState(cell, await fixture<CellState>('state.json')),
    ).rejects.toMatchObject({ code: 'CELL_UNSAFE_PATH' });
    expect(existsSync(join(root, 'outside/state.json'))).toBe(false);
  });

  it('refuses corrupt JSON naming the file', async () => {
    const cell = await makeTempDir();
    await mkdir(join(cell, '.lazarus'));
    await writeFile(join(cell, '.lazarus/state.json'), '{"version":1,');
    await expect(readCellState(cell)).rejects.toMatchObject({
      code: 'CELL_INVALID',
      message: expect.stringMatching(/state\.json: not valid JSON/),
    });
  });
});
