import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { provisionCell } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveCellUuid } from './cell-ref.js';

let root: string;
beforeEach(() => {
  root = join(mkdtempSync(join(tmpdir(), 'pit-cell-ref-')), 'missions');
});
afterEach(() => rmSync(join(root, '..'), { recursive: true, force: true }));

const cell = async (uuid: string) =>
  (await provisionCell(root, { mission: 'm', created_by: 'test', uuid })).manifest.uuid;

describe('resolveCellUuid', () => {
  it('takes the short id `pit status` prints, and a full uuid as it is', async () => {
    const uuid = await cell('3f2a9c1e-1111-4111-8111-111111111111');
    await cell('9b0c2d3e-2222-4222-9222-222222222222');
    expect(await resolveCellUuid(root, uuid.slice(0, 8), 'CELL')).toBe(uuid);
    expect(await resolveCellUuid(root, uuid, 'CELL')).toBe(uuid);
  });

  it('refuses a prefix of several cells, naming them, instead of guessing', async () => {
    await cell('3f2a9c1e-1111-4111-8111-111111111111');
    await cell('3f2a9c1e-3333-4333-a333-333333333333');
    await expect(resolveCellUuid(root, '3f2a9c1e', 'CELL')).rejects.toThrow(
      /CELL: 3f2a9c1e is the start of 2 cells' uuids; give more of it: 3f2a9c1e-1111-.*, 3f2a9c1e-3333-/,
    );
    expect(await resolveCellUuid(root, '3f2a9c1e-3', 'CELL')).toBe(
      '3f2a9c1e-3333-4333-a333-333333333333',
    );
  });

  it('refuses an unknown prefix, a short one and one that is no uuid at all', async () => {
    await cell('3f2a9c1e-1111-4111-8111-111111111111');
    mkdirSync(join(root, 'deadbeef-not-a-cell'));
    await expect(resolveCellUuid(root, 'deadbeef', 'CELL')).rejects.toMatchObject({
      code: 'CLI_REFUSED',
      message: expect.stringContaining(`no cell under ${root} has a uuid starting with deadbeef`),
    });
    await expect(resolveCellUuid(root, '3f2', 'CELL')).rejects.toMatchObject({ code: 'CLI_USAGE' });
    await expect(resolveCellUuid(root, '../etc', 'CELL')).rejects.toMatchObject({
      code: 'CLI_USAGE',
    });
  });
});
