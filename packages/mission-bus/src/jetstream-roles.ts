/**
 * Roles shared by the bus instances of one mission on several hosts (`@pit/mission-bus/jetstream`):
 * a {@link ParticipantStore} whose roles live in a replicated NATS JetStream KV bucket and whose
 * token hashes stay in a local store beside it.
 *
 * A token is per host (an agent connects to the bus of the host that started it, with the token
 * that host gave it), but a role belongs to the mission: a role a lead grants through one host's
 * bus, or the role the daemon carries over to a substitute, must hold on every host, including the
 * one that takes the agent over after its host died. Every instance writes a change it makes to the
 * bucket (one key per participant, compare-and-set on the key's revision) and watches the bucket
 * for the changes others make ({@link ParticipantStore.watch}). The mission's log still records
 * every change, but a `participant` line grants nothing: the bucket, which no agent can reach, is
 * the authority.
 *
 * Keys are `<scope>.<participant>` with every character but letters, digits and `-` written as
 * `_XX` (its code in hex); values are `{"role": <role>|null, "granted_by": <name>}`.
 */
import { Kvm, KvWatchInclude, type KV, type KvEntry } from '@nats-io/kv';
import { jetstream } from '@nats-io/jetstream';
import { formatIssues } from '@pit/cell-spec';
import { z } from 'zod';
import { describeError, silentLogger, type BusLogger } from './logger.js';
import type { NatsConnection } from './jetstream-log.js';
import type { ParticipantRoster, ParticipantStore, SharedRoleChange } from './participant-store.js';
import { RoleSchema } from './roles.js';
import { fromNatsToken, natsToken, repeatRequest } from './jetstream-requests.js';

/** Options of {@link createJetStreamRoleStores}. */
export interface JetStreamRoleStoresOptions {
  /** An open NATS connection to the cluster; the stores never close it. */
  connection: NatsConnection;
  /** Replicas of the bucket (1, 3 or 5; at most the number of nodes). @default 3 */
  replicas?: number;
  /** The KV bucket's name. @default 'pit_bus_roles' */
  bucket?: string;
  /** How long one JetStream request may take, ms. @default 2000 */
  requestTimeoutMs?: number;
  /**
   * How long a read or write of the bucket keeps repeating a request that failed (a timeout while
   * a node dies and a new leader is elected, 2–4 s), ms. @default 30000
   */
  deadlineMs?: number;
  logger?: BusLogger;
}

/** A role as the bucket holds it. */
const SharedRoleSchema = z.strictObject({
  role: RoleSchema.nullable(),
  granted_by: z.string().min(1).max(128),
});

/** Compare-and-set attempts of one write before it gives up (other writers keep winning). */
const WRITE_ATTEMPTS = 5;
/** How long a watch that ended on an error waits before it is made again, ms. */
const REWATCH_MS = 1_000;
/** How often a watch checks that it missed nothing (see {@link SharedRoleStore.watch}), ms. */
const CHECK_MS = 5_000;

/**
 * Makes the shared participant stores of any number of missions over one KV bucket (created on
 * first use). Call the result with a scope that names the mission the same way on every host (the
 * daemon uses the cell's uuid) and the local store that keeps this host's token hashes.
 * @example
 * const roles = createJetStreamRoleStores({ connection: nc });
 * const bus = await MissionBus.open({
 *   cellDir,
 *   authority: roles(cellUuid, createDirectoryParticipantStore(`/var/lib/pit/bus/${cellUuid}`)),
 *   eventLog: createJetStreamEventLog({ connection: nc }),
 * });
 */
export function createJetStreamRoleStores(
  options: JetStreamRoleStoresOptions,
): (scope: string, local: ParticipantStore) => ParticipantStore {
  const name = options.bucket ?? 'pit_bus_roles';
  const logger = options.logger ?? silentLogger;
  let opened: Promise<KV> | undefined;
  const context: StoreContext = {
    connection: options.connection,
    logger,
    repeat: (what, request) =>
      repeatRequest(
        {
          label: `KV bucket ${name}`,
          deadlineMs: options.deadlineMs ?? 30_000,
          logger,
          fields: { bucket: name },
        },
        what,
        request,
      ),
    bucket: () => {
      opened ??= context
        .repeat('open the bucket', () =>
          new Kvm(
            jetstream(options.connection, { timeout: options.requestTimeoutMs ?? 2_000 }),
          ).create(name, { history: 1, replicas: options.replicas ?? 3, allow_direct: false }),
        )
        .catch((error: unknown) => {
          opened = undefined;
          throw error;
        });
      return opened;
    },
  };
  return (scope, local) => new SharedRoleStore(context, name, natsToken(scope), local);
}

/** What the stores of one bucket share. */
interface StoreContext {
  connection: NatsConnection;
  logger: BusLogger;
  bucket: () => Promise<KV>;
  /** {@link repeatRequest} on the bucket: BUS_TIMEOUT naming `what` once the deadline has passed. */
  repeat: <T>(what: string, request: () => Promise<T>) => Promise<T>;
}

/** See the module header. */
class SharedRoleStore implements ParticipantStore {
  readonly location: string;
  /** The last value and revision this store saw of each participant's key. */
  private readonly known = new Map<string, { shared: SharedRole | undefined; revision: number }>();

  private readonly logger: BusLogger;

  constructor(
    private readonly context: StoreContext,
    bucketName: string,
    private readonly scope: string,
    private readonly local: ParticipantStore,
  ) {
    this.logger = context.logger;
    this.location = `${local.location} (roles: KV ${bucketName}, keys ${scope}.*)`;
  }

  private keyOf(participant: string): string {
    return `${this.scope}.${natsToken(participant)}`;
  }

  /** The participant a key of this scope names, or `undefined` for another scope's key. */
  private participantOf(key: string): string | undefined {
    const prefix = `${this.scope}.`;
    return key.startsWith(prefix) ? fromNatsToken(key.slice(prefix.length)) : undefined;
  }

  /** An entry's role, or `undefined` (logged) for a value that is not one. */
  private parse(entry: KvEntry): SharedRole | undefined {
    if (entry.operation !== 'PUT') return undefined;
    let value: unknown;
    try {
      value = entry.json();
    } catch {
      value = undefined;
    }
    const parsed = SharedRoleSchema.safeParse(value);
    if (parsed.success) return parsed.data;
    this.logger.warn('bus: a shared role in the KV bucket is not one; it is ignored', {
      key: entry.key,
      revision: entry.revision,
      expected: '{"role": "lead"|"write"|"read"|"audit"|null, "granted_by": <name>}',
      problem: parsed.error ? formatIssues(parsed.error) : 'not JSON',
    });
    return undefined;
  }

  /** Records an entry of this scope seen in the bucket; the change, if it is newer than what was known. */
  private see(entry: KvEntry): SharedRoleChange | undefined {
    const participant = this.participantOf(entry.key);
    if (participant === undefined) return undefined;
    const seen = this.known.get(participant);
    if (seen && seen.revision >= entry.revision) return undefined;
    const shared = this.parse(entry);
    // A bad value is never applied, but its revision is what the next write must follow.
    this.known.set(participant, { shared, revision: entry.revision });
    return shared ? { name: participant, ...shared } : undefined;
  }

  async load(): Promise<ParticipantRoster | undefined> {
    const kv = await this.context.bucket();
    const stored = await this.local.load();
    await this.context.repeat(`read the roles of ${this.scope}`, () => this.readScope(kv));
    const participants: ParticipantRoster['participants'] = {};
    for (const [name, entry] of Object.entries(stored?.participants ?? {})) {
      // A role only this host knows (kept before the mission was shared): the bucket gets it.
      if (!this.known.has(name))
        await this.write(name, { role: entry.role, granted_by: entry.granted_by });
      participants[name] = {
        ...entry,
        ...(this.known.get(name)?.shared ?? {}),
      };
    }
    for (const [name, { shared }] of this.known)
      if (shared) participants[name] ??= { role: shared.role, granted_by: shared.granted_by };
    return stored || this.known.size > 0 ? { version: 1, participants } : undefined;
  }

  /** Reads every key of this scope; the changes newer than what was known. */
  private async readScope(kv: KV): Promise<SharedRoleChange[]> {
    const keys: string[] = [];
    for await (const key of await kv.keys(`${this.scope}.>`)) keys.push(key);
    const changes: SharedRoleChange[] = [];
    for (const key of keys) {
      const entry = await kv.get(key);
      const change = entry ? this.see(entry) : undefined;
      if (change) changes.push(change);
    }
    return changes;
  }

  async save(roster: ParticipantRoster): Promise<void> {
    await this.local.save(roster);
    for (const [name, entry] of Object.entries(roster.participants)) {
      const seen = this.known.get(name)?.shared;
      if (seen && seen.role === entry.role && seen.granted_by === entry.granted_by) continue;
      await this.write(name, { role: entry.role, granted_by: entry.granted_by });
    }
  }

  /**
   * Writes a participant's role at the revision this store last saw of its key; when another host
   * wrote it meanwhile, reads it again and writes over it (the later change wins, as in the log).
   */
  private async write(name: string, shared: SharedRole): Promise<void> {
    const kv = await this.context.bucket();
    await this.context.repeat(`write the role of ${name}`, () => this.writeOnce(kv, name, shared));
  }

  /** One round of {@link write}: compare-and-set, read again and write again while others win. */
  private async writeOnce(kv: KV, name: string, shared: SharedRole): Promise<void> {
    const key = this.keyOf(name);
    for (let attempt = 1; ; attempt += 1) {
      const seen = this.known.get(name);
      try {
        const value = JSON.stringify(shared);
        const revision = seen
          ? await kv.update(key, value, seen.revision)
          : await kv.create(key, value);
        this.known.set(name, { shared, revision });
        return;
      } catch (error) {
        // A compare-and-set that lost shows as a newer revision of the key; anything else fails.
        const current = await kv.get(key).catch(() => null);
        const lost = current !== null && current.revision !== (seen?.revision ?? 0);
        if (!lost || attempt >= WRITE_ATTEMPTS)
          throw new Error(
            `KV key ${key}: could not write the role of ${name}: ${describeError(error)}`,
            { cause: error },
          );
        this.see(current);
        const now = this.known.get(name)?.shared;
        if (now?.role === shared.role && now.granted_by === shared.granted_by) return;
      }
    }
  }

  async watch(onChange: (change: SharedRoleChange) => void): Promise<() => Promise<void>> {
    const kv = await this.context.bucket();
    const { connection } = this.context;
    let stopped = false;
    let current: Awaited<ReturnType<KV['watch']>> | undefined;
    const open = async () => {
      current = await kv.watch({ key: `${this.scope}.>`, include: KvWatchInclude.LastValue });
      return current;
    };
    const run = async (iterator: Awaited<ReturnType<KV['watch']>>) => {
      for (;;) {
        try {
          for await (const entry of iterator) {
            const change = this.see(entry);
            if (change) onChange(change);
          }
        } catch (error) {
          this.logger.warn('bus: the watch of shared roles failed; making it again', {
            scope: this.scope,
            error: describeError(error),
          });
        }
        if (stopped || connection.isClosed()) return;
        await new Promise((resolve) => setTimeout(resolve, REWATCH_MS));
        if (stopped || connection.isClosed()) return;
        iterator = await open().catch((error: unknown) => {
          this.logger.warn('bus: could not watch shared roles; trying again', {
            scope: this.scope,
            error: describeError(error),
          });
          return iterator;
        });
      }
    };
    const running = run(await this.context.repeat(`watch the roles of ${this.scope}`, open));
    // The watch is an ordered consumer, which can stall for a while when its node dies: every
    // CHECK_MS the bucket's last sequence is read (one request), and when it moved, this scope's
    // keys are read again, so that a change the watch missed arrives within CHECK_MS of NATS
    // answering again.
    let checkedSeq = 0;
    let checking: Promise<void> | undefined;
    const check = async () => {
      const last = (await kv.status()).streamInfo.state.last_seq;
      if (last <= checkedSeq || stopped) return;
      for (const change of await this.readScope(kv)) onChange(change);
      checkedSeq = last;
    };
    const timer = setInterval(() => {
      checking ??= check()
        .catch((error: unknown) =>
          this.logger.debug('bus: could not check the shared roles; checking again later', {
            scope: this.scope,
            error: describeError(error),
          }),
        )
        .finally(() => (checking = undefined));
    }, CHECK_MS);
    timer.unref();
    return async () => {
      stopped = true;
      clearInterval(timer);
      current?.stop();
      await Promise.all([running, checking]);
    };
  }
}

type SharedRole = z.infer<typeof SharedRoleSchema>;
