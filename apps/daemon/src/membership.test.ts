import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanup, spawnTsx, tempDir, waitFor, within } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { grant, grantsOf, readMembers, updateMembers, withdraw } from './membership.js';

afterEach(cleanup);

const writerScript = fileURLToPath(new URL('../test/fixtures/members-writer.ts', import.meta.url));
const CELL = '3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b';

describe('updateMembers', () => {
  it('loses no change of two writer processes updating members.json at the same time', async () => {
    const stateDir = await tempDir('pit-members-');
    const go = join(stateDir, 'go');
    const count = 25;
    const writers = ['daemon', 'cli'].map((prefix) => {
      const writer = spawnTsx(writerScript, [stateDir, CELL, prefix, String(count), go]);
      // Listened to from the start: the other writer may exit while the first one is awaited.
      const exited = new Promise((resolve) => writer.once('exit', resolve));
      return Object.assign(writer, { exited });
    });
    // Both load first (slow on a busy machine: tsx compiles them), then start together.
    for (const writer of writers)
      await waitFor(() => writer.output().includes('ready'), 120_000, 'a members writer loaded');
    await fs.writeFile(go, '');
    for (const writer of writers) {
      const code = await within(writer.exited, 60_000, 'a members writer');
      expect(code, writer.output()).toBe(0);
    }
    const { members, problem } = await readMembers(stateDir);
    expect(problem).toBeUndefined();
    const granted = Object.keys(members.cells[CELL] ?? {}).sort();
    const expected = ['daemon', 'cli']
      .flatMap((prefix) => Array.from({ length: count }, (_, index) => `${prefix}-${index}`))
      .sort();
    expect(granted).toEqual(expected);
  }, 200_000);

  it('loses no change of concurrent updates in one process either', async () => {
    const stateDir = await tempDir('pit-members-');
    await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        updateMembers(stateDir, grant(CELL, [`agent-${index}`], 'join', new Date())),
      ),
    );
    await updateMembers(stateDir, withdraw(CELL, 'agent-3'));
    const { members } = await readMembers(stateDir);
    expect(Object.keys(members.cells[CELL] ?? {})).toHaveLength(19);
    await expect(fs.access(join(stateDir, 'members.json.lock'))).rejects.toThrow(/ENOENT/);
  });
});

describe('grantsOf', () => {
  it('keeps how each agent was granted each cell, and one frozen grant per source for the whole file', () => {
    const other = '0b0e963c-ed00-4fa5-8dbb-eb0100c1239c';
    const at = new Date('2026-01-02T03:04:05Z');
    let members = grant(CELL, ['forge', 'ezra'], 'create', at)({ version: 1, cells: {} });
    members = grant(other, ['scout'], 'create', at)(members);
    members = grant(CELL, ['spare'], 'substitute', at)(members);
    const grants = grantsOf(members);
    expect(grants).toEqual({
      cells: {
        [CELL]: { forge: { by: 'create' }, ezra: { by: 'create' }, spare: { by: 'substitute' } },
        [other]: { scout: { by: 'create' } },
      },
    });
    expect(grants.cells[CELL]!.forge).toBe(grants.cells[other]!.scout);
    expect(Object.isFrozen(grants.cells[CELL]!.forge)).toBe(true);
    // The file read is left as it was.
    expect(members.cells[CELL]!.forge).toEqual({ granted_at: at.toISOString(), by: 'create' });
  });
});
