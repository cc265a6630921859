import { PitError, type PitErrorOptions } from '@pit/cell-spec';

/**
 * Error codes of @pit/mission-bus (a code is public API):
 * - `BUS_INVALID`: an input, a config or a frame's fields break their schema
 * - `BUS_FORBIDDEN`: the participant's role lacks the capability (an unknown participant has none)
 * - `BUS_UNKNOWN_PARTICIPANT`: a recipient, handoff party or isolation target is not a participant
 * - `BUS_NOT_FOUND`: a checkpoint, handoff or event that does not exist
 * - `BUS_CONFLICT`: an event id already used by a different event
 * - `BUS_TOO_LARGE`: an event over `log.max_event_bytes`, or a frame over the server's limit
 * - `BUS_CORRUPT`: the log is damaged beyond a torn last line
 * - `BUS_LOCKED`: another bus (in this or another process) holds the cell's bus directory
 * - `BUS_EXISTS`: fromJSON into a bus that already has events
 * - `BUS_CLOSED`: the bus, server or client is closed (or failed)
 * - `BUS_IO`: the filesystem refused
 * - `BUS_UNAUTHENTICATED`: an operation before a successful hello, or a bad token
 * - `BUS_BAD_FRAME`: a frame that is not JSON text or breaks the protocol schema
 * - `BUS_SLOW_CONSUMER`: a subscriber disconnected for falling too far behind
 * - `BUS_TIMEOUT`: a request got no answer in time (its outcome is unknown)
 * - `BUS_UNREACHABLE`: the server could not be reached
 * - `BUS_BACKPRESSURE`: too many requests waiting on a client
 * - `BUS_ALREADY_SUBSCRIBED`: a second subscription on one connection
 * - `BUS_STALE_EPOCH`: a write carrying an incarnation epoch older than the participant's current one
 */
export const BUS_ERROR_CODES = [
  'BUS_INVALID',
  'BUS_FORBIDDEN',
  'BUS_UNKNOWN_PARTICIPANT',
  'BUS_NOT_FOUND',
  'BUS_CONFLICT',
  'BUS_TOO_LARGE',
  'BUS_CORRUPT',
  'BUS_LOCKED',
  'BUS_EXISTS',
  'BUS_CLOSED',
  'BUS_IO',
  'BUS_UNAUTHENTICATED',
  'BUS_BAD_FRAME',
  'BUS_SLOW_CONSUMER',
  'BUS_TIMEOUT',
  'BUS_UNREACHABLE',
  'BUS_BACKPRESSURE',
  'BUS_ALREADY_SUBSCRIBED',
  'BUS_STALE_EPOCH',
] as const;
export type BusErrorCode = (typeof BUS_ERROR_CODES)[number];

/** The error thrown by @pit/mission-bus. */
export class BusError extends PitError<BusErrorCode> {
  constructor(code: BusErrorCode, message: string, options: PitErrorOptions = {}) {
    super(code, message, options);
  }
}

/** Turns a cell-spec or fs error into a BusError naming `where`; passes BusErrors through. */
export function toBusError(error: unknown, where: string): BusError {
  if (error instanceof BusError) return error;
  if (PitError.is(error) && (BUS_ERROR_CODES as readonly string[]).includes(error.code)) {
    return new BusError(error.code as BusErrorCode, error.message, {
      cause: error,
      retryable: error.retryable,
    });
  }
  const code = PitError.is(error) ? error.code : (error as NodeJS.ErrnoException | undefined)?.code;
  const reason = error instanceof Error ? error.message : String(error);
  const message = reason.startsWith(where) ? reason : `${where}: ${reason}`;
  if (code === 'CELL_LOCKED')
    return new BusError('BUS_LOCKED', message, { cause: error, retryable: true });
  if (code === 'CELL_INVALID') return new BusError('BUS_CORRUPT', message, { cause: error });
  const retryable = PitError.is(error) ? error.retryable : false;
  return new BusError('BUS_IO', message, { cause: error, retryable });
}
