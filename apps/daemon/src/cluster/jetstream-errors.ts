/** Telling JetStream's answers apart (the KV buckets of coordination.ts and agent-records.ts). */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';

/**
 * True for the server's "wrong last sequence" (a compare-and-set that lost: `update` at a stale
 * revision, `create` of a key that exists), also when wrapped as another error's cause.
 */
export function isStaleRevision(error: unknown): boolean {
  const codes: number[] = [
    JetStreamApiCodes.StreamWrongLastSequence,
    JetStreamApiCodes.StreamWrongLastSequenceUnknown,
  ];
  if (error instanceof JetStreamApiError) return codes.includes(error.code);
  if (/wrong last sequence|key exists/i.test(String(error))) return true;
  const cause = (error as { cause?: unknown })?.cause;
  return cause !== undefined && cause !== error && isStaleRevision(cause);
}
