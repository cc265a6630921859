import { execFileSync } from 'node:child_process';
import { appendFile, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  fixtureText,
  makeTempDir,
  reapChildren,
  removeTempDirs,
  spawnChild,
} from './__fixtures__/helpers.js';
import { PitError } from './errors.js';
import {
  AnyCellEventSchema,
  CELL_EVENT_KINDS,
  CellEventSchema,
  parseCellEvent,
  type CellEventInput,
} from './event-kinds.js';
import {
  appendEvent,
  createEventAppender,
  EVENT_LINE_MAX_BYTES,
  readEvents,
  serializeEvent,
  serializeLogRecord,
  type EventLogEntry,
} from './events.js';
import { formatIssues } from './format-issues.js';

afterEach(async () => {
  await reapChildren();
  await removeTempDirs();
});

async function collect(
  path: string,
  options: Parameters<typeof readEvents>[1] = {},
): Promise<EventLogEntry[]> {
  const entries: EventLogEntry[] = [];
  for await (const entry of readEvents(path, options)) entries.push(entry);
  return entries;
}

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (!PitError.is(error)) throw error;
    return { code: error.code, message: error.message };
  }
  throw new Error('expected a PitError, but the call succeeded');
}

const TS = '2026-11-22T08:30:00.000Z';
/** An event the types would refuse, to check that the runtime refuses it too. */
const untyped = (value: Record<string, unknown>) => value as unknown as CellEventInput;

describe('CellEventSchema', () => {
  it('accepts every known line of a realistic log', async () => {
    const lines = (await fixtureText('events.jsonl'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { event: string });
    for (const line of lines.filter((candidate) =>
      (CELL_EVENT_KINDS as readonly string[]).includes(candidate.event),
    )) {
      expect(CellEventSchema.safeParse(line).success, JSON.stringify(line)).toBe(true);
    }
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    [
      'agent_dead without its reason',
      { ts: TS, event: 'agent_dead', agent: 'forge' },
      /reason: .*expected string/,
    ],
    [
      'a traversal agent name',
      { ts: TS, event: 'agent_joined', agent: '../../etc', role: 'lead' },
      /agent: must match/,
    ],
    [
      'a checkpoint with a short sha256',
      { ts: TS, event: 'checkpoint_created', checkpoint: 'c.tar.gz', sha256: 'abc', bytes: 1 },
      /sha256: must be a hex sha256/,
    ],
    [
      'a rollback file without its new hash',
      {
        ts: TS,
        event: 'config_rolled_back',
        agent: 'forge',
        files: [{ path: '/x', old_sha256: null }],
      },
      /files\.0\.new_sha256: .*expected string/,
    ],
    [
      'a local timestamp',
      { ts: '2026-11-22 08:30', event: 'cell_frozen', from: 'active' },
      /ts: must be an ISO-8601 UTC timestamp/,
    ],
  ])('rejects %s, naming the field', (_label, event, expected) => {
    const parsed = CellEventSchema.safeParse(event);
    expect(parsed.success).toBe(false);
    expect(formatIssues(parsed.error!)).toMatch(expected);
  });

  it('refuses a field its kind does not list: writers write exactly the listed fields', () => {
    const parsed = CellEventSchema.safeParse({
      ts: TS,
      event: 'agent_dead',
      agent: 'forge',
      reason: 'stale',
      failing: ['heartbeat'],
      probe: 'heartbeat_age',
    });
    expect(parsed.success).toBe(false);
    expect(formatIssues(parsed.error!)).toMatch(/probe/);
  });

  it('has one schema per kind and lists each kind once', () => {
    expect(new Set(CELL_EVENT_KINDS).size).toBe(CELL_EVENT_KINDS.length);
    expect(CELL_EVENT_KINDS).toContain('agent_started');
    expect(CELL_EVENT_KINDS).toContain('rollback_failed');
  });

  it('lets AnyCellEventSchema accept an unknown kind but not a malformed name', () => {
    expect(
      AnyCellEventSchema.safeParse({ ts: TS, event: 'budget_exceeded', spent_usd: 40.12 }).success,
    ).toBe(true);
    expect(AnyCellEventSchema.safeParse({ ts: TS, event: 'Budget Exceeded' }).success).toBe(false);
  });
});

describe('parseCellEvent (the reading rule)', () => {
  it('keeps fields a newer writer added to a known event', () => {
    const parsed = parseCellEvent({
      ts: TS,
      event: 'agent_dead',
      agent: 'forge',
      reason: 'stale',
      failing: [],
      probe: 'heartbeat_age',
    });
    expect(parsed).toMatchObject({ ok: true, known: true, event: { probe: 'heartbeat_age' } });
  });

  it('tolerates a kind it does not know, keeping every field', () => {
    expect(parseCellEvent({ ts: TS, event: 'budget_exceeded', spent_usd: 40.12 })).toEqual({
      ok: true,
      known: false,
      event: { ts: TS, event: 'budget_exceeded', spent_usd: 40.12 },
    });
  });

  it('says what is wrong with a known kind that lacks a field, and never throws', () => {
    expect(parseCellEvent({ ts: TS, event: 'agent_dead', agent: 'forge' })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^agent_dead: reason: /),
    });
    expect(parseCellEvent(null)).toMatchObject({ ok: false });
    expect(parseCellEvent([1, 2])).toMatchObject({ ok: false });
  });
});

describe('serializeEvent', () => {
  it('fills in ts and renders exactly one line', () => {
    const line = serializeEvent(
      { event: 'agent_left', agent: 'forge', reason: 'done\nreally' },
      'events',
      () => new Date(TS),
    );
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1)).not.toContain('\n');
    expect(JSON.parse(line)).toEqual({
      ts: TS,
      event: 'agent_left',
      agent: 'forge',
      reason: 'done\nreally',
    });
  });

  it('refuses a bad known event naming the kind and field', () => {
    expect(() =>
      serializeEvent(untyped({ event: 'agent_dead', agent: 'forge' }), 'x/events.jsonl'),
    ).toThrow(/x\/events\.jsonl: agent_dead: reason:/);
  });

  it('refuses a kind not in the list, and a field its kind does not list', () => {
    expect(() => serializeEvent(untyped({ event: 'issue_opened', agent: 'forge' }), 'x')).toThrow(
      /x: event: "issue_opened" is not a known event kind/,
    );
    expect(() =>
      serializeEvent(
        untyped({ event: 'agent_healthy', agent: 'forge', failure_class: 'bad_config' }),
        'x',
      ),
    ).toThrow(/x: agent_healthy: .*failure_class/);
  });

  it('refuses a line larger than it can append atomically', () => {
    try {
      serializeEvent({
        event: 'agent_left',
        agent: 'forge',
        reason: 'x'.repeat(EVENT_LINE_MAX_BYTES),
      });
      expect.unreachable();
    } catch (error) {
      expect((error as PitError).code).toBe('CELL_TOO_LARGE');
    }
  });
});

describe('serializeLogRecord', () => {
  it('renders a line of another log with its own kinds, checking only ts and the name', () => {
    expect(
      JSON.parse(
        serializeLogRecord({ event: 'bus_denied', participant: 'x' }, 'audit', () => new Date(TS)),
      ),
    ).toEqual({ ts: TS, event: 'bus_denied', participant: 'x' });
    expect(() => serializeLogRecord({ event: 'Bad Name' }, 'audit')).toThrow(
      /audit: event: must be a snake_case/,
    );
  });
});

describe('appendEvent', () => {
  it('appends one validated line and returns the event as written', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    const event = await appendEvent(
      path,
      {
        event: 'agent_dead',
        agent: 'forge',
        reason: 'heartbeat stale 95 s',
        failing: ['heartbeat'],
      },
      { now: () => new Date(TS), fsync: true },
    );
    expect(event).toEqual({
      ts: TS,
      event: 'agent_dead',
      agent: 'forge',
      reason: 'heartbeat stale 95 s',
      failing: ['heartbeat'],
    });
    expect(await readFile(path, 'utf8')).toBe(`${JSON.stringify(event)}\n`);
  });

  it('writes nothing for an invalid event', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    await appendEvent(path, { event: 'cell_frozen', from: 'active' });
    expect(
      (await failure(appendEvent(path, { event: 'agent_joined', agent: 'Bad Name', role: 'x' })))
        .code,
    ).toBe('CELL_INVALID');
    expect((await readFile(path, 'utf8')).split('\n')).toHaveLength(2);
  });

  it('refuses an events.jsonl that is a symlink to a file outside the cell', async () => {
    const dir = await makeTempDir();
    const outside = join(dir, 'passwd');
    await writeFile(outside, 'root:x:0:0::/root:/bin/sh\n');
    await symlink(outside, join(dir, 'events.jsonl'));
    expect(
      (
        await failure(
          appendEvent(join(dir, 'events.jsonl'), { event: 'cell_frozen', from: 'active' }),
        )
      ).code,
    ).toBe('CELL_UNSAFE_PATH');
    expect(await readFile(outside, 'utf8')).toBe('root:x:0:0::/root:/bin/sh\n');
  });

  it('refuses a FIFO at the events path without hanging', async () => {
    const dir = await makeTempDir();
    execFileSync('mkfifo', [join(dir, 'events.jsonl')]);
    // O_NONBLOCK on a FIFO without a reader fails with ENXIO; either way it is refused, not hung.
    expect(['CELL_UNSAFE_PATH', 'CELL_IO']).toContain(
      (
        await failure(
          appendEvent(join(dir, 'events.jsonl'), { event: 'cell_frozen', from: 'active' }),
        )
      ).code,
    );
    expect((await failure(collect(join(dir, 'events.jsonl')))).code).toBe('CELL_UNSAFE_PATH');
  });

  it('says CELL_NOT_FOUND when the logs directory is missing', async () => {
    const dir = await makeTempDir();
    expect(
      (
        await failure(
          appendEvent(join(dir, 'logs/events.jsonl'), { event: 'cell_frozen', from: 'active' }),
        )
      ).code,
    ).toBe('CELL_NOT_FOUND');
  });
});

describe('createEventAppender', () => {
  it('appends many events through one descriptor and can be used again after close', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    const appender = createEventAppender(path, { now: () => new Date(TS) });
    for (let cycle = 0; cycle < 50; cycle += 1)
      await appender.append({ event: 'heartbeat', agent: 'forge', cycle });
    await appender.close();
    await appender.append({ event: 'cell_frozen', from: 'active' });
    await appender.close();
    const entries = await collect(path);
    expect(entries).toHaveLength(51);
    expect(entries.every((entry) => entry.ok && entry.known)).toBe(true);
  });
});

describe('appendEvent from several processes at once', () => {
  it('keeps every line intact and loses none', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    const writers = ['a', 'b', 'c', 'd'];
    const perWriter = 250;
    const children = writers.map((writer) =>
      spawnChild('event-appender.ts', [path, writer, String(perWriter)]),
    );
    await Promise.all(children.map((child) => child.waitForLine((line) => line === 'ready')));
    for (const child of children) child.send('go');
    await Promise.all(
      children.map((child) => child.waitForLine((line) => line === 'done', 60_000)),
    );
    expect(
      (await Promise.all(children.map((child) => child.exited))).map((result) => result.code),
    ).toEqual([0, 0, 0, 0]);
    const entries = await collect(path);
    expect(entries.filter((entry) => !entry.ok)).toEqual([]);
    expect(entries).toHaveLength(writers.length * perWriter);
    const seen = new Map<string, number[]>();
    for (const entry of entries) {
      if (!entry.ok) continue;
      const {
        agent: writer,
        cycle: seq,
        status: padding,
      } = entry.event as unknown as {
        agent: string;
        cycle: number;
        status: string;
      };
      expect(padding).toBe(writer.repeat(1 + ((seq * 7919) % 6000)));
      seen.set(writer, [...(seen.get(writer) ?? []), seq]);
    }
    // Each writer's lines are all there, once, in the order it wrote them.
    for (const writer of writers)
      expect(seen.get(writer)).toEqual(Array.from({ length: perWriter }, (_, seq) => seq));
  }, 90_000);
});

describe('readEvents', () => {
  it('yields every event of a realistic log, reporting an unknown kind as unknown with all its fields', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    await writeFile(path, await fixtureText('events.jsonl'));
    const entries = await collect(path);
    expect(entries).toHaveLength(12);
    expect(entries.every((entry) => entry.ok)).toBe(true);
    const unknown = entries.filter((entry) => entry.ok && !entry.known);
    expect(unknown).toEqual([
      expect.objectContaining({
        line: 11,
        known: false,
        event: expect.objectContaining({
          event: 'budget_exceeded',
          budget_usd: 40,
          spent_usd: 40.12,
          writer: 'pit 0.4',
        }),
      }),
    ]);
  });

  it('reports a torn last line with its line number and keeps everything before it', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    await writeFile(path, await fixtureText('events.jsonl'));
    await appendFile(path, '{"ts":"2026-11-22T08:32:00.000Z","event":"agent_de');
    const entries = await collect(path);
    expect(entries.slice(0, 12).every((entry) => entry.ok)).toBe(true);
    expect(entries[12]).toMatchObject({
      ok: false,
      torn: true,
      line: 13,
      raw: '{"ts":"2026-11-22T08:32:00.000Z","event":"agent_de',
    });
  });

  it('ends a torn last line before appending, so the next event is never merged into it', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    await writeFile(path, `${JSON.stringify({ ts: TS, event: 'cell_activated' })}\n`);
    await appendFile(path, '{"ts":"2026-11-22T08:32:00.000Z","event":"agent_dea');
    // Both the one-shot append and a kept-open appender (which opened before the tear) end it.
    await appendEvent(path, { event: 'agent_dead', agent: 'forge', reason: 'stale', failing: [] });
    const appender = createEventAppender(path);
    try {
      await appender.append({ event: 'cell_frozen', from: 'active' });
      await appendFile(path, '{"torn":');
      await appender.append({ event: 'cell_frozen', from: 'active', reason: 'again' });
    } finally {
      await appender.close();
    }
    const entries = await collect(path);
    expect(entries.map((entry) => (entry.ok ? entry.event.event : `bad:${entry.raw}`))).toEqual([
      'cell_activated',
      'bad:{"ts":"2026-11-22T08:32:00.000Z","event":"agent_dea',
      'agent_dead',
      'cell_frozen',
      'bad:{"torn":',
      'cell_frozen',
    ]);
    expect((await readFile(path, 'utf8')).endsWith('\n')).toBe(true);
  });

  it('skips a zero-length line (an appender ended a tail another writer was still writing) but counts it', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    const activated = JSON.stringify({ ts: TS, event: 'cell_activated' });
    await writeFile(path, `${activated}\n\n${activated}\n`);
    const entries = await collect(path);
    expect(entries.map((entry) => [entry.line, entry.offset, entry.ok])).toEqual([
      [1, 0, true],
      [3, activated.length + 2, true],
    ]);
  });

  it('reports malformed lines in the middle with line numbers and offsets, and keeps the good ones', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    const lines = [
      JSON.stringify({ ts: TS, event: 'cell_activated' }),
      '{not json',
      '  ',
      JSON.stringify({ event: 'cell_frozen', from: 'active' }),
      JSON.stringify({ ts: TS, event: 'agent_dead', agent: 'forge' }),
      '[1,2,3]',
      JSON.stringify({ ts: TS, event: 'Bad-Kind' }),
      JSON.stringify({ ts: TS, event: 'cell_frozen', from: 'active', reason: 'maintenance' }),
    ];
    await writeFile(path, `${lines.join('\n')}\n`);
    const entries = await collect(path);
    expect(entries.map((entry) => [entry.line, entry.ok])).toEqual([
      [1, true],
      [2, false],
      [3, false],
      [4, false],
      [5, false],
      [6, false],
      [7, false],
      [8, true],
    ]);
    const offsets = entries.map((entry) => entry.offset);
    expect(offsets).toEqual(
      lines.map((_, index) =>
        lines.slice(0, index).reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0),
      ),
    );
    const reasons = entries.map((entry) => (entry.ok ? '' : entry.reason));
    expect(reasons[1]).toMatch(/not valid JSON/);
    expect(reasons[2]).toBe('empty line');
    expect(reasons[3]).toMatch(/ts: /);
    expect(reasons[4]).toMatch(/agent_dead: reason:/);
    expect(reasons[6]).toMatch(/event: must be a snake_case event name/);
  });

  it('resumes from an offset and line number of an earlier read', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    await writeFile(path, await fixtureText('events.jsonl'));
    const all = await collect(path);
    const resumed = await collect(path, { fromOffset: all[5]!.offset, fromLine: 6 });
    expect(resumed).toEqual(all.slice(5));
  });

  it('reports an oversized line without buffering it, and goes on', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'events.jsonl');
    const good = JSON.stringify({ ts: TS, event: 'cell_frozen', from: 'active' });
    await writeFile(path, `${good}\n${'x'.repeat(300_000)}\n${good}\n${'y'.repeat(300_000)}`);
    const entries = await collect(path, { maxLineBytes: 100_000, highWaterMark: 4096 });
    expect(entries.map((entry) => [entry.line, entry.ok])).toEqual([
      [1, true],
      [2, false],
      [3, true],
      [4, false],
    ]);
    expect(entries[1]).toMatchObject({
      reason: 'line of 300000 bytes exceeds the limit of 100000 bytes',
      torn: false,
    });
    expect((entries[1] as { raw: string }).raw.length).toBeLessThanOrEqual(4096);
    expect(entries[3]).toMatchObject({
      torn: true,
      reason: expect.stringContaining('300000 bytes'),
    });
    expect(entries[2]!.offset).toBe(good.length + 1 + 300_001);
  });

  it('refuses a symlinked log and a missing one with clear codes', async () => {
    const dir = await makeTempDir();
    await writeFile(join(dir, 'real.jsonl'), '');
    await symlink(join(dir, 'real.jsonl'), join(dir, 'events.jsonl'));
    expect((await failure(collect(join(dir, 'events.jsonl')))).code).toBe('CELL_UNSAFE_PATH');
    expect((await failure(collect(join(dir, 'missing.jsonl')))).code).toBe('CELL_NOT_FOUND');
  });

  it('parses any mix of good, unknown, broken and torn lines into one entry per line (property)', async () => {
    const dir = await makeTempDir();
    const goodEvent = fc.oneof(
      fc.record({
        ts: fc.constant(TS),
        event: fc.constant('agent_dead'),
        agent: fc.constantFrom('forge', 'allegro'),
        reason: fc.string(),
        failing: fc.array(fc.constantFrom('heartbeat', 'process')),
      }),
      fc.record({
        ts: fc.constant(TS),
        event: fc.constant('heartbeat'),
        agent: fc.constant('forge'),
        cycle: fc.nat(),
      }),
      fc.record({
        ts: fc.constant(TS),
        event: fc.constant('cell_frozen'),
        from: fc.constant('active'),
        // A field this version does not list (a newer writer's): readers keep it.
        note: fc.string({ unit: 'binary' }),
      }),
    );
    const unknownEvent = fc.record({
      ts: fc.constant(TS),
      event: fc.constantFrom('budget_exceeded', 'x_y_z'),
      data: fc.jsonValue(),
    });
    const line = fc.oneof(
      goodEvent.map((event) => ({ kind: 'good' as const, text: JSON.stringify(event) })),
      unknownEvent.map((event) => ({ kind: 'unknown' as const, text: JSON.stringify(event) })),
      fc
        .string()
        .filter((text) => !text.includes('\n'))
        .map((text) => ({ kind: 'junk' as const, text: `#${text}` })),
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(line, { maxLength: 30 }),
        fc.option(fc.string({ minLength: 1 }).filter((text) => !text.includes('\n'))),
        fc.integer({ min: 1, max: 97 }),
        async (lines, torn, highWaterMark) => {
          const path = join(dir, `p${run++}.jsonl`);
          await writeFile(path, lines.map((entry) => `${entry.text}\n`).join('') + (torn ?? ''));
          const entries = await collect(path, { highWaterMark });
          expect(entries).toHaveLength(lines.length + (torn ? 1 : 0));
          lines.forEach((expected, index) => {
            const entry = entries[index]!;
            expect(entry.line).toBe(index + 1);
            if (expected.kind === 'junk') expect(entry.ok).toBe(false);
            else {
              expect(entry).toMatchObject({ ok: true, known: expected.kind === 'good' });
              expect((entry as { event: unknown }).event).toEqual(JSON.parse(expected.text));
            }
          });
          if (torn)
            expect(entries.at(-1)).toMatchObject({
              ok: false,
              torn: true,
              raw: torn,
              line: lines.length + 1,
            });
        },
      ),
      { numRuns: 100, seed: 20261122 },
    );
  });
});
