import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from './__fixtures__/helpers.js';
import { PitError } from './errors.js';
import { readEvents } from './events.js';
import {
  CELL_TRANSITIONS,
  CellStatusSchema,
  TRANSITION_EVENTS,
  type CellStatus,
} from './lifecycle.js';
import { readManifest } from './manifest.js';
import { cellPaths } from './paths.js';
import { provisionCell } from './provision.js';
import { transitionCell } from './transition.js';

afterEach(removeTempDirs);

async function eventsOf(dir: string): Promise<Array<Record<string, unknown>>> {
  const events: Array<Record<string, unknown>> = [];
  for await (const entry of readEvents(cellPaths(dir).events)) {
    expect(entry.ok).toBe(true);
    if (entry.ok) events.push(entry.event);
  }
  return events;
}

describe('transitionCell', () => {
  it('moves a cell through its whole life, appending each status event with from and reason', async () => {
    const root = await makeTempDir();
    const { dir } = await provisionCell(root, {
      mission: 'life',
      created_by: 'ops',
      status: 'provisioning',
    });
    const now = new Date('2026-11-22T12:00:00.000Z');
    for (const to of ['active', 'frozen', 'active', 'archived', 'destroyed'] as const)
      await transitionCell(dir, to, { reason: `to ${to}`, now: () => now });
    const manifest = await readManifest(dir);
    expect(manifest).toMatchObject({ status: 'destroyed', revision: 5 });
    const events = (await eventsOf(dir)).slice(1);
    expect(events).toEqual([
      { ts: now.toISOString(), event: 'cell_activated', from: 'provisioning', reason: 'to active' },
      { ts: now.toISOString(), event: 'cell_frozen', from: 'active', reason: 'to frozen' },
      { ts: now.toISOString(), event: 'cell_activated', from: 'frozen', reason: 'to active' },
      { ts: now.toISOString(), event: 'cell_archived', from: 'active', reason: 'to archived' },
      { ts: now.toISOString(), event: 'cell_destroyed', from: 'archived', reason: 'to destroyed' },
    ]);
  });

  it('writes nothing when its event could not be logged inside the cell', async () => {
    const root = await makeTempDir();
    const { dir } = await provisionCell(root, { mission: 'linked log', created_by: 'ops' });
    const { rm, symlink, writeFile, readFile } = await import('node:fs/promises');
    await writeFile(join(root, 'outside.jsonl'), '');
    await rm(cellPaths(dir).events);
    await symlink(join(root, 'outside.jsonl'), cellPaths(dir).events);
    await expect(transitionCell(dir, 'frozen')).rejects.toMatchObject({
      code: 'CELL_UNSAFE_PATH',
      message: expect.stringContaining('from active to frozen'),
    });
    expect((await readManifest(dir)).status).toBe('active');
    expect(await readFile(join(root, 'outside.jsonl'), 'utf8')).toBe('');
  });

  it('refuses a move to the current status', async () => {
    const root = await makeTempDir();
    const { dir } = await provisionCell(root, { mission: 'same', created_by: 'ops' });
    await expect(transitionCell(dir, 'active')).rejects.toThrow(/cannot go from active to active/);
  });

  it('refuses with CELL_CONFLICT when the expected revision is stale', async () => {
    const root = await makeTempDir();
    const { dir } = await provisionCell(root, { mission: 'cas', created_by: 'ops' });
    await transitionCell(dir, 'frozen', { expectedRevision: 0 });
    await expect(transitionCell(dir, 'active', { expectedRevision: 0 })).rejects.toMatchObject({
      code: 'CELL_CONFLICT',
    });
  });

  it('follows the state machine over random sequences of requested statuses, on disk (property)', async () => {
    const root = await makeTempDir();
    const statuses = CellStatusSchema.options;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(...statuses), { minLength: 1, maxLength: 8 }),
        async (requests: CellStatus[]) => {
          const { dir } = await provisionCell(root, {
            mission: 'property',
            created_by: 'fast-check',
            status: 'provisioning',
          });
          let model: CellStatus = 'provisioning';
          const expectedEvents: string[] = ['cell_created'];
          for (const to of requests) {
            const legal = CELL_TRANSITIONS[model].includes(to);
            try {
              await transitionCell(dir, to);
              expect(legal).toBe(true);
              model = to;
              expectedEvents.push(TRANSITION_EVENTS[to as Exclude<CellStatus, 'provisioning'>]);
            } catch (error) {
              expect(legal).toBe(false);
              expect(PitError.is(error) && error.code).toBe('CELL_ILLEGAL_TRANSITION');
              expect((error as Error).message).toContain(`cannot go from ${model} to ${to}`);
            }
            expect((await readManifest(dir)).status).toBe(model);
          }
          expect((await eventsOf(dir)).map((event) => event.event)).toEqual(expectedEvents);
        },
      ),
      { numRuns: 25, seed: 424242 },
    );
  }, 60_000);
});
