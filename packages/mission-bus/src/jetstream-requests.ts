/**
 * What the JetStream pieces of `@pit/mission-bus/jetstream` (the event log and the shared roles)
 * share: the token a mission id or a participant name becomes in a stream name, subject or KV
 * key, and repeating a request through a leader election.
 */
import { BusError } from './errors.js';
import { describeError, type BusLogger } from './logger.js';

/**
 * `text` as one NATS token (a stream name, a subject or KV key part): letters, digits and `-` as
 * they are, any other character as `_XX` (its code in hex), so that distinct texts stay distinct.
 */
export function natsToken(text: string): string {
  return text.replace(
    /[^A-Za-z0-9-]/g,
    (char) => `_${char.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

/** The text a {@link natsToken} was made from. */
export function fromNatsToken(token: string): string {
  return token.replace(/_([0-9A-F]{2})/g, (_, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
}

/** Where a repeated request goes and for how long it is repeated. */
export interface RepeatSettings {
  /** What the request is made of, for messages: `stream PIT_BUS_…`, `KV bucket pit_bus_roles`. */
  label: string;
  deadlineMs: number;
  logger: BusLogger;
  /** Fields added to the debug line of each repeat. */
  fields?: Record<string, unknown>;
}

/**
 * Runs a request again after any failure until the deadline (a node dying makes requests time
 * out, or find no responder, for the 2–4 s of a leader election). A BusError, or an error `keep`
 * refuses, is thrown at once.
 * @throws {BusError} BUS_TIMEOUT (retryable) with the last error once the deadline has passed.
 */
export async function repeatRequest<T>(
  settings: RepeatSettings,
  what: string,
  request: () => Promise<T>,
  keep: (error: unknown) => boolean = () => true,
): Promise<T> {
  const deadline = Date.now() + settings.deadlineMs;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await request();
    } catch (error) {
      if (error instanceof BusError || !keep(error)) throw error;
      if (Date.now() >= deadline)
        throw new BusError(
          'BUS_TIMEOUT',
          `${settings.label}: could not ${what} within ${settings.deadlineMs} ms: ${describeError(error)}`,
          { cause: error, retryable: true },
        );
      settings.logger.debug('bus: JetStream request failed; repeating it', {
        ...settings.fields,
        what,
        attempt,
        error: describeError(error),
      });
      await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 100 * attempt)));
    }
  }
}
