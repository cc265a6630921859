/**
 * Agents' records shared across hosts (issue #16): the part of an agent's state that outlives
 * the host that wrote it (an operator's `pit stop`, recent restarts, the substitute that replaced
 * it), one key per agent in a JetStream KV bucket, written by the agent's owner with the epoch it
 * holds. A write that carries an older epoch than the record's, or than the agent's owner record,
 * is refused: a host that lost the agent (it was cut off, or stopped renewing) cannot overwrite
 * what the new owner decided. The host that takes an agent over reads it before it acts.
 *
 * What an incarnation leaves on its host (its pid, start time, spawn nonce, a pending approval's
 * id in that host's approval store, its health now) is not carried: another host cannot adopt
 * that process, and the new incarnation's health is its own.
 *
 * Retention (records-retention.ts): the bucket has no TTL (an owner alive but silent, a stopped
 * agent's record written once, must not lose it). A record is removed only by the sweep, under a
 * claim of the agent's owner key ({@link AgentRecords.remove}, fenced like a write), once no host
 * holds the agent, the sweeping host does not configure it, its cell has no record in `pit_cells`,
 * and it was last written more than 7 days ago.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { carriedState } from './carried-state.js';
import { isStaleRevision } from './jetstream-errors.js';
import { AgentStateSchema, type AgentState } from '@pit/cell-spec';

/** The KV bucket of shared agent records. */
export const RECORDS_BUCKET = 'pit_records';

/** An agent's record as its owner last wrote it. */
export interface SharedRecord {
  host: string;
  epoch: number;
  writtenAt: number;
  /** The carried fields only, as a fresh record (health unknown, no process). */
  state: AgentState;
}

/** The outcome of {@link AgentRecords.write}. */
export type RecordWrite =
  | { ok: true }
  | {
      ok: false;
      reason: 'stale_epoch';
      /** Who holds the newer epoch (the record's writer or the agent's owner). */
      current: { host: string; epoch: number };
    };

/** The shared records (see the module header). */
export interface AgentRecords {
  /** The agent's shared record, or undefined when no owner wrote one. Rejects when NATS does not answer. */
  read(agent: string): Promise<SharedRecord | undefined>;
  /**
   * Writes the carried fields of `state` as the agent's record, under `epoch` (the writer's
   * incarnation). Refused when the record or the agent's owner record carries a newer epoch.
   * Rejects when NATS does not answer.
   */
  write(agent: string, epoch: number, state: AgentState): Promise<RecordWrite>;
  /**
   * Removes the agent's record under `epoch`, fenced like a write: refused when the record or the
   * agent's owner record carries a newer epoch, and a compare-and-set at the revision read (a
   * write that lands meanwhile is never removed). Its delete marker is then purged (nats-server
   * 2.9 keeps markers forever), up to the marker only. `ok: true, removed: false`: there was none.
   * Rejects when NATS does not answer. Only the retention sweep calls it (records-retention.ts).
   */
  remove(agent: string, epoch: number): Promise<RecordWrite & { removed?: boolean }>;
  /** The agent keys that have a record (one request: the bucket stream's subjects). */
  agents(): Promise<string[]>;
}

/** The agent key of a KV key made by `keyOf` (`=2E` back to `.`), or undefined when it is not one. */
function agentOfKey(key: string, keyOf: (agent: string) => string): string | undefined {
  const agent = key.replaceAll('=2E', '.');
  try {
    return keyOf(agent) === key ? agent : undefined;
  } catch {
    return undefined;
  }
}

/** A stored value, or undefined when it is not one this version wrote (it is then overwritten). */
function parseRecord(entry: KvEntry | null): SharedRecord | undefined {
  if (!entry || entry.operation !== 'PUT' || entry.length === 0) return undefined;
  try {
    const value = entry.json<{
      host?: unknown;
      epoch?: unknown;
      written_at?: unknown;
      state?: unknown;
    }>();
    const state = AgentStateSchema.safeParse(value.state);
    if (typeof value.host !== 'string' || typeof value.epoch !== 'number' || !state.success)
      return undefined;
    return {
      host: value.host,
      epoch: value.epoch,
      writtenAt: typeof value.written_at === 'number' ? value.written_at : 0,
      state: carriedState(state.data),
    };
  } catch {
    return undefined;
  }
}

/** Compare-and-set attempts of one write before it gives up (other writers keep winning). */
const WRITE_ATTEMPTS = 5;

/** What {@link agentRecordsOver} works with. */
interface RecordsOptions {
  bucket: KV;
  hostId: string;
  keyOf: (agent: string) => string;
  ownerEpoch: (agent: string) => Promise<{ host: string; epoch: number } | undefined>;
  now: () => number;
  /** The bucket's KV keys that hold a message (a record or a delete marker). */
  keys: () => Promise<string[]>;
  /** Purges the key's messages below stream sequence `beforeSeq` (a delete marker and what it covers). */
  purgeBelow: (key: string, beforeSeq: number) => Promise<void>;
}

/**
 * The shared records over `bucket`. `keyOf` maps an agent key to a KV key (the owner records'
 * mapping); `ownerEpoch` reads the epoch of the agent's owner record (undefined: no owner).
 */
export function agentRecordsOver(options: RecordsOptions): AgentRecords {
  const { bucket, hostId, keyOf } = options;
  return {
    async read(agent) {
      return parseRecord(await bucket.get(keyOf(agent)));
    },
    async write(agent, epoch, state) {
      const key = keyOf(agent);
      const owner = await options.ownerEpoch(agent);
      if (owner && owner.epoch > epoch) return { ok: false, reason: 'stale_epoch', current: owner };
      const value = JSON.stringify({
        agent,
        host: hostId,
        epoch,
        written_at: options.now(),
        state: carriedState(state),
      });
      for (let attempt = 1; ; attempt += 1) {
        const entry = await bucket.get(key);
        const refused = refusedBy(entry, epoch);
        if (refused) return refused;
        try {
          if (entry) await bucket.update(key, value, entry.revision);
          else await bucket.create(key, value);
          return { ok: true };
        } catch (error) {
          // Another write landed between the read and this one: read again and decide again.
          if (!isStaleRevision(error) || attempt >= WRITE_ATTEMPTS) throw error;
        }
      }
    },
    remove: (agent, epoch) => removeRecord(options, agent, epoch),
    async agents() {
      return (await options.keys()).flatMap((key) => {
        const agent = agentOfKey(key, keyOf);
        return agent === undefined ? [] : [agent];
      });
    },
  };
}

/** The refusal of a write or removal at `epoch` when the record holds a newer epoch. */
function refusedBy(entry: KvEntry | null, epoch: number): RecordWrite | undefined {
  const current = parseRecord(entry);
  return current && current.epoch > epoch
    ? { ok: false, reason: 'stale_epoch', current: { host: current.host, epoch: current.epoch } }
    : undefined;
}

/** {@link AgentRecords.remove} (see there). */
async function removeRecord(
  options: RecordsOptions,
  agent: string,
  epoch: number,
): Promise<RecordWrite & { removed?: boolean }> {
  const { bucket, keyOf } = options;
  const key = keyOf(agent);
  const owner = await options.ownerEpoch(agent);
  if (owner && owner.epoch > epoch) return { ok: false, reason: 'stale_epoch', current: owner };
  for (let attempt = 1; ; attempt += 1) {
    const entry = await bucket.get(key);
    if (!entry) return { ok: true, removed: false };
    if (entry.operation !== 'PUT') {
      await options.purgeBelow(key, entry.revision + 1);
      return { ok: true, removed: false };
    }
    const refused = refusedBy(entry, epoch);
    if (refused) return refused;
    try {
      await bucket.delete(key, { previousSeq: entry.revision });
    } catch (error) {
      if (!isStaleRevision(error) || attempt >= WRITE_ATTEMPTS) throw error;
      continue;
    }
    // The marker itself, and only it: a record written after it (a newer sequence) stays.
    const marker = await bucket.get(key);
    if (marker && marker.operation !== 'PUT') await options.purgeBelow(key, marker.revision + 1);
    return { ok: true, removed: true };
  }
}
