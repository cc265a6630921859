/**
 * Several hosts' daemons coordinated through NATS JetStream key-value buckets (issue #16): host
 * liveness and fenced ownership of agents. It owns the connection, the two buckets and the lease
 * loop; it decides nothing about agents (the daemon asks it before acting).
 *
 * - **Host liveness**: bucket `pit_hosts` with a bucket TTL of `T` (the lease): each daemon puts
 *   its key every `T/3` (every {@link LEASE_RETRY_MS} after a put that failed, until one lands); a
 *   key the server expired means the host is gone. Peers read the keys
 *   (NATS 2.9 sends watchers nothing on expiry, so nothing here watches).
 * - **Ownership and fencing**: bucket `pit_owners`, one key per agent (`<cell uuid>/<name>`),
 *   its value the owning host. Every start of an agent first claims the key: `create` when it has
 *   no owner, else `update` at the revision just read (compare-and-set; a stale revision is
 *   refused by the server, JetStream error 10071), and only when the owner is this host or a host
 *   whose lease has expired. The revision that wins is the agent's **epoch**: it only grows, so
 *   an older incarnation's epoch is refused by {@link Coordination.isCurrent}.
 * - **Shared agent records**: bucket `pit_records` (agent-records.ts; no TTL, swept by
 *   records-retention.ts), opened here with the others.
 * - **Cells' checkpoints**: object store `pit_cells` (cell-store.ts writes and reads it), opened
 *   here with the buckets so that every host has it.
 * - **Roles** (host-role.ts): a job one host of the cluster does at a time (polling the shared
 *   Telegram bot) is claimed like an agent, under the key `_role/<name>`.
 * - **Broadcasts**: core NATS messages on `pit.cluster.<topic>` to every host (at most once).
 * - **Self-fencing**: a daemon whose lease has not been renewed for `2T/3` is fenced: it claims
 *   nothing and its `onFence` listeners are told (the daemon stops its agents or stops reviving,
 *   per `[cluster] on_partition`); when a renewal lands again its `onRejoin` listeners are told.
 */
import { createHash } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { isClusterForming, isStaleRevision } from './jetstream-errors.js';
import { agentRecordsOver, RECORDS_BUCKET, type AgentRecords } from './agent-records.js';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { silentLogger, type Logger } from '../logger.js';

/** Where and how to coordinate. */
export interface CoordinationOptions {
  /** NATS client URLs (any node of the cluster). */
  servers: string[];
  /** This host's id: unique in the cluster, `[A-Za-z0-9_-]`. */
  hostId: string;
  /** The host lease `T`, ms: a host that has not renewed for this long is gone. */
  leaseTtlMs: number;
  /** Replicas of each bucket (1, 3 or 5; at most the number of nodes). @default 3 */
  replicas?: number;
  /** A NATS auth token, when the servers require one. */
  token?: string;
  /** How long one request may take before it counts as failed, ms. @default 2000 */
  requestTimeoutMs?: number;
  /**
   * How long opening waits for a JetStream cluster that is still forming (its nodes started with
   * the daemons, a leader being elected: see {@link isClusterForming}) before it fails, ms.
   * @default 30000 ({@link CLUSTER_FORMING_WAIT_MS})
   */
  formingWaitMs?: number;
  logger?: Logger;
  /** The clock, ms. @default a monotonic clock in epoch ms (`performance.timeOrigin + performance.now()`) */
  now?: () => number;
}

/** A live host, as its lease key says. */
export interface HostLease {
  host: string;
  pid: number;
  /** When it last renewed, by its own clock (ms). */
  renewedAt: number;
}

/** Who owns an agent, and since which epoch. */
export interface OwnerRecord {
  agent: string;
  host: string;
  /** The key's revision: this incarnation's epoch. */
  epoch: number;
  claimedAt: number;
}

/** The outcome of a claim: the epoch to run under, or why not. */
export type ClaimResult =
  | { ok: true; epoch: number; takeover: boolean }
  | {
      ok: false;
      /** `owned`: a live host owns it; `lost`: another claim won the race; `fenced`: this host's lease lapsed; `unavailable`: NATS did not answer. */
      reason: 'owned' | 'lost' | 'fenced' | 'unavailable';
      owner?: OwnerRecord;
      message: string;
    };

/** A host's handle on the cluster. */
export interface Coordination {
  readonly hostId: string;
  /** The hosts whose lease has not expired (this one included while it renews). */
  liveHosts(): Promise<HostLease[]>;
  /** The agent's owner record, or undefined when nobody owns it. */
  owner(agent: string): Promise<OwnerRecord | undefined>;
  /**
   * Claims the agent for this host before starting it (see the module header). `live`: the live
   * hosts just read by the caller (a placement pass over many agents reads them once), else read here.
   * `unowned`: only when nobody owns it, this host included (`owned` otherwise; the records sweep).
   */
  claim(
    agent: string,
    options?: { live?: ReadonlySet<string>; unowned?: boolean },
  ): Promise<ClaimResult>;
  /** Gives the agent up (a stop, or the agent removed), only while `epoch` is still current. */
  release(agent: string, epoch: number): Promise<boolean>;
  /**
   * Purges the delete markers that releases left in `pit_owners` (one per key ever released:
   * nats-server 2.9 ignores markers' TTLs) once older than `olderThanMs`. Each purge stops at
   * the marker's own sequence, so a claim that lands meanwhile (a later sequence) stays.
   * Resolves with the number of markers purged; stops early when `stopped()` turns true.
   */
  purgeReleased(olderThanMs: number, stopped?: () => boolean): Promise<number>;
  /** True while `epoch` is the agent's current epoch and this host owns it. */
  isCurrent(agent: string, epoch: number): Promise<boolean>;
  /** Agents' records shared across hosts, written under the writer's epoch (agent-records.ts). */
  readonly records: AgentRecords;
  /** True while this host's lease has not been renewed for `2T/3`. */
  fenced(): boolean;
  /** Called when this host becomes fenced, and when it rejoins. */
  onFence(listener: () => void): void;
  onRejoin(listener: () => void): void;
  /** How long from now the lease stays safe (ms; 0 or less when fenced). */
  safeForMs(): number;
  /** Called after every renewal that landed, with how long from now the lease stays safe (ms): `2T/3` less the renewal's own time. */
  onRenew(listener: (validMs: number) => void): void;
  /**
   * The object store of cells' checkpoints (`pit_cells`, one object per cell: cell-store.ts), so
   * that a live host can rebuild the cell of a host that is gone.
   */
  readonly cellStore: ObjectStore;
  /**
   * Sends `data` (JSON) to every host listening on `topic`, this one included: core NATS
   * (subject `pit.cluster.<topic>`), at most once, so a host disconnected at that moment misses it.
   */
  broadcast(topic: string, data: unknown): void;
  /** Listens to {@link Coordination.broadcast} on `topic`; returns the unsubscribe. */
  onBroadcast(topic: string, listener: (data: unknown) => void): () => void;
  /** Stops renewing, deletes this host's lease (a clean leave) and closes the connection. */
  close(options?: { leave?: boolean }): Promise<void>;
}

const HOSTS_BUCKET = 'pit_hosts';
/** The KV bucket of owner records (exported for tests that write one as another host would). */
export const OWNERS_BUCKET = 'pit_owners';
/** The object store of cells' checkpoints (cell-store.ts). */
export const CELLS_STORE = 'pit_cells';
const KEY_PATTERN = /^[-/=\w]+$/;

/** The agent key as a KV key: `.` (a subject separator to NATS) as `=2E`; anything else outside `[-/=\w]` is refused. */
export function ownerKey(agent: string): string {
  const key = agent.replaceAll('.', '=2E');
  if (!KEY_PATTERN.test(key))
    throw new Error(`agent key ${JSON.stringify(agent)} cannot be a cluster key`);
  return key;
}

function parseOwner(entry: KvEntry | null): OwnerRecord | undefined {
  if (!entry || entry.operation !== 'PUT' || entry.length === 0) return undefined;
  const value = entry.json<{ agent?: unknown; host?: unknown; claimed_at?: unknown }>();
  if (typeof value.host !== 'string') return undefined;
  return {
    agent: typeof value.agent === 'string' ? value.agent : entry.key,
    host: value.host,
    epoch: entry.revision,
    claimedAt: typeof value.claimed_at === 'number' ? value.claimed_at : 0,
  };
}

/**
 * Ranks the live hosts for taking over `agent`: rendezvous hashing (highest sha256 of agent and
 * host first), so every host computes the same order without talking. Pure.
 */
export function rankHosts(agent: string, hosts: readonly string[]): string[] {
  const score = (host: string) => createHash('sha256').update(`${agent}\0${host}`).digest('hex');
  return [...hosts].sort((a, b) => (score(a) < score(b) ? 1 : score(a) > score(b) ? -1 : 0));
}

/** How long opening waits for a JetStream cluster that is still forming, ms. */
export const CLUSTER_FORMING_WAIT_MS = 30_000;

/**
 * Connects, opens (or creates) the buckets, puts this host's lease and starts renewing it. A
 * cluster still forming is waited for, up to `formingWaitMs` (said once in the log).
 * @throws Error when NATS cannot be reached, the buckets cannot be made, or the cluster has not
 *   formed within `formingWaitMs`.
 */
export async function openCoordination(options: CoordinationOptions): Promise<Coordination> {
  if (!/^[\w-]+$/.test(options.hostId))
    throw new Error(`host id ${JSON.stringify(options.hostId)}: expected letters, digits, _ or -`);
  const logger = options.logger ?? silentLogger;
  // Monotonic by default: fencing measures time since the last renewal, and a wall clock that
  // steps back (NTP) must not keep a host that stopped renewing unfenced.
  const now = options.now ?? (() => performance.timeOrigin + performance.now());
  const timeout = options.requestTimeoutMs ?? 2_000;
  const nc: NatsConnection = await connect({
    servers: options.servers,
    name: `pit-${options.hostId}`,
    timeout,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    ...(options.token ? { token: options.token } : {}),
  });
  try {
    const forming = whileClusterForms({
      logger,
      waitMs: options.formingWaitMs ?? CLUSTER_FORMING_WAIT_MS,
    });
    const kvm = new Kvm(jetstream(nc, { timeout }));
    const jsm = await forming('reach JetStream', () => jetstreamManager(nc, { timeout }));
    const replicas = options.replicas ?? 3;
    // Reads from the stream leader only: a direct get may be answered by a replica that is behind,
    // and an owner read that is stale could let an old incarnation think it is still current.
    const bucket = (name: string, ttl?: number) =>
      forming(`create the bucket ${name}`, () =>
        kvm.create(name, {
          ...(ttl ? { ttl } : {}),
          history: 1,
          replicas,
          allow_direct: false,
        }),
      );
    const hosts = await bucket(HOSTS_BUCKET, options.leaseTtlMs);
    const owners = await bucket(OWNERS_BUCKET);
    const records = await bucket(RECORDS_BUCKET);
    const cellStore = await forming(`create the object store ${CELLS_STORE}`, () =>
      new Objm(jetstream(nc, { timeout })).create(CELLS_STORE, { replicas }),
    );
    forming.done();
    return await startCoordination({
      ...options,
      nc,
      jsm,
      hosts,
      owners,
      records,
      cellStore,
      logger,
      now,
    });
  } catch (error) {
    await nc.close().catch(() => {});
    throw error;
  }
}

/** Runs one request of opening while the cluster forms; `done()` says it has formed. */
interface WhileForming {
  <T>(what: string, request: () => Promise<T>): Promise<T>;
  done(): void;
}

/**
 * Runs each request of opening again while the JetStream cluster is still forming
 * ({@link isClusterForming}: nodes started with the daemon, a meta leader that does not know the
 * peers an R3 bucket needs yet, a stream leader being elected), until `waitMs` after the first
 * request; says once that it waits, and once when it has formed. Any other error is thrown at once.
 * Creating a bucket that exists is a no-op, so asking again is safe.
 */
function whileClusterForms(options: { logger: Logger; waitMs: number }): WhileForming {
  const { logger, waitMs } = options;
  const since = Date.now();
  let waiting = false;
  const run = async <T>(what: string, request: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await request();
      } catch (error) {
        if (!isClusterForming(error)) throw error;
        const message = error instanceof Error ? error.message : String(error);
        if (Date.now() - since >= waitMs)
          throw new Error(
            `the NATS JetStream cluster did not form within ${waitMs} ms (could not ${what}: ${message})`,
            { cause: error },
          );
        if (!waiting)
          logger.warn('cluster: waiting for the NATS JetStream cluster to form', {
            what,
            error: message,
            wait_ms: waitMs,
          });
        waiting = true;
        await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 100 * attempt)));
      }
    }
  };
  return Object.assign(run, {
    done() {
      if (waiting)
        logger.info('cluster: the NATS JetStream cluster has formed', {
          waited_ms: Date.now() - since,
        });
    },
  });
}

interface Opened extends CoordinationOptions {
  nc: NatsConnection;
  jsm: JetStreamManager;
  hosts: KV;
  owners: KV;
  records: KV;
  cellStore: ObjectStore;
  logger: Logger;
  now: () => number;
}

/**
 * How soon a renewal that failed is tried again, ms (at most `T/3`): a NATS node that dies takes
 * its streams' leaderships with it for the 2–4 s of an election, and a host that waited for its
 * next `T/3` tick after one failed put would have no time left before its fence at `2T/3`.
 */
export const LEASE_RETRY_MS = 250;

/** The host lease: renewed every T/3 (and again soon after a failure), fenced 2T/3 after the last renewal that landed. */
interface Lease {
  fenced(): boolean;
  onFence(listener: () => void): void;
  onRejoin(listener: () => void): void;
  onRenew(listener: (validMs: number) => void): void;
  safeForMs(): number;
  stop(): Promise<void>;
}

/**
 * One put of this host's lease key, true when it landed. Says the first failure of an outage (it
 * is tried again every `retryMs` until one lands) and, once one lands, how many failed.
 */
function leasePutter(
  opened: Opened,
  retryMs: number,
  safeForMs: () => number,
): (started: number) => Promise<boolean> {
  const { hosts, logger, hostId } = opened;
  let failures = 0;
  return async (started) => {
    try {
      const lease = { host: hostId, pid: process.pid, renewed_at: started };
      await hosts.put(hostId, JSON.stringify(lease));
    } catch (error) {
      failures += 1;
      if (failures === 1)
        logger.warn('cluster lease not renewed: trying again', {
          host: hostId,
          error: String(error),
          retry_ms: retryMs,
          safe_for_ms: Math.max(0, safeForMs()),
        });
      return false;
    }
    if (failures > 0)
      logger.info('cluster lease renewed again', { host: hostId, failed_attempts: failures });
    failures = 0;
    return true;
  };
}

async function keepLease(opened: Opened): Promise<Lease> {
  const { logger, now, hostId, leaseTtlMs } = opened;
  const fenceAfter = (leaseTtlMs * 2) / 3;
  const retryMs = Math.min(LEASE_RETRY_MS, leaseTtlMs / 3);
  let renewedAt = 0;
  let wasFenced = true;
  let stopped = false;
  let fenceTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let renewing: Promise<void> | undefined;
  const fenceListeners: Array<() => void> = [];
  const rejoinListeners: Array<() => void> = [];
  const renewListeners: Array<(validMs: number) => void> = [];
  const fenced = () => now() - renewedAt > fenceAfter;
  const check = () => {
    if (wasFenced || !fenced()) return;
    wasFenced = true;
    logger.error('cluster lease lapsed: this host is fenced', {
      host: hostId,
      since_renewal_ms: now() - renewedAt,
    });
    for (const listener of fenceListeners) listener();
  };
  const safeForMs = () => fenceAfter - (now() - renewedAt);
  const put = leasePutter(opened, retryMs, safeForMs);
  const renew = async (): Promise<boolean> => {
    const started = now();
    if (!(await put(started))) return false;
    renewedAt = started;
    for (const listener of renewListeners) listener(fenceAfter - (now() - started));
    // Fenced exactly 2T/3 after this renewal unless another lands first (not at the next tick:
    // the host must have stopped before its lease expires at its peers, T after it).
    clearTimeout(fenceTimer);
    fenceTimer = setTimeout(check, fenceAfter + 1);
    if (!wasFenced) return true;
    wasFenced = false;
    logger.info('cluster lease held', { host: hostId, lease_ms: leaseTtlMs });
    for (const listener of rejoinListeners) listener();
    return true;
  };
  const tick = () => {
    check();
    if (renewing || stopped) return;
    clearTimeout(retryTimer);
    renewing = renew()
      .then((landed) => {
        if (!landed && !stopped) retryTimer = setTimeout(tick, retryMs);
      })
      .finally(() => {
        renewing = undefined;
        check();
      });
  };
  const timer = setInterval(tick, Math.max(50, Math.floor(leaseTtlMs / 3)));
  // The lease is put once before the handle is returned: a host claims nothing before it holds one.
  tick();
  await renewing;
  return {
    fenced,
    onFence: (listener) => void fenceListeners.push(listener),
    onRejoin: (listener) => void rejoinListeners.push(listener),
    onRenew: (listener) => void renewListeners.push(listener),
    safeForMs,
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearTimeout(retryTimer);
      await renewing;
      clearTimeout(fenceTimer);
    },
  };
}

/** The keys of a KV bucket that hold a message (a value or a delete marker), from its stream's subjects. */
async function streamKeys(opened: Opened, bucket: string): Promise<string[]> {
  // The stream's subjects, in one request: `kv.keys()` runs a consumer that can wait forever
  // when a key expires while it lists.
  const prefix = `$KV.${bucket}.`;
  const info = await opened.jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` });
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
}

/** The hosts whose lease key has not expired. */
async function readLiveHosts(opened: Opened): Promise<HostLease[]> {
  const keys = await streamKeys(opened, HOSTS_BUCKET);
  const leases = await Promise.all(keys.map((key) => opened.hosts.get(key)));
  return leases.flatMap((entry) => {
    if (!entry || entry.operation !== 'PUT' || entry.length === 0) return [];
    const value = entry.json<{ host?: unknown; pid?: unknown; renewed_at?: unknown }>();
    if (typeof value.host !== 'string') return [];
    return [
      { host: value.host, pid: Number(value.pid) || 0, renewedAt: Number(value.renewed_at) || 0 },
    ];
  });
}

/** Whether the host's lease key is there now (it expires T after the last renewal). */
async function leaseHeld(opened: Opened, host: string): Promise<boolean> {
  const entry = await opened.hosts.get(host);
  return entry !== null && entry.operation === 'PUT' && entry.length > 0;
}

/** {@link Coordination.purgeReleased}. */
async function purgeReleasedOwners(
  opened: Opened,
  olderThanMs: number,
  stopped: () => boolean = () => false,
): Promise<number> {
  let purged = 0;
  for (const key of await streamKeys(opened, OWNERS_BUCKET)) {
    if (stopped()) break;
    const entry = await opened.owners.get(key);
    if (!entry || entry.operation === 'PUT') continue;
    if (Date.now() - entry.created.getTime() < olderThanMs) continue;
    // Below the marker's sequence + 1 only: a claim after it has a later sequence and is kept.
    await opened.jsm.streams.purge(`KV_${OWNERS_BUCKET}`, {
      filter: `$KV.${OWNERS_BUCKET}.${key}`,
      seq: entry.revision + 1,
    });
    purged += 1;
  }
  return purged;
}

async function readOwner(opened: Opened, agent: string): Promise<OwnerRecord | undefined> {
  return parseOwner(await opened.owners.get(ownerKey(agent)));
}

/** One claim (see the module header): create, or compare-and-set at the revision just read. */
async function claimAgent(
  opened: Opened,
  lease: Lease,
  agent: string,
  options: { live?: ReadonlySet<string>; unowned?: boolean } = {},
): Promise<ClaimResult> {
  const { live } = options;
  const { owners, hostId, now } = opened;
  if (lease.fenced())
    return {
      ok: false,
      reason: 'fenced',
      message: `host ${hostId} holds no lease: it claims nothing`,
    };
  const key = ownerKey(agent);
  const value = JSON.stringify({ agent, host: hostId, claimed_at: now() });
  let revision = 0;
  try {
    const entry = await owners.get(key);
    const current = parseOwner(entry);
    revision = entry?.revision ?? 0;
    const takeover = current !== undefined && current.host !== hostId;
    if (current && options.unowned)
      return {
        ok: false,
        reason: 'owned',
        owner: current,
        message: `${agent} is owned by host ${current.host} (epoch ${current.epoch})`,
      };
    // A live set read at the start of a placement pass is a hint, never a verdict: a host that
    // joined since (and claimed this agent) is missing from it, so an owner it lacks is looked
    // up afresh before being taken over (a stale set made two hosts hold one agent).
    const alive = async (host: string) => live?.has(host) || (await leaseHeld(opened, host));
    if (takeover && (await alive(current.host)))
      return {
        ok: false,
        reason: 'owned',
        owner: current,
        message: `${agent} is owned by live host ${current.host} (epoch ${current.epoch})`,
      };
    const epoch =
      revision === 0 ? await owners.create(key, value) : await owners.update(key, value, revision);
    return { ok: true, epoch, takeover };
  } catch (error) {
    if (isStaleRevision(error) || (revision === 0 && /exist|wrong last/i.test(String(error)))) {
      const winner = await readOwner(opened, agent).catch(() => undefined);
      return {
        ok: false,
        reason: 'lost',
        ...(winner ? { owner: winner } : {}),
        message: `${agent}: another claim won${winner ? ` (host ${winner.host}, epoch ${winner.epoch})` : ''}`,
      };
    }
    return {
      ok: false,
      reason: 'unavailable',
      message: `${agent}: cluster did not answer: ${String(error)}`,
    };
  }
}

function broadcastSubject(topic: string): string {
  if (!/^[\w-]+(\.[\w-]+)*$/.test(topic))
    throw new Error(`broadcast topic ${JSON.stringify(topic)}: expected dot-separated words`);
  return `pit.cluster.${topic}`;
}

async function startCoordination(opened: Opened): Promise<Coordination> {
  const { hostId } = opened;
  const lease = await keepLease(opened);
  const owner = (agent: string) => readOwner(opened, agent);
  return {
    hostId,
    liveHosts: () => readLiveHosts(opened),
    owner,
    claim: (agent, options) => claimAgent(opened, lease, agent, options),
    records: agentRecordsOver({
      bucket: opened.records,
      hostId,
      keyOf: ownerKey,
      ownerEpoch: owner,
      now: opened.now,
      keys: () => streamKeys(opened, RECORDS_BUCKET),
      async purgeBelow(key, beforeSeq) {
        await opened.jsm.streams.purge(`KV_${RECORDS_BUCKET}`, {
          filter: `$KV.${RECORDS_BUCKET}.${key}`,
          seq: beforeSeq,
        });
      },
    }),
    async release(agent, epoch) {
      const current = await owner(agent);
      if (!current || current.host !== hostId || current.epoch !== epoch) return false;
      try {
        await opened.owners.delete(ownerKey(agent), { previousSeq: epoch });
        return true;
      } catch (error) {
        if (isStaleRevision(error)) return false;
        throw error;
      }
    },
    purgeReleased: (olderThanMs, stopped) => purgeReleasedOwners(opened, olderThanMs, stopped),
    async isCurrent(agent, epoch) {
      const current = await owner(agent);
      return current !== undefined && current.host === hostId && current.epoch === epoch;
    },
    fenced: lease.fenced,
    onFence: lease.onFence,
    onRejoin: lease.onRejoin,
    onRenew: lease.onRenew,
    safeForMs: lease.safeForMs,
    cellStore: opened.cellStore,
    broadcast(topic, data) {
      opened.nc.publish(broadcastSubject(topic), JSON.stringify(data));
    },
    onBroadcast(topic, listener) {
      const subscription = opened.nc.subscribe(broadcastSubject(topic), {
        callback: (error, message) => {
          if (error) return;
          let data: unknown;
          try {
            data = message.json();
          } catch {
            opened.logger.warn('cluster: a broadcast that is not JSON was ignored', { topic });
            return;
          }
          listener(data);
        },
      });
      return () => subscription.unsubscribe();
    },
    async close(options) {
      await lease.stop();
      if (options?.leave !== false) await opened.hosts.delete(hostId).catch(() => {});
      await opened.nc.close();
    },
  };
}
