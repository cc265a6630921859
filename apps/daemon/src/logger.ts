/**
 * The daemon's logger: levels, JSON or pretty lines, redaction of secrets, a copy in a log
 * file. It implements @pit/cell-spec's `Logger`, the contract every @pit package accepts; that
 * type and `silentLogger` are defined there and only re-exported here.
 */
import { appendFileSync } from 'node:fs';
import { inspect } from 'node:util';
import type { Logger } from '@pit/cell-spec';
import { isSecretFlag, redactSecretPatterns } from './config-safety.js';

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

/** The state a logger and all its children share: the minimum level and the secrets to redact. */
interface LoggerState {
  level: LogLevel;
  secrets: Set<string>;
}

/** Where a logger's lines go, resolved once from {@link LoggerOptions}. */
interface LogSink {
  state: LoggerState;
  stream: { write(chunk: string): unknown };
  format: 'json' | 'pretty';
  now: () => Date;
  file: string | undefined;
}

/** One call to a logger: its level, message and fields (the logger's base fields included). */
interface LogCall {
  level: LogLevel;
  message: string;
  fields: Record<string, unknown>;
}

/** Adds the values of at least 4 characters to `secrets`. */
function addSecrets(secrets: Set<string>, values: Iterable<string>): void {
  for (const value of values)
    if (typeof value === 'string' && value.length >= 4) secrets.add(value);
}

/**
 * `value` with every secret replaced by `[redacted]`, in strings, errors, arrays and objects (to
 * depth 6): the known secret values, the values of secret-looking flags (`--api-token=…`, and the
 * element after `--password` in an array) and URL passwords.
 */
function redact(value: unknown, secrets: ReadonlySet<string>, depth = 0): unknown {
  if (typeof value === 'string') {
    let result = value;
    for (const secret of secrets)
      if (result.includes(secret)) result = result.split(secret).join(REDACTED);
    return redactSecretPatterns(result);
  }
  if (value instanceof Error)
    return redact(
      {
        name: value.name,
        message: value.message,
        ...('code' in value ? { code: value.code } : {}),
      },
      secrets,
      depth + 1,
    );
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value))
    return value.map((item, index) => {
      const before: unknown = index > 0 ? value[index - 1] : undefined;
      if (typeof item === 'string' && typeof before === 'string' && isSecretFlag(before))
        return REDACTED;
      return redact(item, secrets, depth + 1);
    });
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [key, redact(item, secrets, depth + 1)]),
  );
}

/** One pretty line for a redacted entry: time, level, message, then `key=value` fields. */
function prettyLine(entry: Record<string, unknown>, level: LogLevel): string {
  const { ts, level: _level, msg, ...rest } = entry;
  const extra = Object.entries(rest)
    .filter(([, value]) => value !== undefined)
    .map(
      ([key, value]) =>
        `${key}=${typeof value === 'string' ? value : inspect(value, { breakLength: Infinity, depth: 4 })}`,
    )
    .join(' ');
  return `${String(ts).slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${String(msg)}${extra ? ` ${extra}` : ''}\n`;
}

/** A line's own keys: a field of the same name is kept as `field_<name>` instead of replacing them. */
const RESERVED = ['ts', 'level', 'msg'] as const;

function withoutReserved(fields: Record<string, unknown>): Record<string, unknown> {
  if (!RESERVED.some((key) => key in fields)) return fields;
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields))
    kept[(RESERVED as readonly string[]).includes(key) ? `field_${key}` : key] = value;
  return kept;
}

/** Writes one entry to the sink's stream (and log file) unless its level is below the minimum. */
function writeEntry(sink: LogSink, call: LogCall): void {
  const { level, message, fields } = call;
  if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(sink.state.level)) return;
  const entry = redact(
    { ts: sink.now().toISOString(), level, msg: message, ...withoutReserved(fields) },
    sink.state.secrets,
  ) as Record<string, unknown>;
  const json = `${JSON.stringify(entry)}\n`;
  sink.stream.write(sink.format === 'json' ? json : prettyLine(entry, level));
  if (sink.file) {
    try {
      appendFileSync(sink.file, json, { mode: 0o640 });
    } catch {
      // The log file is a copy; stderr still has the line.
    }
  }
}

/** A logger writing to `sink` that adds `base` to every line. */
function makeLogger(sink: LogSink, base: Record<string, unknown>): DaemonLogger {
  const write = (level: LogLevel, message: string, fields?: Record<string, unknown>) =>
    writeEntry(sink, { level, message, fields: { ...base, ...fields } });
  return {
    debug: (message, fields) => write('debug', message, fields),
    info: (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
    addSecrets: (values) => addSecrets(sink.state.secrets, values),
    child: (fields) => makeLogger(sink, { ...base, ...fields }),
    setLevel: (level) => {
      sink.state.level = level;
    },
  };
}

/**
 * A structured logger: JSON lines (`{ts, level, msg, ...fields}`) or one pretty line per
 * entry, with configured secret values redacted from the message and every field.
 * @example
 * const logger = createLogger({ level: 'debug', secrets: [process.env.PIT_HTTP_TOKEN ?? ''] });
 * logger.info('agent revived', { agent: 'forge', pid: 4242 });
 */
export function createLogger(options: LoggerOptions = {}): DaemonLogger {
  const state: LoggerState = { level: options.level ?? 'info', secrets: new Set<string>() };
  addSecrets(state.secrets, options.secrets ?? []);
  const stream = options.stream ?? process.stderr;
  return makeLogger(
    {
      state,
      stream,
      format: options.format ?? (stream.isTTY ? 'pretty' : 'json'),
      now: options.now ?? (() => new Date()),
      file: options.file,
    },
    options.base ?? {},
  );
}
