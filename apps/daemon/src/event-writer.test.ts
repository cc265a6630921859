import { promises as fs, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readEventLog, type CellEventInput } from '@pit/cell-spec';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEventWriter } from './event-writer.js';
import { createLogger } from './logger.js';

afterEach(() => {
  vi.restoreAllMocks();
  return cleanup();
});

/** A daemon logger whose lines are kept, parsed. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    stream: { isTTY: false, write: (chunk: string) => lines.push(JSON.parse(chunk)) },
  });
  return { logger, lines };
}

/** The events of a log, oldest first across its rotations (what `pit why` and the dashboard read). */
async function readLog(path: string) {
  const events: Array<Record<string, unknown>> = [];
  for await (const entry of readEventLog(path)) if (entry.ok) events.push(entry.event);
  return events;
}

const healthy = (n: number): CellEventInput => ({ event: 'agent_healthy', agent: `agent-${n}` });

describe('createEventWriter', () => {
  it('writes a burst in call order, one open per batch, and refuses an invalid event alone', async () => {
    const stateDir = await tempDir('pit-events-');
    const { logger, lines } = capturingLogger();
    const writer = await createEventWriter({ stateDir, logger });
    const path = join(stateDir, 'logs', 'events.jsonl');
    const opens = vi.spyOn(fs, 'open');
    const written = Array.from({ length: 300 }, (_, n) =>
      writer.append(
        path,
        n === 150 ? ({ event: 'no_such_kind' } as unknown as CellEventInput) : healthy(n),
        `host/agent-${n}`,
      ),
    );
    await Promise.all(written);
    const events = await readLog(path);
    expect(events.map((event) => event.agent)).toEqual(
      Array.from({ length: 300 }, (_, n) => n)
        .filter((n) => n !== 150)
        .map((n) => `agent-${n}`),
    );
    const refused = lines.filter((line) => line.msg === 'cannot append event');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ agent: 'host/agent-150', event: 'no_such_kind' });
    // The first event goes out alone; the 299 queued behind it share the next write (or two).
    const logOpens = opens.mock.calls.filter(([file]) => String(file) === path);
    expect(logOpens.length).toBeGreaterThan(0);
    expect(logOpens.length).toBeLessThanOrEqual(3);
  });

  it('keeps rotated files within max_bytes when bursts are batched', async () => {
    const stateDir = await tempDir('pit-events-');
    const writer = await createEventWriter({
      stateDir,
      logger: capturingLogger().logger,
      rotate: { maxBytes: 4096, keep: 100 },
    });
    const path = join(stateDir, 'logs', 'events.jsonl');
    await Promise.all(
      Array.from({ length: 400 }, (_, n) => writer.append(path, healthy(n), `host/agent-${n}`)),
    );
    await writer.flush();
    const files = readdirSync(join(stateDir, 'logs'));
    expect(files.length).toBeGreaterThan(5);
    for (const file of files)
      expect(statSync(join(stateDir, 'logs', file)).size).toBeLessThanOrEqual(4096);
    const events = await readLog(path);
    expect(events.map((event) => event.agent)).toEqual(
      Array.from({ length: 400 }, (_, n) => `agent-${n}`),
    );
  });

  it('writes what was appended while a batch was in flight, and flush() waits for it', async () => {
    const stateDir = await tempDir('pit-events-');
    const writer = await createEventWriter({ stateDir, logger: capturingLogger().logger });
    const path = join(stateDir, 'logs', 'events.jsonl');
    void writer.append(path, healthy(0), 'host/agent-0');
    await Promise.resolve();
    void writer.append(path, healthy(1), 'host/agent-1');
    await writer.flush();
    void writer.append(path, healthy(2), 'host/agent-2');
    await writer.flush();
    expect((await readLog(path)).map((event) => event.agent)).toEqual([
      'agent-0',
      'agent-1',
      'agent-2',
    ]);
  });
});
