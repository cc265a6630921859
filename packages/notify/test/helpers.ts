import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogFields, Logger } from '../src/logger.js';

/** One captured log line. */
export interface LogLine {
  level: keyof Logger;
  message: string;
  fields?: LogFields;
}

/** A logger that keeps every line, for assertions (and a dump of all text for secret checks). */
export function captureLogger(): Logger & { lines: LogLine[]; text(): string } {
  const lines: LogLine[] = [];
  const at =
    (level: keyof Logger) =>
    (message: string, fields?: LogFields): void => {
      lines.push({ level, message, ...(fields ? { fields } : {}) });
    };
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    text: () =>
      lines
        .map((line) => `${line.level} ${line.message} ${JSON.stringify(line.fields ?? {})}`)
        .join('\n'),
  };
}

/** A fresh temporary directory and its cleanup. */
export async function tempDir(
  prefix = 'pit-notify-',
): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** A settable clock for brokers and channels. */
export function manualClock(start = new Date()): {
  now: () => Date;
  set: (date: Date) => void;
  advance: (ms: number) => void;
} {
  let current = new Date(start);
  return {
    now: () => new Date(current),
    set: (date) => {
      current = new Date(date);
    },
    advance: (ms) => {
      current = new Date(current.getTime() + ms);
    },
  };
}
