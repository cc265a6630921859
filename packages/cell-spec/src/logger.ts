/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/**
 * The logger every @pit package accepts. Packages never write to the console: pass your own
 * (pino, the daemon's logger, …) or leave it out to stay silent.
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const ignore = (): void => undefined;

/** A logger that discards everything (the default everywhere). */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

/**
 * Wraps `logger` so that none of `secrets` ever reaches it: every occurrence in the message
 * and in string field values (at any depth, and in errors) is replaced by `[redacted]`.
 * Secrets shorter than 4 characters are ignored (they would redact ordinary words).
 * @example
 * const log = redactingLogger(daemonLogger, [process.env.PIT_TELEGRAM_TOKEN]);
 */
export function redactingLogger(
  logger: Logger,
  secrets: ReadonlyArray<string | undefined>,
): Logger {
  const active = secrets.filter(
    (secret): secret is string => typeof secret === 'string' && secret.length >= 4,
  );
  if (active.length === 0) return logger;
  const scrub = (text: string): string =>
    active.reduce((out, secret) => out.split(secret).join('[redacted]'), text);
  const scrubValue = (value: unknown, depth: number): unknown => {
    if (typeof value === 'string') return scrub(value);
    if (value instanceof Error) return scrub(`${value.name}: ${value.message}`);
    if (depth > 4 || value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((item) => scrubValue(item, depth + 1));
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, scrubValue(item, depth + 1)]),
    );
  };
  const wrap =
    (level: keyof Logger) =>
    (message: string, fields?: LogFields): void =>
      logger[level](
        scrub(message),
        fields === undefined ? undefined : (scrubValue(fields, 0) as LogFields),
      );
  return { debug: wrap('debug'), info: wrap('info'), warn: wrap('warn'), error: wrap('error') };
}

/** The message of an unknown thrown value. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
