/**
 * Follows one daemon's event log (`<state>/logs/events.jsonl`) as it grows, through
 * @pit/cell-spec's `readEvents`: each `read()` returns only the lines written since the last one
 * (a line still being written is read next time). The benchmark sets `[logs] max_bytes` high
 * enough that the log never rotates; a rotation is reported as an error, not read past.
 */
import { statSync } from 'node:fs';
import { readEvents } from '@pit/cell-spec';

/** One event as the daemon wrote it (the fields the benchmarks use, and the rest). */
export type DaemonEvent = Record<string, unknown> & {
  ts: string;
  event: string;
  agent?: string;
  pid?: number;
  epoch?: number;
  host?: string;
  taken_over_from?: string;
};

/** See the module header. */
export interface EventTail {
  /** The events written since the last call (all of them at the first call). */
  read(): Promise<DaemonEvent[]>;
}

/** A tail of the event log at `path` (absent until the daemon writes its first event). */
export function tailEvents(path: string): EventTail {
  // Where the last complete line starts, and its number: read again (and skipped) each time,
  // since an entry carries where its line starts but not where it ends.
  let offset = 0;
  let line = 0;
  let inode: number | undefined;
  return {
    async read() {
      let stat;
      try {
        stat = statSync(path);
      } catch {
        return [];
      }
      if (inode !== undefined && stat.ino !== inode)
        throw new Error(`${path} was rotated during the run: raise [logs] max_bytes`);
      inode = stat.ino;
      const fresh: DaemonEvent[] = [];
      for await (const entry of readEvents(path, {
        fromOffset: offset,
        fromLine: Math.max(1, line),
      })) {
        if (!entry.ok && entry.torn) break;
        if (entry.line > line) {
          if (entry.ok) fresh.push(entry.event as unknown as DaemonEvent);
          offset = entry.offset;
          line = entry.line;
        }
      }
      return fresh;
    },
  };
}
