/**
 * Retention of the agents' shared records (`pit_records`, agent-records.ts; issue #16). The bucket
 * has no TTL: nats-server 2.9 ignores per-key TTLs and delete markers' TTLs, and a bucket TTL
 * would expire the record of an agent whose owner is alive but has not written it for a while
 * (a stopped agent's `stopped` is written once), or whose owner could not write it (a quorum loss
 * longer than the TTL): the next host to take it up would then start an agent the operator
 * stopped. Instead a record is removed by a sweep, only once nothing can need it:
 *
 * - **anchored, never removed**: a record whose agent has an owner record (`pit_owners`: some
 *   host holds it, live or gone and awaiting takeover); whose agent is in the sweeping host's
 *   config (its placed agents, the agents of its cells); whose cell (`<uuid>/<name>`) has a
 *   record in the object store `pit_cells` (it can still be taken over); or that was written
 *   less than the retention ago ({@link RECORDS_RETENTION_MS}, 7 days, by the writer's clock:
 *   the grace in which a host that had the agent can come back); and any record this version
 *   cannot read (another version's, kept);
 * - **removed**: any other, i.e. an agent that no host holds, no host (that this one knows of)
 *   configures, in no cell of the cluster, for longer than the retention. A host lets go of an
 *   agent that left its config once no process of it runs there (cluster-member.ts), so an agent
 *   removed from every host's config loses its record one retention after its last write.
 *
 * The removal is fenced like every write: the sweeper first claims the agent's owner key (only
 * while nobody owns it, this host included; the claim's revision is a new epoch), removes the
 * record under that epoch (refused when the record or the owner record carries a newer one,
 * and a compare-and-set at the revision read, so a write that landed meanwhile stays), then
 * releases the key (the hold lasts a few requests). A start that meets the hold is refused as a
 * start of an agent another live host owns (`start_refused`); a placement pass tries again at its
 * next tick, when the record is gone: the agent starts afresh, as a new one.
 * A fenced sweeper (its lease lapsed) claims nothing, so removes nothing.
 *
 * The same sweep purges the delete markers that releases leave in `pit_owners` (every release,
 * the sweep's own included: one marker per key ever released, kept forever by nats-server 2.9)
 * once older than the retention, each purge bounded by the marker's sequence so that a claim
 * landing meanwhile stays (coordination.ts `purgeReleased`).
 *
 * One host sweeps at a time (the live host ranked first for {@link SWEEP_KEY}; two that both
 * think so only repeat each other's fenced work), every `retention / 4` (at most hourly, at
 * least once a lease), the first sweep one such period after it joined.
 */
import type { Logger } from '../logger.js';
import type { Coordination } from './coordination.js';

/** How long an unanchored record is kept after its last write (ms): 7 days. */
export const RECORDS_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/** The key ranked to pick the one host that sweeps (never an agent key: agents are `<scope>/<name>`). */
export const SWEEP_KEY = '_sweep/records';

/** How often the sweeping host sweeps (ms): a quarter of the retention, within [lease, 1 h]. */
export function sweepEveryMs(retentionMs: number, leaseMs: number): number {
  return Math.max(leaseMs, Math.min(60 * 60 * 1000, Math.floor(retentionMs / 4)));
}

/** What {@link sweepRecords} needs. */
export interface SweepOptions {
  coordination: Coordination;
  /** Agent keys this host configures (its placed agents and its cells' agents): kept. */
  configured: ReadonlySet<string>;
  /** Whether the cell has a record in the object store `pit_cells`. Rejects when NATS does not answer. */
  cellKnown: (uuid: string) => Promise<boolean>;
  /** The hosts live now (the claim's hint). */
  live: ReadonlySet<string>;
  retentionMs: number;
  /** The wall clock, ms (records carry their writer's). */
  now: () => number;
  logger: Logger;
  /** Checked between agents: a sweep stops early when it turns true (closing, fenced). */
  stopped?: () => boolean;
}

/** What one sweep did. */
export interface SweepResult {
  removed: string[];
  /** Records looked at and kept. */
  kept: number;
  /** Delete markers purged from `pit_owners`. */
  markersPurged: number;
}

/** The agent's cell uuid, or undefined for an agent outside cells (`host/<name>`). */
function cellOf(agent: string): string | undefined {
  const slash = agent.indexOf('/');
  const scope = slash < 0 ? '' : agent.slice(0, slash);
  return scope === '' || scope === 'host' ? undefined : scope;
}

/**
 * One sweep of the records bucket (see the module header). An agent whose reads fail is kept
 * (the next sweep looks again). Rejects only when the bucket cannot be listed.
 */
export async function sweepRecords(options: SweepOptions): Promise<SweepResult> {
  const { coordination, logger } = options;
  const result: SweepResult = { removed: [], kept: 0, markersPurged: 0 };
  for (const agent of await coordination.records.agents()) {
    if (options.stopped?.() || coordination.fenced()) break;
    try {
      if (await removable(options, agent)) {
        const removed = await removeFenced(options, agent);
        if (removed) {
          result.removed.push(agent);
          continue;
        }
      }
    } catch (error) {
      logger.warn('cluster: cannot decide on an agent’s shared record; kept until the next sweep', {
        agent,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    result.kept += 1;
  }
  const stopped = () => (options.stopped?.() ?? false) || coordination.fenced();
  if (!stopped()) {
    result.markersPurged = await coordination
      .purgeReleased(options.retentionMs, stopped)
      .catch((error: unknown) => {
        logger.warn('cluster: cannot purge released owner keys; retrying at the next sweep', {
          error: error instanceof Error ? error.message : String(error),
        });
        return 0;
      });
  }
  return result;
}

/** Whether nothing anchors the agent's record (see the module header); cheapest checks first. */
async function removable(options: SweepOptions, agent: string): Promise<boolean> {
  if (options.configured.has(agent)) return false;
  const record = await options.coordination.records.read(agent);
  // Unreadable (another version's) or already a marker: kept (a marker is purged by the removal).
  if (!record || options.now() - record.writtenAt < options.retentionMs) return false;
  if (await options.coordination.owner(agent)) return false;
  const cell = cellOf(agent);
  return cell === undefined || !(await options.cellKnown(cell));
}

/** Claims the agent's owner key, removes the record under that epoch, releases the key. */
async function removeFenced(options: SweepOptions, agent: string): Promise<boolean> {
  const { coordination, logger } = options;
  // Only while nobody owns it, this host included (a start here claims the same key).
  const claim = await coordination.claim(agent, { live: options.live, unowned: true });
  if (!claim.ok) return false;
  try {
    const record = await coordination.records.read(agent);
    const removed = await coordination.records.remove(agent, claim.epoch);
    if (!removed.ok || !removed.removed) return false;
    logger.info('cluster: removed the shared record of an agent no host holds or configures', {
      agent,
      epoch: claim.epoch,
      ...(record
        ? { last_host: record.host, last_epoch: record.epoch, written_at: record.writtenAt }
        : {}),
    });
    return true;
  } finally {
    await coordination.release(agent, claim.epoch).catch(() => false);
  }
}
