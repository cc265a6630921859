import { PitError } from '@pit/cell-spec';
import { EXIT } from './exit-codes.js';

/** A command line that cannot be acted on (exit 2). */
export class UsageError extends PitError<'CLI_USAGE'> {
  constructor(message: string) {
    super('CLI_USAGE', message);
  }
}

/** A request that was refused or found something unhealthy (exit 1), with a message for the user. */
export class RefusedError extends PitError<'CLI_REFUSED'> {
  constructor(message: string) {
    super('CLI_REFUSED', message);
  }
}

const USAGE_CODES = /(_USAGE|_BAD_NAME|CONFIG_.*|_CONFIG)$/;

/** The one place that maps an error to an exit code. */
export function exitCodeFor(error: unknown): number {
  if (!PitError.is(error)) return EXIT.internal;
  if (USAGE_CODES.test(error.code) || error.code.startsWith('CONFIG_')) return EXIT.usage;
  return EXIT.unhealthy;
}
