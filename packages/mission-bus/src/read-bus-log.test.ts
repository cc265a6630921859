import { appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeCell, roleParticipants, tempRoot } from '../test/helpers.js';
import { MissionBus } from './mission-bus.js';
import { readBusLog, type BusLogEntry } from './read-bus-log.js';

let cleanup: () => Promise<void>;
let cellDir: string;
let bus: MissionBus | undefined;

beforeEach(async () => {
  const made = await tempRoot();
  cleanup = made.cleanup;
  cellDir = await makeCell(made.root);
});
afterEach(async () => {
  await bus?.close();
  bus = undefined;
  await cleanup();
});

async function collect(after?: number): Promise<BusLogEntry[]> {
  const entries: BusLogEntry[] = [];
  for await (const entry of readBusLog(cellDir, after === undefined ? {} : { after }))
    entries.push(entry);
  return entries;
}

describe('readBusLog', () => {
  it('reads the log of a bus another process holds open, across segments, from a sequence number', async () => {
    bus = await MissionBus.open({
      cellDir,
      config: {
        mission: { id: 'm', title: 'M' },
        participants: roleParticipants().participants,
        log: { segment_max_bytes: 1024 },
      },
    });
    for (let index = 1; index <= 20; index++)
      await bus.publish('lead1', { topic: 'note', payload: `event ${index} ${'x'.repeat(40)}` });
    await bus.flush();
    expect(
      (await readdir(join(cellDir, 'bus'))).filter((name) => name.startsWith('stream-')).length,
    ).toBeGreaterThan(1);

    const all = await collect();
    expect(all.every((entry) => entry.ok)).toBe(true);
    expect(all.map((entry) => (entry.ok ? entry.event.seq : 0))).toEqual(
      Array.from({ length: 20 }, (_, index) => index + 1),
    );
    const tail = await collect(17);
    expect(tail.map((entry) => (entry.ok ? entry.event.seq : 0))).toEqual([18, 19, 20]);
  });

  it('reports a line still being written as torn instead of parsing half of it', async () => {
    bus = await MissionBus.open({
      cellDir,
      config: { mission: { id: 'm', title: 'M' }, participants: roleParticipants().participants },
    });
    await bus.publish('lead1', { topic: 'note', payload: 1 });
    await bus.flush();
    const segment = (await readdir(join(cellDir, 'bus')))
      .filter((name) => name.startsWith('stream-'))
      .sort()
      .at(-1)!;
    await appendFile(join(cellDir, 'bus', segment), '{"seq":2,"event":"mess');
    const entries = await collect();
    expect(entries[0]).toMatchObject({ ok: true, event: { seq: 1 } });
    expect(entries[1]).toMatchObject({ ok: false, torn: true, line: 2 });
  });

  it('is empty for a cell whose bus was never opened', async () => {
    expect(await collect()).toEqual([]);
  });
});
