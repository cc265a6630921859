import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import {
  AgentNameSchema,
  openDirectoryBeneath,
  type BeneathDirectory,
  cellPaths,
  formatIssues,
  readJsonFile,
  readManifest,
  withFileLock,
  writeJsonAtomic,
  type CellPaths,
  type IsolationProfile,
} from '@pit/cell-spec';
import { z } from 'zod';
import { AuditTrail, type AuditEntry } from './audit-trail.js';
import {
  BusEventSchema,
  CheckpointInputSchema,
  ConfigureIsolationInputSchema,
  HandoffInputSchema,
  PublishInputSchema,
  Sha256HexSchema,
  SYSTEM_SENDER,
  type BusEvent,
  type BusEventKind,
  type CheckpointEvent,
  type CheckpointInput,
  type ConfigureIsolationInput,
  type HandoffEvent,
  type HandoffInput,
  type IsolationEvent,
  type MessageEvent,
  type ParticipantEvent,
  type PublishInput,
} from './bus-event.js';
import {
  BusConfigSchema,
  MissionInfoSchema,
  type BusConfig,
  type BusConfigInput,
  type MissionInfo,
} from './config.js';
import { BusError, toBusError } from './errors.js';
import { EventCache } from './event-cache.js';
import {
  inboxEventExists,
  isDirectEvent,
  readWatermark,
  writeInboxEvent,
  writeWatermark,
  type DirectEvent,
} from './inbox.js';
import { describeError, silentLogger, type BusLogger } from './logger.js';
import type { ParticipantInfo, ResumePacket } from './resume-packet.js';
import { RoleSchema, resolveRoleCapabilities, type Capability, type Role } from './roles.js';
import type { LogRepair, StoredEvent } from './segment-log.js';
import {
  openSegmentLog,
  type BusEventLog,
  type BusEventLogFactory,
  type SharedBusEventLog,
} from './event-log.js';
import type { ParticipantRoster, ParticipantStore, SharedRoleChange } from './participant-store.js';
import { tokenMatches } from './tokens.js';

/** Options of {@link MissionBus.open}. */
export interface OpenMissionBusOptions {
  /** The cell directory (`<cells_root>/<uuid>`); the log and inboxes live in its `bus/`. */
  cellDir: string;
  /** The bus configuration (parsed with {@link BusConfigSchema}). @default {} */
  config?: BusConfigInput;
  logger?: BusLogger;
  /** Clock for event timestamps. @default () => new Date() */
  now?: () => Date;
  /** How long to wait for another bus that holds the cell's `bus/.lock`. @default 2000 (ms) */
  lockTimeoutMs?: number;
  /**
   * Where participants, roles and token hashes are kept. Given, they come from this store
   * (and the config's `participants`) only: a `participant` line in the cell's log, or a
   * `bus/tokens.json`, grants nothing (such claims are logged and audited as
   * `bus_claim_ignored`). Left out, the cell's `bus/` is the authority: the log's
   * `participant` events and `bus/tokens.json`, fit only for a cell no untrusted process can write.
   */
  authority?: ParticipantStore;
  /**
   * Where the events are kept (the storage seam, see event-log.ts): the cell's segment log by
   * default, or a shared log such as `@pit/mission-bus/jetstream`'s, which several bus instances
   * of one mission (one per host) append to and follow.
   * @default openSegmentLog
   */
  eventLog?: BusEventLogFactory;
  /**
   * The current incarnation epoch of a participant, as its owner knows it (a clustered daemon:
   * the revision of the agent's owner record): a publish, checkpoint or handoff that carries an
   * older `epoch` is refused with BUS_STALE_EPOCH (an old incarnation that outlived a takeover).
   * `null`: no incarnation of it is current here (taken over, let go), so any `epoch` is refused;
   * `undefined`: not checked. Left out, epochs are not checked.
   */
  currentEpoch?: (participant: string) => number | null | undefined;
}

/** A role the cell's log claims for a participant that the bus's authority store does not hold. */
export interface IgnoredRoleClaim {
  name: string;
  /** The role the log's last `participant` line for `name` claims (`null`: removed). */
  claimed: Role | null;
  /** The role the store holds (`null`: none). */
  held: Role | null;
}

/** Options of {@link MissionBus.read}. */
export interface ReadOptions {
  /** Read events with a sequence number greater than this. @default 0 */
  after?: number;
  /** At most this many events. @default 1000 */
  limit?: number;
}

/** Options of {@link MissionBus.subscribe}. */
export interface SubscribeOptions {
  /** Start after this sequence number (0: from the beginning). @default 0 */
  after?: number;
  /** Ends the iteration when aborted. */
  signal?: AbortSignal;
}

/** What a {@link MissionBus.grant} carries: whom, and which role (`null` removes the participant). */
export const GrantInputSchema = z.strictObject({
  participant: AgentNameSchema,
  role: RoleSchema.nullable(),
});
export type GrantInput = z.input<typeof GrantInputSchema>;

/** What a participant registration carries. */
export interface RegisterParticipantInput {
  name: string;
  role: Role;
  /** sha256 (hex) of its token, stored in the authority store (or, without one, `bus/tokens.json`, mode 0600). */
  token_sha256?: string;
}

/** The export format of a bus: everything needed to rebuild it elsewhere. */
export const BusExportSchema = z.strictObject({
  format: z.literal('pit-mission-bus'),
  version: z.literal(1),
  mission: MissionInfoSchema,
  config: BusConfigSchema,
  /** Token hashes set at run time (`bus/tokens.json`). */
  tokens: z.record(AgentNameSchema, Sha256HexSchema).default({}),
  events: z.array(BusEventSchema),
});
export type BusExport = z.infer<typeof BusExportSchema>;

/** @internal A write request whose input passed its schema. */
export type ValidRequest =
  | { op: 'publish'; input: z.output<typeof PublishInputSchema> }
  | { op: 'checkpoint'; input: z.output<typeof CheckpointInputSchema> }
  | { op: 'handoff'; input: z.output<typeof HandoffInputSchema> }
  | { op: 'configure_isolation'; input: z.output<typeof ConfigureIsolationInputSchema> };

interface Pending {
  stored: StoredEvent;
  ready: boolean;
  promise: Promise<BusEvent>;
  resolve: (event: BusEvent) => void;
  reject: (error: unknown) => void;
}

interface IdRecord {
  seq: number;
  kind: BusEventKind;
  sender: string;
}

const TokensFileSchema = z.record(AgentNameSchema, Sha256HexSchema);
const WATERMARK_EVERY = 256;

/**
 * One mission's ordered, durable event stream: messages, checkpoints and handoffs (and
 * participant and isolation changes), each with a gap-free sequence number, checked against
 * the sender's role. The log is append-only JSONL in the cell's `bus/`; the in-memory index
 * (participants, isolation profiles, checkpoints, handoffs, recent ids) is rebuilt from it on
 * open. One bus per cell at a time: it holds `bus/.lock` until closed.
 *
 * In-process calls name their sender; {@link SYSTEM_SENDER} (`@pit`, the owner) may do
 * everything. Over the wire the server fixes the sender to the authenticated participant.
 * @example
 * const bus = await MissionBus.open({ cellDir, config: { participants: [{ name: 'forge', role: 'lead' }, { name: 'smith', role: 'write' }] } });
 * const note = await bus.publish('forge', { topic: 'plan', payload: { step: 1 } });
 * const checkpoint = await bus.checkpoint('forge', { summary: 'parser half done', state: { file: 'src/parse.ts' } });
 * const handoff = await bus.handoff('forge', { to: 'smith', checkpoint: checkpoint.id, note: 'finish the parser' });
 * const packet = await bus.buildResumePacket(handoff.id);
 * await bus.close();
 */
export class MissionBus {
  /** The mission this bus belongs to. */
  readonly mission: MissionInfo;
  /** The parsed configuration. */
  readonly config: BusConfig;
  /** Torn last lines repaired when the log was opened (also logged and in the audit trail). */
  readonly repairs: readonly LogRepair[];
  /**
   * The cell's paths. Once open, `bus` names the bus directory through its open descriptor
   * (`/proc/self/fd/<fd>`), reached from the cell without following a link: a `bus/` an agent
   * swaps for a link afterwards is not written through.
   */
  paths: CellPaths;
  /** Roles the cell's log claimed that the authority store does not hold (ignored; empty without a store). */
  readonly ignoredClaims: readonly IgnoredRoleClaim[] = [];
  /** `bus/`, opened beneath the cell for the bus's lifetime. */
  private busDirectory: BeneathDirectory | undefined;

  private readonly logger: BusLogger;
  private readonly now: () => Date;
  private readonly store: ParticipantStore | undefined;
  private readonly grantedBy = new Map<string, string>();
  private readonly logClaims = new Map<string, Role | null>();
  private rosterWrites: Promise<void> = Promise.resolve();
  /** A shared authority store's watch (roles other instances change), stopped on close. */
  private stopWatching: (() => Promise<void>) | undefined;
  private readonly roleTable: Record<Role, ReadonlySet<Capability>>;
  private readonly members = new Map<string, Role>();
  private readonly everMembers = new Set<string>();
  private readonly isolation = new Map<string, IsolationProfile>();
  private readonly tokens = new Map<string, string>();
  private readonly runtimeTokens = new Map<string, string>();
  private readonly checkpoints = new Map<string, IdRecord>();
  private readonly lastCheckpointBy = new Map<string, number>();
  private readonly handoffs = new Map<string, IdRecord>();
  private readonly recent = new Map<string, IdRecord>();
  private readonly pending = new Map<number, Pending>();
  /** Shared log: the appends in progress, one at a time. */
  private sharedAppends: Promise<void> = Promise.resolve();
  /** Shared log: ids this bus is appending (their participant changes grant here). */
  private readonly localIds = new Map<string, number>();
  private readonly listeners = new Set<(stored: StoredEvent) => void>();
  private readonly headWaiters = new Set<() => void>();
  private readonly cache: EventCache;
  private log!: BusEventLog;
  private readonly openLog: BusEventLogFactory;
  private readonly currentEpoch: ((participant: string) => number | null | undefined) | undefined;
  private audit!: AuditTrail;
  private nextSeq = 0;
  private headSeq = 0;
  private failure: BusError | undefined;
  private closing: Promise<void> | undefined;
  private releaseLock: () => void = () => undefined;
  private lockHeld: Promise<unknown> = Promise.resolve();
  private tokenWrites: Promise<void> = Promise.resolve();
  private directSinceWatermark = 0;
  private watermarkWrite: Promise<void> = Promise.resolve();

  private constructor(options: {
    cellDir: string;
    config: BusConfig;
    mission: MissionInfo;
    logger: BusLogger;
    now: () => Date;
    store: ParticipantStore | undefined;
    openLog: BusEventLogFactory;
    currentEpoch: ((participant: string) => number | null | undefined) | undefined;
  }) {
    this.currentEpoch = options.currentEpoch;
    this.paths = cellPaths(options.cellDir);
    this.openLog = options.openLog;
    this.store = options.store;
    this.config = options.config;
    this.mission = options.mission;
    this.logger = options.logger;
    this.now = options.now;
    this.roleTable = resolveRoleCapabilities(options.config.roles);
    this.cache = new EventCache(
      options.config.log.cache_max_events,
      options.config.log.cache_max_bytes,
    );
    this.repairs = [];
    for (const participant of options.config.participants) {
      this.members.set(participant.name, participant.role);
      this.everMembers.add(participant.name);
      if (participant.token_sha256) this.tokens.set(participant.name, participant.token_sha256);
    }
    for (const [name, profile] of Object.entries(options.config.isolation))
      this.isolation.set(name, profile);
  }

  /**
   * Opens the bus of a cell: parses the config, takes `bus/.lock`, reads and checks the log
   * (repairing a torn last line, see {@link repairs}), rebuilds the index, and writes to the
   * inboxes any direct event a crash kept from its inbox.
   * @throws {BusError} BUS_INVALID (config, or no mission and no readable `cell.json`),
   *   BUS_LOCKED (another bus holds the cell), BUS_CORRUPT, BUS_IO.
   */
  static async open(options: OpenMissionBusOptions): Promise<MissionBus> {
    const parsed = BusConfigSchema.safeParse(options.config ?? {});
    if (!parsed.success)
      throw new BusError(
        'BUS_INVALID',
        `bus config for ${options.cellDir}: ${formatIssues(parsed.error)}`,
        { cause: parsed.error },
      );
    const config = parsed.data;
    let mission = config.mission;
    if (!mission) {
      try {
        const manifest = await readManifest(options.cellDir);
        mission = { id: manifest.uuid, title: manifest.name ?? manifest.mission };
      } catch (error) {
        throw new BusError(
          'BUS_INVALID',
          `bus config for ${options.cellDir}: mission: not given and the cell's cell.json is not readable (${describeError(error)})`,
          {
            cause: error,
          },
        );
      }
    }
    const bus = new MissionBus({
      cellDir: options.cellDir,
      config,
      mission,
      logger: options.logger ?? silentLogger,
      now: options.now ?? (() => new Date()),
      store: options.authority,
      openLog: options.eventLog ?? openSegmentLog,
      currentEpoch: options.currentEpoch,
    });
    await bus.start(options.lockTimeoutMs ?? 2000);
    return bus;
  }

  /**
   * Rebuilds a bus from {@link toJSON}'s output in a cell whose bus has no events yet: same
   * mission, config, token hashes and every event with every field (sequence numbers, ids,
   * timestamps). Direct events are written to the new cell's inboxes.
   * @throws {BusError} BUS_INVALID (not an export, or sequence numbers not 1, 2, 3, …),
   *   BUS_EXISTS (the cell's bus already has events), and whatever {@link open} throws.
   */
  static async fromJSON(
    json: unknown,
    options: Omit<OpenMissionBusOptions, 'config'>,
  ): Promise<MissionBus> {
    const parsed = BusExportSchema.safeParse(typeof json === 'string' ? safeJsonParse(json) : json);
    if (!parsed.success)
      throw new BusError('BUS_INVALID', `bus export: ${formatIssues(parsed.error)}`, {
        cause: parsed.error,
      });
    const data = parsed.data;
    data.events.forEach((event, index) => {
      if (event.seq !== index + 1)
        throw new BusError(
          'BUS_INVALID',
          `bus export: events.${index}.seq: is ${event.seq}, expected ${index + 1}`,
        );
    });
    const bus = await MissionBus.open({
      ...options,
      config: { ...data.config, mission: data.mission },
    });
    try {
      if (bus.head > 0)
        throw new BusError(
          'BUS_EXISTS',
          `${bus.paths.bus}: the bus already has ${bus.head} events; import into an empty cell`,
        );
      for (const [name, sha256] of Object.entries(data.tokens)) await bus.setToken(name, sha256);
      const writes = data.events.map((event) => bus.commit(() => event));
      await Promise.all(writes);
      return bus;
    } catch (error) {
      await bus.close().catch(() => undefined);
      throw error;
    }
  }

  private async start(lockTimeoutMs: number): Promise<void> {
    const { dir } = this.paths;
    try {
      const stat = await fs.lstat(dir);
      if (!stat.isDirectory())
        throw new BusError('BUS_INVALID', `${dir}: expected a cell directory`);
      // No component from the cell down is followed if it is a link (an agent can write the cell).
      this.busDirectory = await openDirectoryBeneath(dir, 'bus', { create: true });
      await (await openDirectoryBeneath(dir, 'bus/inbox', { create: true })).close();
    } catch (error) {
      await this.busDirectory?.close().catch(() => undefined);
      throw toBusError(error, dir);
    }
    const busDir = `/proc/self/fd/${this.busDirectory.fd}`;
    this.paths = { ...this.paths, bus: busDir };
    await new Promise<void>((resolve, reject) => {
      this.lockHeld = withFileLock(
        join(busDir, '.lock'),
        () =>
          new Promise<void>((release) => {
            this.releaseLock = release;
            resolve();
          }),
        { timeoutMs: lockTimeoutMs },
      ).catch((error: unknown) => reject(toBusError(error, busDir)));
    });
    try {
      if (this.store) await this.loadRoster(this.store);
      else await this.loadTokens();
      const watermark = await readWatermark(dir);
      const undelivered: DirectEvent[] = [];
      const tail: BusEvent[] = [];
      const tailSize = this.config.log.cache_max_events;
      const { log, repairs: found } = await this.openLog({
        dir: busDir,
        missionId: this.mission.id,
        config: this.config,
        logger: this.logger,
        now: this.now,
        onEvent: (event) => {
          this.apply(event, 'replay');
          if (event.seq > watermark && isDirectEvent(event)) undelivered.push(event);
          tail.push(event);
          if (tail.length > tailSize * 2) tail.splice(0, tail.length - tailSize);
        },
      });
      this.log = log;
      // Reported with the bus directory's real path, not the descriptor it was reached through.
      const named = (path: string) => path.replace(busDir, join(dir, 'bus'));
      const repairs = found.map((repair) => ({
        ...repair,
        segment: named(repair.segment),
        savedTo: named(repair.savedTo),
      }));
      (this.repairs as LogRepair[]).push(...repairs);
      this.nextSeq = log.lastSeq;
      this.headSeq = log.lastSeq;
      for (const event of tail.slice(-tailSize))
        this.cache.push({ event, line: JSON.stringify(event) });
      this.audit = new AuditTrail(join(busDir, 'audit.jsonl'), this.logger, this.now);
      this.reportIgnoredClaims();
      for (const repair of repairs) {
        this.audit.record({
          event: 'bus_log_repaired',
          segment: repair.segment,
          line: repair.line,
          offset: repair.offset,
          bytes: repair.bytes,
          reason: repair.reason,
          saved_to: repair.savedTo,
        });
      }
      for (const event of undelivered) {
        if (!(await inboxEventExists(dir, event))) {
          this.logger.info('bus: writing a direct event missing from its inbox', {
            seq: event.seq,
            to: event.to,
          });
          await this.deliverToInbox(event);
        }
      }
      await writeWatermark(dir, this.headSeq);
      if (this.store?.watch)
        this.stopWatching = await this.store.watch((change) => this.applySharedRole(change));
      if (log.kind === 'shared')
        log.follow(
          this.headSeq,
          (stored) => this.ingest(stored),
          (error) => this.fail(toBusError(error, `mission ${this.mission.id}`)),
        );
    } catch (error) {
      await this.stopWatching?.().catch(() => undefined);
      await this.log?.close().catch(() => undefined);
      this.releaseLock();
      await this.lockHeld;
      await this.busDirectory.close().catch(() => undefined);
      throw toBusError(error, join(dir, 'bus'));
    }
  }

  /** The number of acknowledged events: the sequence number of the last one (0 when empty). */
  get head(): number {
    return this.headSeq;
  }

  /** Whether the bus is closed or failed (every operation then throws BUS_CLOSED). */
  get closed(): boolean {
    return this.closing !== undefined || this.failure !== undefined;
  }

  /** The capabilities of each role. */
  roles(): Record<Role, Capability[]> {
    return Object.fromEntries(
      RoleSchema.options.map((role) => [role, [...this.roleTable[role]]]),
    ) as Record<Role, Capability[]>;
  }

  /** The current participants with their roles and capabilities. */
  participants(): ParticipantInfo[] {
    return [...this.members].map(([name, role]) => ({
      name,
      role,
      capabilities: [...this.roleTable[role]],
    }));
  }

  /** A participant's role, or `undefined` for someone who is not a participant. */
  roleOf(name: string): Role | undefined {
    return this.members.get(name);
  }

  /** Whether `name` may use `capability` now (`@pit` may do everything; a non-participant nothing). */
  can(name: string, capability: Capability): boolean {
    if (name === SYSTEM_SENDER) return true;
    const role = this.members.get(name);
    return role !== undefined && this.roleTable[role].has(capability);
  }

  /**
   * Checks that `name` may use `capability`, recording a refusal in the audit trail.
   * @throws {BusError} BUS_FORBIDDEN naming the participant, its role and the capability.
   */
  authorize(name: string, capability: Capability, operation: string = capability): void {
    if (this.can(name, capability)) return;
    const role = this.members.get(name);
    this.audit.record({
      event: 'bus_denied',
      participant: name,
      operation,
      capability,
      role: role ?? null,
    });
    this.logger.warn('bus: operation refused', {
      mission: this.mission.id,
      participant: name,
      role: role ?? null,
      operation,
      capability,
    });
    const who =
      role === undefined
        ? `${JSON.stringify(name)} is not a participant of mission ${this.mission.id}`
        : `${name} (role ${role})`;
    throw new BusError('BUS_FORBIDDEN', `${operation}: ${who} lacks the ${capability} capability`);
  }

  /** Whether `token` is `name`'s token (constant-time; `false` for anyone without one). */
  authenticate(name: string, token: string): boolean {
    return tokenMatches(token, this.tokens.get(name));
  }

  /** Records a failed authentication in the audit trail (used by the server). */
  recordAuthFailure(name: string, reason: string): void {
    if (!this.closed) this.audit.record({ event: 'bus_auth_failed', participant: name, reason });
  }

  /** The isolation profile of each participant that has one. */
  isolationProfiles(): Record<string, IsolationProfile> {
    return Object.fromEntries(this.isolation);
  }

  /**
   * Publishes a message; with `to`, a direct message that also lands in that participant's
   * inbox before it is acknowledged. Resolves once the event is as durable as the fsync policy
   * promises, with its sequence number. Publishing an id again returns the first event.
   * @throws {BusError} BUS_INVALID, BUS_FORBIDDEN (no `publish` capability),
   *   BUS_UNKNOWN_PARTICIPANT (`to`), BUS_CONFLICT (id used by another event), BUS_TOO_LARGE, BUS_CLOSED, BUS_IO.
   */
  publish(sender: string, input: PublishInput): Promise<MessageEvent> {
    return this.run(() =>
      this.publishValid(sender, parseInput(PublishInputSchema, input, 'publish')),
    );
  }

  private publishValid(
    sender: string,
    message: z.output<typeof PublishInputSchema>,
  ): Promise<MessageEvent> {
    this.authorize(sender, 'publish', 'publish');
    this.assertCurrentEpoch(sender, message.epoch, 'publish');
    const existing = this.existing<MessageEvent>(message.id, 'message', sender);
    if (existing) return existing;
    if (message.to !== undefined) this.assertMember(message.to, 'publish: to');
    return this.commit<MessageEvent>((seq, ts) => ({
      seq,
      id: message.id ?? randomUUID(),
      ts,
      event: 'message',
      sender,
      ...(message.epoch !== undefined ? { epoch: message.epoch } : {}),
      topic: message.topic,
      payload: message.payload,
      ...(message.to !== undefined ? { to: message.to } : {}),
    }));
  }

  /**
   * Records a checkpoint: a summary, the state and artifacts the next agent needs, and
   * optionally a @pit/snapshot workspace checkpoint `{ ts, sha256 }`.
   * @throws {BusError} BUS_INVALID, BUS_FORBIDDEN (no `checkpoint` capability), BUS_CONFLICT, BUS_TOO_LARGE, BUS_CLOSED, BUS_IO.
   */
  checkpoint(sender: string, input: CheckpointInput): Promise<CheckpointEvent> {
    return this.run(() =>
      this.checkpointValid(sender, parseInput(CheckpointInputSchema, input, 'checkpoint')),
    );
  }

  private checkpointValid(
    sender: string,
    checkpoint: z.output<typeof CheckpointInputSchema>,
  ): Promise<CheckpointEvent> {
    this.authorize(sender, 'checkpoint', 'checkpoint');
    this.assertCurrentEpoch(sender, checkpoint.epoch, 'checkpoint');
    const existing = this.existing<CheckpointEvent>(checkpoint.id, 'checkpoint', sender);
    if (existing) return existing;
    return this.commit<CheckpointEvent>((seq, ts) => ({
      seq,
      id: checkpoint.id ?? randomUUID(),
      ts,
      event: 'checkpoint',
      sender,
      ...(checkpoint.epoch !== undefined ? { epoch: checkpoint.epoch } : {}),
      summary: checkpoint.summary,
      state: checkpoint.state,
      artifacts: checkpoint.artifacts,
      ...(checkpoint.workspace ? { workspace: checkpoint.workspace } : {}),
    }));
  }

  /**
   * Hands work from `from` (the sender, unless the sender is `@pit`) to participant `to`,
   * resuming at an existing checkpoint. The handoff also lands in the recipient's inbox.
   * @throws {BusError} BUS_INVALID (no `from` for `@pit`, or `to` equal to `from`),
   *   BUS_FORBIDDEN (no `handoff` capability, or handing off someone else's work),
   *   BUS_UNKNOWN_PARTICIPANT (`to` is not a participant, `from` never was one),
   *   BUS_NOT_FOUND (no such checkpoint), BUS_CONFLICT, BUS_CLOSED, BUS_IO.
   */
  handoff(sender: string, input: HandoffInput): Promise<HandoffEvent> {
    return this.run(() =>
      this.handoffValid(sender, parseInput(HandoffInputSchema, input, 'handoff')),
    );
  }

  private handoffValid(
    sender: string,
    handoff: z.output<typeof HandoffInputSchema>,
  ): Promise<HandoffEvent> {
    this.authorize(sender, 'handoff', 'handoff');
    this.assertCurrentEpoch(sender, handoff.epoch, 'handoff');
    const existing = this.existing<HandoffEvent>(handoff.id, 'handoff', sender);
    if (existing) return existing;
    let from = handoff.from;
    if (sender === SYSTEM_SENDER) {
      if (from === undefined)
        throw new BusError(
          'BUS_INVALID',
          `handoff: from: required when the sender is ${SYSTEM_SENDER}`,
        );
    } else {
      from ??= sender;
      if (from !== sender) {
        this.audit.record({
          event: 'bus_denied',
          participant: sender,
          operation: 'handoff',
          reason: `from ${from}`,
        });
        throw new BusError(
          'BUS_FORBIDDEN',
          `handoff: ${sender} may hand off only its own work, not ${from}'s`,
        );
      }
    }
    if (!this.everMembers.has(from))
      throw new BusError(
        'BUS_UNKNOWN_PARTICIPANT',
        `handoff: from: ${from} has never been a participant of mission ${this.mission.id}`,
      );
    this.assertMember(handoff.to, 'handoff: to');
    if (handoff.to === from)
      throw new BusError('BUS_INVALID', `handoff: to: ${handoff.to} cannot hand off to itself`);
    if (!this.checkpoints.has(handoff.checkpoint)) {
      throw new BusError(
        'BUS_NOT_FOUND',
        `handoff: checkpoint: no checkpoint ${handoff.checkpoint} in mission ${this.mission.id}`,
      );
    }
    const origin = from;
    return this.commit<HandoffEvent>((seq, ts) => ({
      seq,
      id: handoff.id ?? randomUUID(),
      ts,
      event: 'handoff',
      sender,
      ...(handoff.epoch !== undefined ? { epoch: handoff.epoch } : {}),
      from: origin,
      to: handoff.to,
      checkpoint: handoff.checkpoint,
      note: handoff.note,
      ...(handoff.workspace ? { workspace: handoff.workspace } : {}),
    }));
  }

  /**
   * Sets (or, with `profile: null`, clears) a participant's isolation profile.
   * @throws {BusError} BUS_INVALID, BUS_FORBIDDEN (no `configure_isolation` capability),
   *   BUS_UNKNOWN_PARTICIPANT, BUS_CONFLICT, BUS_CLOSED, BUS_IO.
   */
  configureIsolation(sender: string, input: ConfigureIsolationInput): Promise<IsolationEvent> {
    return this.run(() =>
      this.configureIsolationValid(
        sender,
        parseInput(ConfigureIsolationInputSchema, input, 'configure_isolation'),
      ),
    );
  }

  private configureIsolationValid(
    sender: string,
    change: z.output<typeof ConfigureIsolationInputSchema>,
  ): Promise<IsolationEvent> {
    this.authorize(sender, 'configure_isolation', 'configure_isolation');
    const existing = this.existing<IsolationEvent>(change.id, 'isolation', sender);
    if (existing) return existing;
    this.assertMember(change.participant, 'configure_isolation: participant');
    return this.commit<IsolationEvent>((seq, ts) => ({
      seq,
      id: change.id ?? randomUUID(),
      ts,
      event: 'isolation',
      sender,
      participant: change.participant,
      profile: change.profile,
    }));
  }

  /**
   * @internal The server's entry point: `input` already passed the same schema as part of a
   * wire frame (`ClientFrameSchema`), so it is not parsed again.
   */
  submit(sender: string, request: ValidRequest): Promise<BusEvent> {
    return this.run<BusEvent>(() => {
      switch (request.op) {
        case 'publish':
          return this.publishValid(sender, request.input);
        case 'checkpoint':
          return this.checkpointValid(sender, request.input);
        case 'handoff':
          return this.handoffValid(sender, request.input);
        case 'configure_isolation':
          return this.configureIsolationValid(sender, request.input);
      }
    });
  }

  /**
   * Registers a participant (or changes its role) at run time, as the owner (`@pit`): a
   * `participant` event in the stream, and its role and token hash in the authority store
   * (without one, the token hash in `bus/tokens.json`).
   * @returns the event, or `null` when it already had this role (only the token was updated).
   * @throws {BusError} BUS_INVALID, BUS_CLOSED, BUS_IO.
   */
  async registerParticipant(input: RegisterParticipantInput): Promise<ParticipantEvent | null> {
    const parsed = parseInput(
      z.strictObject({
        name: AgentNameSchema,
        role: RoleSchema,
        token_sha256: Sha256HexSchema.optional(),
      }),
      input,
      'registerParticipant',
    );
    this.assertOpen();
    if (parsed.token_sha256) await this.setToken(parsed.name, parsed.token_sha256);
    if (this.members.get(parsed.name) === parsed.role) return null;
    return this.participantEvent(SYSTEM_SENDER, parsed.name, parsed.role);
  }

  /**
   * Gives `input.participant` a role, or removes it (`role: null`), on behalf of `sender`, who
   * needs the `grant` capability (a lead by default; `@pit` always): a `participant` event sent
   * by `sender`, recorded in the authority store when the bus has one. Over the wire this is the
   * `grant` frame. Granting does not give a token: the participant still connects with the one
   * its owner registered.
   * @returns the event, or `null` when the participant already had this role.
   * @throws {BusError} BUS_INVALID, BUS_FORBIDDEN, BUS_CLOSED, BUS_IO.
   */
  grant(sender: string, input: GrantInput): Promise<ParticipantEvent | null> {
    return this.run(() => {
      const parsed = parseInput(GrantInputSchema, input, 'grant');
      this.authorize(sender, 'grant', 'grant');
      if (this.members.get(parsed.participant) === (parsed.role ?? undefined)) {
        return Promise.resolve(null);
      }
      return this.participantEvent(sender, parsed.participant, parsed.role);
    });
  }

  /**
   * Removes a participant at run time, as the owner: from then on it can do nothing.
   * @returns the event, or `null` when it was not a participant.
   * @throws {BusError} BUS_INVALID, BUS_CLOSED, BUS_IO.
   */
  async removeParticipant(name: string): Promise<ParticipantEvent | null> {
    const parsed = parseInput(AgentNameSchema, name, 'removeParticipant');
    if (!this.members.has(parsed)) return null;
    return this.participantEvent(SYSTEM_SENDER, parsed, null);
  }

  /** Sequences a participant change, then records it in the authority store (when there is one). */
  private async participantEvent(
    sender: string,
    name: string,
    role: Role | null,
  ): Promise<ParticipantEvent> {
    const event = await this.run(() =>
      this.commit<ParticipantEvent>((seq, ts) => ({
        seq,
        id: randomUUID(),
        ts,
        event: 'participant',
        sender,
        name,
        role,
      })),
    );
    this.grantedBy.set(name, sender);
    await this.saveRoster();
    return event;
  }

  /**
   * Sets (or with `null` removes) a participant's token hash, stored in the authority store
   * (without one, in `bus/tokens.json`, mode 0600) and taking precedence over the config's.
   * @throws {BusError} BUS_INVALID, BUS_IO.
   */
  async setToken(name: string, sha256: string | null): Promise<void> {
    const agent = parseInput(AgentNameSchema, name, 'setToken: name');
    if (sha256 === null) {
      this.runtimeTokens.delete(agent);
      const configured = this.config.participants.find(
        (participant) => participant.name === agent,
      )?.token_sha256;
      if (configured) this.tokens.set(agent, configured);
      else this.tokens.delete(agent);
    } else {
      const hash = parseInput(Sha256HexSchema, sha256, 'setToken: sha256');
      this.runtimeTokens.set(agent, hash);
      this.tokens.set(agent, hash);
    }
    if (this.store) {
      await this.saveRoster();
      return;
    }
    const snapshot = Object.fromEntries(this.runtimeTokens);
    const path = join(this.paths.bus, 'tokens.json');
    this.tokenWrites = this.tokenWrites.then(() =>
      writeJsonAtomic(path, snapshot, { mode: 0o600 }),
    );
    await this.tokenWrites.catch((error: unknown) => {
      this.tokenWrites = Promise.resolve();
      throw toBusError(error, path);
    });
  }

  /** The store's content now: every participant ever seen, with its role (or `null`) and token hash. */
  private roster(): ParticipantRoster {
    const participants: ParticipantRoster['participants'] = {};
    for (const name of new Set([...this.everMembers, ...this.runtimeTokens.keys()])) {
      const token = this.runtimeTokens.get(name);
      participants[name] = {
        role: this.members.get(name) ?? null,
        ...(token ? { token_sha256: token } : {}),
        granted_by: this.grantedBy.get(name) ?? SYSTEM_SENDER,
      };
    }
    return { version: 1, participants };
  }

  /** Writes the roster to the authority store, one write at a time, each with the latest content. */
  private async saveRoster(): Promise<void> {
    const store = this.store;
    if (!store) return;
    this.rosterWrites = this.rosterWrites
      .catch(() => undefined)
      .then(() => store.save(this.roster()));
    await this.rosterWrites.catch((error: unknown) => {
      throw toBusError(error, store.location);
    });
  }

  private async loadRoster(store: ParticipantStore): Promise<void> {
    let roster: ParticipantRoster | undefined;
    try {
      roster = await store.load();
    } catch (error) {
      throw toBusError(error, store.location);
    }
    for (const [name, entry] of Object.entries(roster?.participants ?? {})) {
      this.everMembers.add(name);
      this.grantedBy.set(name, entry.granted_by);
      if (entry.role === null) this.members.delete(name);
      else this.members.set(name, entry.role);
      if (entry.token_sha256) {
        this.runtimeTokens.set(name, entry.token_sha256);
        this.tokens.set(name, entry.token_sha256);
      }
    }
  }

  /** A role another instance of the mission changed in the shared authority store. */
  private applySharedRole(change: SharedRoleChange): void {
    const held = this.members.get(change.name) ?? null;
    this.everMembers.add(change.name);
    this.grantedBy.set(change.name, change.granted_by);
    if (held === change.role) return;
    if (change.role === null) this.members.delete(change.name);
    else this.members.set(change.name, change.role);
    this.logger.info('bus: a role changed through another host', {
      mission: this.mission.id,
      participant: change.name,
      role: change.role,
      was: held,
      granted_by: change.granted_by,
    });
  }

  /** Logs and audits every role the cell's log claims that the store does not hold. */
  private reportIgnoredClaims(): void {
    const ignored = this.ignoredClaims as IgnoredRoleClaim[];
    for (const [name, claimed] of this.logClaims) {
      const held = this.members.get(name) ?? null;
      if (claimed !== held) ignored.push({ name, claimed, held });
    }
    this.logClaims.clear();
    for (const claim of ignored) {
      this.audit.record({
        event: 'bus_claim_ignored',
        participant: claim.name,
        claimed: claim.claimed,
        held: claim.held,
      });
    }
    if (ignored.length > 0) {
      this.logger.warn(
        "bus: participant roles in the cell's log that the authority store does not hold are ignored",
        { mission: this.mission.id, store: this.store?.location, claims: ignored },
      );
    }
  }

  private async loadTokens(): Promise<void> {
    const path = join(this.paths.bus, 'tokens.json');
    let stored: Record<string, string>;
    try {
      stored = await readJsonFile(path, TokensFileSchema);
    } catch (error) {
      if ((error as { code?: string }).code === 'CELL_NOT_FOUND') return;
      throw toBusError(error, path);
    }
    for (const [name, hash] of Object.entries(stored)) {
      this.runtimeTokens.set(name, hash);
      this.tokens.set(name, hash);
    }
  }

  /**
   * The most recent checkpoint `sender` recorded, if any: what the daemon hands to a
   * substitute when an agent dies.
   * @throws {BusError} BUS_CLOSED, BUS_IO.
   * @example
   * const checkpoint = await bus.lastCheckpointOf('smith');
   * if (checkpoint) await bus.handoff(SYSTEM_SENDER, { from: 'smith', to: 'smith-2', checkpoint: checkpoint.id, workspace });
   */
  async lastCheckpointOf(sender: string): Promise<CheckpointEvent | undefined> {
    this.assertOpen();
    const seq = this.lastCheckpointBy.get(sender);
    return seq === undefined ? undefined : ((await this.eventAt(seq)) as CheckpointEvent);
  }

  /**
   * Everything the recipient of a handoff needs to resume: mission, sender, note, the
   * checkpoint, participants and roles, isolation profiles, stream length. Permissions are not
   * checked here (the server checks `read`).
   * @throws {BusError} BUS_NOT_FOUND when there is no such handoff; BUS_CLOSED; BUS_IO.
   */
  async buildResumePacket(handoffId: string): Promise<ResumePacket> {
    this.assertOpen();
    const record = this.handoffs.get(handoffId);
    if (!record)
      throw new BusError(
        'BUS_NOT_FOUND',
        `buildResumePacket: no handoff ${handoffId} in mission ${this.mission.id}`,
      );
    const handoff = (await this.eventAt(record.seq)) as HandoffEvent;
    const checkpointRecord = this.checkpoints.get(handoff.checkpoint);
    if (!checkpointRecord)
      throw new BusError(
        'BUS_CORRUPT',
        `buildResumePacket: handoff ${handoffId} names checkpoint ${handoff.checkpoint}, which is not in the index`,
      );
    const checkpoint = (await this.eventAt(checkpointRecord.seq)) as CheckpointEvent;
    return {
      mission: { ...this.mission },
      handoff,
      recipient: handoff.to,
      sender: handoff.sender,
      from: handoff.from,
      note: handoff.note,
      checkpoint,
      workspace: handoff.workspace ?? checkpoint.workspace ?? null,
      participants: this.participants(),
      roles: this.roles(),
      isolation: this.isolationProfiles(),
      stream: { length: this.headSeq, resume_after: checkpoint.seq },
    };
  }

  /**
   * The last `limit` entries of the audit trail (refusals, failed authentications, log
   * repairs, inbox failures), oldest first. Permissions are not checked here (the server checks `audit`).
   */
  async readAudit(options: { limit?: number } = {}): Promise<AuditEntry[]> {
    this.assertOpen();
    return this.audit.read(options.limit ?? 100);
  }

  /**
   * Acknowledged events after `after`, in order, from memory when recent and from the log
   * segments otherwise.
   * @throws {BusError} BUS_CLOSED, BUS_CORRUPT, BUS_IO.
   */
  async read(options: ReadOptions = {}): Promise<BusEvent[]> {
    const limit = options.limit ?? 1000;
    const out: BusEvent[] = [];
    let cursor = options.after ?? 0;
    while (out.length < limit && cursor < this.headSeq) {
      const page = await this.readStored(cursor, limit - out.length);
      if (page.length === 0) break;
      for (const stored of page) out.push(stored.event);
      cursor = (page.at(-1) as StoredEvent).event.seq;
    }
    return out;
  }

  /** @internal Events after `after` with their lines; synchronous when cached. */
  readCached(after: number, limit: number): StoredEvent[] | undefined {
    if (after >= this.headSeq) return [];
    return this.cache.after(after, limit);
  }

  /** @internal Events after `after` with their lines. */
  async readStored(
    after: number,
    limit: number,
    maxBytes = 4 * 1024 * 1024,
  ): Promise<StoredEvent[]> {
    this.assertOpen();
    const cached = this.readCached(after, limit);
    if (cached) return cached;
    const cacheStart = this.cache.firstSeq ?? this.headSeq + 1;
    return this.log.read(after, Math.min(this.headSeq, cacheStart - 1), limit, maxBytes);
  }

  private async eventAt(seq: number): Promise<BusEvent> {
    if (seq > this.headSeq) {
      const pending = this.pending.get(seq);
      if (pending) return pending.promise;
    }
    const cached = this.cache.get(seq);
    if (cached) return cached.event;
    const [stored] = await this.log.read(seq - 1, seq, 1, Number.MAX_SAFE_INTEGER);
    if (!stored) throw new BusError('BUS_NOT_FOUND', `mission ${this.mission.id}: no event ${seq}`);
    return stored.event;
  }

  /**
   * Calls `listener` with every event as it is acknowledged, in order. Listener errors are
   * logged, never propagated.
   * @returns a function that removes the listener.
   */
  onEvent(listener: (event: BusEvent, line: string) => void): () => void {
    const wrapped = (stored: StoredEvent): void => listener(stored.event, stored.line);
    this.listeners.add(wrapped);
    return () => this.listeners.delete(wrapped);
  }

  /** @internal Like {@link onEvent}, with the stored entry. */
  onStored(listener: (stored: StoredEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The stream after `after`: the backlog, then live events, in order with no gap or
   * duplicate, until the bus closes or `signal` aborts. Memory stays bounded however far
   * behind the reader is (it reads the log in pages).
   * @example
   * for await (const event of bus.subscribe({ after: 0 })) console.log(event.seq, event.event);
   */
  async *subscribe(options: SubscribeOptions = {}): AsyncGenerator<BusEvent> {
    let cursor = options.after ?? 0;
    const { signal } = options;
    while (!signal?.aborted) {
      if (this.failure || this.closing) return;
      if (cursor < this.headSeq) {
        const page = await this.readStored(cursor, 512);
        for (const stored of page) {
          if (signal?.aborted) return;
          cursor = stored.event.seq;
          yield stored.event;
        }
        continue;
      }
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.headWaiters.delete(wake);
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.headWaiters.add(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }

  /**
   * Waits until every event published so far is acknowledged, then fsyncs the log whatever
   * the policy.
   * @throws {BusError} BUS_IO (or the failure that closed the bus).
   */
  async flush(): Promise<void> {
    await this.settled();
    await this.log.flush();
    await this.writeWatermarkNow();
  }

  /**
   * Waits for every published event to be acknowledged, flushes and fsyncs the log, and
   * releases `bus/.lock`. Idempotent. Subscriptions end.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.settled().catch(() => undefined);
        await this.stopWatching?.().catch(() => undefined);
        await this.log.close();
        await this.writeWatermarkNow().catch(() => undefined);
        await this.audit.close().catch(() => undefined);
      } finally {
        this.wakeAll();
        this.releaseLock();
        await this.lockHeld.catch(() => undefined);
        await this.busDirectory?.close().catch(() => undefined);
      }
    })();
    return this.closing;
  }

  /**
   * The whole bus as JSON: mission, config, run-time token hashes and every acknowledged event
   * (read from all segments, synchronously). {@link fromJSON} rebuilds it.
   * @throws {BusError} BUS_CORRUPT, BUS_IO.
   */
  toJSON(): BusExport {
    return {
      format: 'pit-mission-bus',
      version: 1,
      mission: { ...this.mission },
      config: this.config,
      tokens: Object.fromEntries(this.runtimeTokens),
      events: this.readAllSync(),
    };
  }

  private readAllSync(): BusEvent[] {
    if (!this.log.readAllSync)
      throw new BusError(
        'BUS_INVALID',
        `mission ${this.mission.id}: toJSON: this bus's event log (${this.log.kind}) cannot be read synchronously; read() the events instead`,
      );
    return this.log.readAllSync(this.headSeq);
  }

  private async settled(): Promise<void> {
    await this.sharedAppends;
    const last = this.pending.get(this.nextSeq);
    if (last) await last.promise.catch(() => undefined);
    if (this.failure) throw this.failure;
  }

  private run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
      return operation();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private assertNotFailed(): void {
    if (this.failure)
      throw new BusError(
        'BUS_CLOSED',
        `mission ${this.mission.id}: the bus failed: ${this.failure.message}`,
        { cause: this.failure },
      );
  }

  private assertOpen(): void {
    if (this.failure)
      throw new BusError(
        'BUS_CLOSED',
        `mission ${this.mission.id}: the bus failed: ${this.failure.message}`,
        { cause: this.failure },
      );
    if (this.closing)
      throw new BusError('BUS_CLOSED', `mission ${this.mission.id}: the bus is closed`);
  }

  /**
   * Refuses a write whose epoch is older than the sender's current one (see
   * {@link OpenMissionBusOptions.currentEpoch}), with an audit entry.
   * @throws {BusError} BUS_STALE_EPOCH naming the participant and both epochs.
   */
  private assertCurrentEpoch(sender: string, epoch: number | undefined, operation: string): void {
    if (epoch === undefined || !this.currentEpoch) return;
    const current = this.currentEpoch(sender);
    if (current === undefined || (current !== null && epoch >= current)) return;
    this.audit.record({
      event: 'bus_denied',
      participant: sender,
      operation,
      reason:
        current === null
          ? `epoch ${epoch}: no current incarnation`
          : `epoch ${epoch} older than current ${current}`,
    });
    this.logger.warn('bus: write from an older incarnation refused', {
      mission: this.mission.id,
      participant: sender,
      operation,
      epoch,
      current,
    });
    throw new BusError(
      'BUS_STALE_EPOCH',
      current === null
        ? `${operation}: ${sender} wrote with epoch ${epoch}, but no incarnation of ${sender} is current here in mission ${this.mission.id} (taken over or let go)`
        : `${operation}: ${sender} wrote with epoch ${epoch}, older than its current epoch ${current} in mission ${this.mission.id} (an incarnation that was replaced)`,
    );
  }

  private assertMember(name: string, where: string): void {
    if (!this.members.has(name))
      throw new BusError(
        'BUS_UNKNOWN_PARTICIPANT',
        `${where}: ${name} is not a participant of mission ${this.mission.id}`,
      );
  }

  /** The earlier event with this id (republished: idempotent), if any. */
  private existing<E extends BusEvent>(
    id: string | undefined,
    kind: BusEventKind,
    sender: string,
  ): Promise<E> | undefined {
    if (id === undefined) return undefined;
    const record = this.recent.get(id) ?? this.checkpoints.get(id) ?? this.handoffs.get(id);
    if (!record) return undefined;
    if (record.kind !== kind || record.sender !== sender) {
      throw new BusError(
        'BUS_CONFLICT',
        `${kind}: id ${id} is already event ${record.seq} (a ${record.kind} from ${record.sender})`,
      );
    }
    return this.eventAt(record.seq) as Promise<E>;
  }

  /** Sequences an event, updates the index at once, appends it, and resolves when acknowledged. */
  private commit<E extends BusEvent>(build: (seq: number, ts: string) => E): Promise<E> {
    if (this.log.kind === 'shared') return this.commitShared(build, this.log);
    const seq = this.nextSeq + 1;
    const event = build(seq, this.now().toISOString());
    if (event.seq !== seq)
      throw new BusError('BUS_INVALID', `event ${event.id}: seq ${event.seq}, expected ${seq}`);
    const line = JSON.stringify(event);
    const bytes = Buffer.byteLength(line, 'utf8');
    if (bytes > this.config.log.max_event_bytes) {
      throw new BusError(
        'BUS_TOO_LARGE',
        `${event.event} ${event.id}: ${bytes} bytes exceeds log.max_event_bytes (${this.config.log.max_event_bytes})`,
      );
    }
    this.nextSeq = seq;
    this.apply(event, 'live');
    let resolve!: (event: BusEvent) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<BusEvent>((resolveEvent, rejectEvent) => {
      resolve = resolveEvent;
      reject = rejectEvent;
    });
    promise.catch(() => undefined); // rejections are reported to the caller; this one only tracks
    this.pending.set(seq, { stored: { event, line }, ready: false, promise, resolve, reject });
    this.log.append(seq, line).then(
      () => this.written(seq),
      (error: unknown) => this.fail(toBusError(error, this.paths.bus)),
    );
    return promise as Promise<E>;
  }

  private written(seq: number): void {
    const pending = this.pending.get(seq);
    if (!pending) return;
    const { event } = pending.stored;
    if (isDirectEvent(event)) {
      void this.deliverToInbox(event).finally(() => {
        pending.ready = true;
        this.release();
      });
      return;
    }
    pending.ready = true;
    this.release();
  }

  /** Acknowledges ready events in sequence order: advance the head, cache, notify, resolve. */
  private release(): void {
    for (;;) {
      const next = this.pending.get(this.headSeq + 1);
      if (!next || !next.ready) break;
      this.pending.delete(this.headSeq + 1);
      this.acknowledge(next.stored);
      next.resolve(next.stored.event);
    }
    this.wakeAll();
  }

  /** The head moves to an acknowledged event: cache it, note it for the watermark, tell the listeners. */
  private acknowledge(stored: StoredEvent): void {
    this.headSeq = stored.event.seq;
    this.cache.push(stored);
    if (isDirectEvent(stored.event) && ++this.directSinceWatermark >= WATERMARK_EVERY) {
      this.directSinceWatermark = 0;
      void this.writeWatermarkNow().catch(() => undefined);
    }
    for (const listener of this.listeners) {
      try {
        listener(stored);
      } catch (error) {
        this.logger.error('bus: event listener threw', {
          error: describeError(error),
          seq: this.headSeq,
        });
      }
    }
  }

  /**
   * A shared log's commit: one append at a time, each built at the head this bus has delivered
   * and appended only if the log's last sequence is still that head. When another bus took the
   * sequence, this one catches up (following the log) and builds again at the new head, keeping
   * the event's id (the log's deduplication key) and timestamp. Resolves when the event comes
   * back through {@link ingest}, so every instance acknowledges in the log's order.
   */
  private commitShared<E extends BusEvent>(
    build: (seq: number, ts: string) => E,
    log: SharedBusEventLog,
  ): Promise<E> {
    const draft = build(this.headSeq + 1, this.now().toISOString());
    const bytes = Buffer.byteLength(JSON.stringify(draft), 'utf8');
    if (bytes > this.config.log.max_event_bytes)
      throw new BusError(
        'BUS_TOO_LARGE',
        `${draft.event} ${draft.id}: ${bytes} bytes exceeds log.max_event_bytes (${this.config.log.max_event_bytes})`,
      );
    this.localIds.set(draft.id, (this.localIds.get(draft.id) ?? 0) + 1);
    const done = this.sharedAppends.then(() => this.appendShared(draft, log));
    this.sharedAppends = done.then(
      () => undefined,
      () => undefined,
    );
    return done.finally(() => {
      const left = (this.localIds.get(draft.id) ?? 1) - 1;
      if (left > 0) this.localIds.set(draft.id, left);
      else this.localIds.delete(draft.id);
    }) as Promise<E>;
  }

  private async appendShared(draft: BusEvent, log: SharedBusEventLog): Promise<BusEvent> {
    for (;;) {
      // Not refused once close() has begun: like the segment log's, writes made before it complete.
      this.assertNotFailed();
      const landed = this.indexed(draft.id);
      if (landed !== undefined) return this.eventAt(landed);
      const event = { ...draft, seq: this.headSeq + 1 } as BusEvent;
      const result = await log.append(event.seq, JSON.stringify(event), event.id);
      if (result.ok) {
        await this.untilHead(result.seq);
        return this.eventAt(result.seq);
      }
      this.logger.debug('bus: another instance took the sequence; catching up', {
        mission: this.mission.id,
        seq: event.seq,
        id: event.id,
      });
      await this.untilHead(await log.latestSeq());
    }
  }

  /** The sequence number of the indexed event with this id (checkpoints, handoffs, recent others). */
  private indexed(id: string): number | undefined {
    return (this.recent.get(id) ?? this.checkpoints.get(id) ?? this.handoffs.get(id))?.seq;
  }

  /** Waits until the bus has delivered `seq` (bounded: a log that stops delivering fails the wait). */
  private async untilHead(seq: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.headSeq < seq) {
      this.assertNotFailed();
      const left = deadline - Date.now();
      if (left <= 0)
        throw new BusError(
          'BUS_TIMEOUT',
          `mission ${this.mission.id}: event ${seq} not delivered by the log within ${timeoutMs} ms (delivered up to ${this.headSeq})`,
          { retryable: true },
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, left);
        function wake(): void {
          clearTimeout(timer);
          resolve();
        }
        const waiter = (): void => {
          this.headWaiters.delete(waiter);
          wake();
        };
        this.headWaiters.add(waiter);
      });
    }
  }

  /**
   * A shared log delivers the next event (this bus's own or another instance's), in the log's
   * order: index it, write a direct event to its inbox, acknowledge it. A participant change made
   * through another instance is a record here, never a grant, when the bus has an authority store
   * (each host's store is the authority for the participants it serves).
   */
  private async ingest(stored: StoredEvent): Promise<void> {
    const { event } = stored;
    if (event.seq <= this.headSeq) return;
    if (event.seq !== this.headSeq + 1)
      throw new BusError(
        'BUS_CORRUPT',
        `mission ${this.mission.id}: the log delivered event ${event.seq} after ${this.headSeq}`,
      );
    this.apply(event, this.localIds.has(event.id) ? 'live' : 'remote');
    this.nextSeq = event.seq;
    if (isDirectEvent(event)) await this.deliverToInbox(event);
    this.acknowledge(stored);
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const wake of [...this.headWaiters]) wake();
  }

  private async deliverToInbox(event: DirectEvent): Promise<void> {
    try {
      await writeInboxEvent(this.paths.dir, event, {
        fsync: this.config.log.fsync.mode === 'always',
      });
    } catch (error) {
      this.logger.error('bus: could not write a direct event to its inbox', {
        seq: event.seq,
        to: event.to,
        error: describeError(error),
      });
      this.audit?.record({
        event: 'bus_inbox_failed',
        seq: event.seq,
        to: event.to,
        reason: describeError(error),
      });
    }
  }

  private writeWatermarkNow(): Promise<void> {
    const seq = this.headSeq;
    this.watermarkWrite = this.watermarkWrite
      .catch(() => undefined)
      .then(() => writeWatermark(this.paths.dir, seq));
    return this.watermarkWrite;
  }

  private fail(error: BusError): void {
    if (this.failure) return;
    this.failure = error;
    this.logger.error('bus failed; every operation now refuses', {
      mission: this.mission.id,
      error: error.message,
    });
    for (const pending of [...this.pending.values()].sort(
      (a, b) => a.stored.event.seq - b.stored.event.seq,
    ))
      pending.reject(error);
    this.pending.clear();
    this.wakeAll();
  }

  /**
   * Updates the index with one event: found in the log on open (`replay`), sequenced by this bus
   * (`live`), or appended to a shared log by another instance (`remote`).
   */
  private apply(event: BusEvent, origin: 'replay' | 'live' | 'remote'): void {
    const record: IdRecord = { seq: event.seq, kind: event.event, sender: event.sender };
    switch (event.event) {
      case 'participant':
        // With an authority store, the log's participant lines are a record, never a grant.
        if (this.store && origin === 'replay') {
          this.logClaims.set(event.name, event.role);
          break;
        }
        if (this.store && origin === 'remote') break;
        if (event.role === null) this.members.delete(event.name);
        else this.members.set(event.name, event.role);
        this.everMembers.add(event.name);
        break;
      case 'isolation':
        if (event.profile === null) this.isolation.delete(event.participant);
        else this.isolation.set(event.participant, event.profile);
        break;
      case 'checkpoint':
        this.checkpoints.set(event.id, record);
        this.lastCheckpointBy.set(event.sender, event.seq);
        return;
      case 'handoff':
        this.handoffs.set(event.id, record);
        return;
      default:
        break;
    }
    this.recent.set(event.id, record);
    if (this.recent.size > this.config.log.dedupe_window) {
      const oldest = this.recent.keys().next();
      if (!oldest.done) this.recent.delete(oldest.value);
    }
  }
}

function parseInput<T extends z.ZodType>(schema: T, input: unknown, where: string): z.output<T> {
  const parsed = schema.safeParse(input);
  if (!parsed.success)
    throw new BusError('BUS_INVALID', `${where}: ${formatIssues(parsed.error)}`, {
      cause: parsed.error,
    });
  return parsed.data;
}

function safeJsonParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new BusError('BUS_INVALID', `bus export: not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
