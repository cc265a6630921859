/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/**
 * The logger the bus, the server and the client accept. The package never writes to the
 * console; pass your own or leave it out to stay silent.
 */
export interface BusLogger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const ignore = (): void => undefined;

/** A logger that discards everything (the default). */
export const silentLogger: BusLogger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

/** The message of an unknown thrown value. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
