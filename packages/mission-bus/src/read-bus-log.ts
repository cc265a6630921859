import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cellPaths, formatIssues, readEvents } from '@pit/cell-spec';
import { BusEventSchema, type BusEvent } from './bus-event.js';
import { BusError } from './errors.js';
import { SEGMENT_PATTERN } from './segment-log.js';

/** One line of a bus log read by {@link readBusLog}: an event, or a problem with where it is. */
export type BusLogEntry =
  | { ok: true; event: BusEvent }
  | { ok: false; segment: string; line: number; torn: boolean; reason: string };

/** Options of {@link readBusLog}. */
export interface ReadBusLogOptions {
  /** Only events with a sequence number greater than this. @default 0 */
  after?: number;
}

/**
 * Reads a mission's bus log straight from the cell's `bus/` segments, oldest first, **without**
 * opening the bus or taking its lock: for tools (`pit bus tail`) that watch a bus another process
 * (the daemon) owns. A last line still being written is reported as torn, never parsed half-way;
 * read again later to get it.
 * @throws {BusError} BUS_IO when `bus/` cannot be read (a missing one is an empty log).
 * @example
 * for await (const entry of readBusLog(cellDir, { after: 41 })) if (entry.ok) console.log(entry.event.seq, entry.event.event);
 */
export async function* readBusLog(
  cellDir: string,
  options: ReadBusLogOptions = {},
): AsyncGenerator<BusLogEntry> {
  const dir = cellPaths(cellDir).bus;
  const after = options.after ?? 0;
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((name) => SEGMENT_PATTERN.test(name)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new BusError('BUS_IO', `${dir}: cannot list the bus log: ${(error as Error).message}`, {
      cause: error,
    });
  }
  // Skip whole segments that end before `after`: a segment's events start at the number in its name.
  const firsts = names.map((name) => Number(SEGMENT_PATTERN.exec(name)?.[1]));
  let start = 0;
  for (let index = 0; index < names.length; index++) if (firsts[index]! <= after + 1) start = index;
  for (const name of names.slice(start)) {
    const path = join(dir, name);
    for await (const entry of readEvents(path)) {
      if (!entry.ok) {
        yield {
          ok: false,
          segment: path,
          line: entry.line,
          torn: entry.torn,
          reason: entry.reason,
        };
        continue;
      }
      const parsed = BusEventSchema.safeParse(entry.event);
      if (!parsed.success) {
        yield {
          ok: false,
          segment: path,
          line: entry.line,
          torn: false,
          reason: formatIssues(parsed.error),
        };
        continue;
      }
      if (parsed.data.seq > after) yield { ok: true, event: parsed.data };
    }
  }
}
