import { PitError, type PitErrorOptions } from '@pit/cell-spec';

/** Error codes of @pit/notify. A code is public API. */
export type NotifyErrorCode =
  | 'NOTIFY_INVALID_CONFIG' // a channel or broker configuration breaks its schema
  | 'NOTIFY_INVALID_INPUT' // an argument (approval request, death report, alert) breaks its schema
  | 'NOTIFY_BAD_KEY' // a Nostr key that is neither nsec/npub nor 64 hex characters
  | 'NOTIFY_STORE_INVALID' // the approvals file exists but cannot be read as approvals
  | 'NOTIFY_STORE_IO' // the approvals file could not be written
  | 'NOTIFY_NOT_STARTED' // the broker or channel was used before start() or after close()
  | 'NOTIFY_SEND_FAILED' // a channel could not deliver a message (retryable when transient)
  | 'NOTIFY_TIMEOUT' // a channel did not answer within its deadline
  | 'NOTIFY_RATE_LIMITED' // the remote service asked us to slow down
  | 'NOTIFY_UNAUTHORIZED' // the remote service refused our credentials
  | 'NOTIFY_REMOTE' // the remote service answered with an unexpected payload
  | 'NOTIFY_CLOSED'; // the dispatcher/broker was closed while work was pending

/** The error thrown by @pit/notify. Rejected approval attempts are values, not errors. */
export class NotifyError extends PitError<NotifyErrorCode> {
  /** For NOTIFY_RATE_LIMITED: how long the service asked us to wait (ms), when it said. */
  readonly retryAfterMs: number | undefined;
  constructor(
    code: NotifyErrorCode,
    message: string,
    options: PitErrorOptions & { retryAfterMs?: number } = {},
  ) {
    super(code, message, options);
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Whether a failure is worth another attempt (network trouble, 5xx, 429, timeouts). */
export function isRetryable(error: unknown): boolean {
  return PitError.is(error) ? error.retryable : false;
}
