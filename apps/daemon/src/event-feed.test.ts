import { readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { cellPaths, createEventAppender, silentLogger } from '@pit/cell-spec';
import { makeCell } from '../test/helpers.js';
import { createCellEventFeed, type FeedEvent } from './event-feed.js';

afterEach(cleanup);

/** Collects feed events until `done` says so (or the bound passes). */
async function collect(
  feed: AsyncIterable<FeedEvent>,
  controller: AbortController,
  done: (events: FeedEvent[]) => boolean,
): Promise<FeedEvent[]> {
  const received: FeedEvent[] = [];
  const bound = setTimeout(() => controller.abort(), 20_000);
  for await (const item of feed) {
    received.push(item);
    if (done(received)) break;
  }
  clearTimeout(bound);
  controller.abort();
  return received;
}

describe('createCellEventFeed', () => {
  it('follows the log across its rotations without skipping or repeating an event', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const path = cellPaths(cell.dir).events;
    const appender = createEventAppender(path, {
      beneath: cell.dir,
      rotate: { maxBytes: 4096, keep: 4 },
    });
    const warnings: string[] = [];
    const feed = createCellEventFeed({
      cellsRoot: cell.root,
      pollMs: 10,
      logger: { ...silentLogger, warn: (message) => void warnings.push(message) },
    });
    const controller = new AbortController();
    const total = 300;
    const heartbeats = (events: FeedEvent[]) =>
      events.filter((item) => item.event.event === 'heartbeat');
    const reading = collect(
      feed({ cell: cell.uuid }, controller.signal),
      controller,
      (events) => heartbeats(events).length >= total,
    );
    // Written in bursts (each smaller than keep files) while the feed reads: many rotations.
    for (let cycle = 0; cycle < total; cycle += 1) {
      await appender.append({ event: 'heartbeat', agent: 'forge', cycle });
      if (cycle % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 30));
    }
    await appender.close();
    const received = await reading;
    expect(heartbeats(received).map((item) => Number(item.event.cycle))).toEqual(
      Array.from({ length: total }, (_, index) => index),
    );
    expect(warnings).toEqual([]);
    expect(
      (await readdir(cellPaths(cell.dir).logs)).filter((name) => name.startsWith('events')),
    ).toHaveLength(4);
  });

  it('reads no events.jsonl through a logs/ an agent replaced with a link out of the cell', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const honest = await makeCell([{ name: 'anvil' }], cell.root);
    const outside = await tempDir('pit-outside-');
    await rm(cellPaths(cell.dir).logs, { recursive: true, force: true });
    await symlink(outside, cellPaths(cell.dir).logs);
    const appender = createEventAppender(cellPaths(honest.dir).events, { beneath: honest.dir });
    await appender.append({ event: 'heartbeat', agent: 'anvil' });
    await appender.close();
    // Outside the cell, a log the daemon never wrote: the same line, another agent.
    const line = (await readFile(cellPaths(honest.dir).events, 'utf8'))
      .split('\n')
      .find((text) => text.includes('"anvil"'))!;
    await writeFile(join(outside, 'events.jsonl'), `${line.replace('"anvil"', '"planted"')}\n`);
    // Every cell is read in each pass before its events are given out: once the honest cell's
    // event arrives, the linked one has been tried too.
    const feed = createCellEventFeed({ cellsRoot: cell.root, pollMs: 10 });
    const controller = new AbortController();
    const received = await collect(feed({}, controller.signal), controller, (events) =>
      events.some((item) => item.event.agent === 'anvil'),
    );
    expect(received.some((item) => item.event.agent === 'anvil')).toBe(true);
    expect(received.filter((item) => item.cell !== honest.uuid)).toEqual([]);
  });

  it('resumes after an event id whose file has been rotated since', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const path = cellPaths(cell.dir).events;
    const appender = createEventAppender(path, {
      beneath: cell.dir,
      rotate: { maxBytes: 4096, keep: 10 },
    });
    for (let cycle = 0; cycle < 10; cycle += 1)
      await appender.append({ event: 'heartbeat', agent: 'forge', cycle });
    const feed = createCellEventFeed({ cellsRoot: cell.root, pollMs: 10 });
    const first = new AbortController();
    const early = await collect(feed({ cell: cell.uuid }, first.signal), first, (events) =>
      events.some((item) => item.event.cycle === 4),
    );
    for (let cycle = 10; cycle < 100; cycle += 1)
      await appender.append({ event: 'heartbeat', agent: 'forge', cycle });
    await appender.close();
    const second = new AbortController();
    const resumed = await collect(
      feed({ cell: cell.uuid, lastEventId: early.at(-1)!.id }, second.signal),
      second,
      (events) => events.some((item) => item.event.cycle === 99),
    );
    expect(resumed.map((item) => Number(item.event.cycle))).toEqual(
      Array.from({ length: 95 }, (_, index) => index + 5),
    );
  });
});
