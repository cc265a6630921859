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

/** "no suitable peers for placement": the meta leader does not know enough peers yet for the replicas asked. */
const NO_PEERS_FOR_PLACEMENT = 10005;
/** "JetStream system temporarily unavailable": no meta leader (being elected). */
const TEMPORARILY_UNAVAILABLE = 10008;

/**
 * True for what a JetStream cluster answers while it is still forming or electing a leader (NATS
 * nodes started together with the daemons, a node that joins late, a leader that died): a
 * request that timed out, "no suitable peers for placement" and "JetStream system temporarily
 * unavailable", also when wrapped as another error's cause. Asking again later can succeed.
 */
export function isClusterForming(error: unknown): boolean {
  if (error instanceof JetStreamApiError)
    return [NO_PEERS_FOR_PLACEMENT, TEMPORARILY_UNAVAILABLE].includes(error.code);
  if (error instanceof Error && /timeout/i.test(`${error.name} ${error.message}`)) return true;
  if (/no suitable peers|temporarily unavailable/i.test(String(error))) return true;
  const cause = (error as { cause?: unknown })?.cause;
  return cause !== undefined && cause !== error && isClusterForming(cause);
}
