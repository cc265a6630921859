/**
 * The daemon's logger: levels, JSON or pretty lines, redaction of secrets, a copy in a log
 * file. It implements @pit/cell-spec's `Logger`, the contract every @pit package accepts; that
 * type and `silentLogger` are defined there and only re-exported here.
 */
import { appendFileSync } from 'node:fs';
import { inspect } from 'node:util';
import type { Logger } from '@pit/cell-spec';

export { silentLogger, type Logger } from '@pit/cell-spec';

/** Log levels, least to most severe. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lines below this level are dropped. @default 'info' */
  level?: LogLevel;
  /** Where lines go. @default process.stderr */
  stream?: { write(chunk: string): unknown; isTTY?: boolean };
  /** `pretty` for a person at a terminal, `json` for machines. @default 'pretty' when the stream is a TTY, else 'json' */
  format?: 'json' | 'pretty';
  /** Also append JSON lines to this file. */
  file?: string;
  /** Secret values (tokens read from the environment) replaced by `[redacted]` wherever they appear. Values shorter than 4 characters are ignored. */
  secrets?: Iterable<string>;
  /** Fields added to every line (e.g. `{ component: 'daemon' }`). */
  base?: Record<string, unknown>;
  /** Clock, for tests. */
  now?: () => Date;
}

/** A logger whose redaction list can grow (secrets from a reloaded config). */
export interface DaemonLogger extends Logger {
  /** Adds secret values to redact. */
  addSecrets(values: Iterable<string>): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): DaemonLogger;
  /** Changes the minimum level. */
  setLevel(level: LogLevel): void;
}

const REDACTED = '[redacted]';

/**
 * A structured logger: JSON lines (`{ts, level, msg, ...fields}`) or one pretty line per
 * entry, with configured secret values redacted from the message and every field.
 * @example
 * const logger = createLogger({ level: 'debug', secrets: [process.env.PIT_HTTP_TOKEN ?? ''] });
 * logger.info('agent revived', { agent: 'forge', pid: 4242 });
 */
export function createLogger(options: LoggerOptions = {}): DaemonLogger {
  const state = { level: options.level ?? 'info', secrets: new Set<string>() };
  const add = (values: Iterable<string>) => {
    for (const value of values)
      if (typeof value === 'string' && value.length >= 4) state.secrets.add(value);
  };
  add(options.secrets ?? []);
  const stream = options.stream ?? process.stderr;
  const format = options.format ?? (stream.isTTY ? 'pretty' : 'json');
  const now = options.now ?? (() => new Date());

  const redact = (value: unknown, depth = 0): unknown => {
    if (typeof value === 'string') {
      let result = value;
      for (const secret of state.secrets)
        if (result.includes(secret)) result = result.split(secret).join(REDACTED);
      return result;
    }
    if (value instanceof Error)
      return redact(
        {
          name: value.name,
          message: value.message,
          ...('code' in value ? { code: value.code } : {}),
        },
        depth + 1,
      );
    if (depth > 6 || value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, redact(item, depth + 1)]),
    );
  };

  const make = (base: Record<string, unknown>): DaemonLogger => {
    const write = (level: LogLevel, message: string, fields?: Record<string, unknown>) => {
      if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(state.level)) return;
      const entry = redact({
        ts: now().toISOString(),
        level,
        msg: message,
        ...base,
        ...fields,
      }) as Record<string, unknown>;
      const json = `${JSON.stringify(entry)}\n`;
      if (format === 'json') stream.write(json);
      else {
        const { ts, level: _level, msg, ...rest } = entry;
        const extra = Object.entries(rest)
          .filter(([, value]) => value !== undefined)
          .map(
            ([key, value]) =>
              `${key}=${typeof value === 'string' ? value : inspect(value, { breakLength: Infinity, depth: 4 })}`,
          )
          .join(' ');
        stream.write(
          `${String(ts).slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${String(msg)}${extra ? ` ${extra}` : ''}\n`,
        );
      }
      if (options.file) {
        try {
          appendFileSync(options.file, json, { mode: 0o640 });
        } catch {
          // The log file is a copy; stderr still has the line.
        }
      }
    };
    return {
      debug: (message, fields) => write('debug', message, fields),
      info: (message, fields) => write('info', message, fields),
      warn: (message, fields) => write('warn', message, fields),
      error: (message, fields) => write('error', message, fields),
      addSecrets: add,
      child: (fields) => make({ ...base, ...fields }),
      setLevel: (level) => {
        state.level = level;
      },
    };
  };
  return make(options.base ?? {});
}
