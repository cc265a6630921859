/** The optional logger every @pit/snapshot entry point accepts; the package never writes to the console. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const ignore = (): void => undefined;

/** A logger that discards everything (the default). */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };
