/**
 * The one list of event kinds of `events.jsonl` and the fields of each: what the daemon, the
 * CLI and the packages write, and what agents' harnesses may write. Writers are held to it
 * exactly (strict objects: an unknown kind or field is refused); readers use
 * {@link parseCellEvent}, which tolerates a kind or field it does not know. This module owns
 * the schemas and the reading rule; appending and streaming are in `events.ts`.
 */
import { z } from 'zod';
import { AgentNameSchema } from './agent-name.js';
import { Sha256Schema } from './common-schemas.js';
import { formatIssues } from './format-issues.js';
import { IsolationLevelSchema } from './isolation.js';
import { CellStatusSchema } from './lifecycle.js';
import { IsoTimestampSchema } from './timestamp.js';
import { RemedyActionSchema } from './approval.js';

/** Fields every event line has. */
const base = { ts: IsoTimestampSchema };
/**
 * Fields of an event about one agent. In a cluster (`[cluster]`), `epoch` is the incarnation's
 * fencing epoch (its owner record's revision, `PIT_EPOCH`) and `host` the host that wrote it.
 */
const agentBase = {
  ...base,
  agent: AgentNameSchema,
  epoch: z.number().int().positive().optional(),
  host: z.string().min(1).max(64).optional(),
};

/** A file restored by a config rollback, with its hash before (`null`: absent) and after. */
export const RolledBackFileSchema = z.strictObject({
  path: z.string().min(1),
  old_sha256: Sha256Schema.nullable(),
  new_sha256: Sha256Schema,
});

/** A file added after the snapshot and moved into the store by a rollback. */
export const MovedAsideFileSchema = z.strictObject({
  path: z.string().min(1),
  sha256: Sha256Schema,
  kind: z.enum(['file', 'symlink']),
});

/** What a decision can be (policy's actions; `none` is never recorded). */
export const DecisionActionSchema = z.enum([
  'none',
  'wait',
  'restart',
  'rollback_and_restart',
  'substitute',
  'ask',
  'record_only',
  'escalate',
]);

/** What an operator can ask of one agent (`pit restart|stop|start|reset`, the HTTP API, the dashboard). */
export const OperatorActionSchema = z.enum(['restart', 'stop', 'start', 'reset']);
/** One of {@link OperatorActionSchema}. */
export type OperatorAction = z.infer<typeof OperatorActionSchema>;

/** What a human is asked to approve. */

const nonEmpty = z.string().min(1);
const pid = z.number().int().positive();
const lifecycle = <K extends 'cell_frozen' | 'cell_archived' | 'cell_destroyed'>(kind: K) =>
  z.strictObject({
    ...base,
    event: z.literal(kind),
    from: CellStatusSchema,
    reason: z.string().optional(),
  });
const approvalAnswer = <K extends 'revive_approved' | 'revive_denied'>(kind: K) =>
  z.strictObject({
    ...agentBase,
    event: z.literal(kind),
    approval_id: nonEmpty,
    /** Where the answer came from (`http`, `cli`, `telegram`, `nostr`, `dashboard`). */
    channel: nonEmpty.optional(),
    /** Who answered, as the channel names them. */
    by: nonEmpty.optional(),
    reason: z.string().optional(),
  });

/**
 * Every event kind of `events.jsonl`, discriminated on `event`, each a strict object: exactly
 * these fields. Who writes each kind is said in the package README.
 */
export const CellEventSchema = z.discriminatedUnion('event', [
  // The cell's lifecycle (cell-spec: provisionCell, transitionCell / updateManifest).
  z.strictObject({
    ...base,
    event: z.literal('cell_created'),
    uuid: nonEmpty,
    mission: z.string(),
    created_by: z.string(),
  }),
  z.strictObject({
    ...base,
    event: z.literal('cell_activated'),
    /** Absent when the cell was provisioned active. */
    from: CellStatusSchema.optional(),
    reason: z.string().optional(),
  }),
  lifecycle('cell_frozen'),
  lifecycle('cell_archived'),
  lifecycle('cell_destroyed'),
  z.strictObject({
    ...agentBase,
    event: z.literal('agent_joined'),
    role: z.string(),
    /** Set when the daemon added the agent as a substitute for a dead one. */
    substituting_for: AgentNameSchema.optional(),
  }),
  // Written by agents' harnesses (the Pit itself does not).
  z.strictObject({ ...agentBase, event: z.literal('agent_left'), reason: z.string().optional() }),
  z.strictObject({
    ...agentBase,
    event: z.literal('heartbeat'),
    cycle: z.number().int().optional(),
    status: z.string().optional(),
  }),
  // The daemon's supervision.
  z.strictObject({
    ...agentBase,
    event: z.literal('agent_started'),
    pid,
    level: IsolationLevelSchema,
    /** In a cluster: the host whose lease expired, when this start took the agent over. */
    taken_over_from: z.string().min(1).max(64).optional(),
  }),
  z.strictObject({
    ...agentBase,
    event: z.literal('agent_adopted'),
    pid,
    reason: z.string(),
  }),
  z.strictObject({ ...agentBase, event: z.literal('agent_healthy') }),
  z.strictObject({ ...agentBase, event: z.literal('agent_degraded'), reason: z.string() }),
  z.strictObject({
    ...agentBase,
    event: z.literal('agent_dead'),
    reason: z.string(),
    /** The names of the probes failing when the death was declared (empty: the process exited). */
    failing: z.array(z.string()),
  }),
  z.strictObject({
    ...agentBase,
    event: z.literal('decision'),
    action: DecisionActionSchema,
    /** The policy rule that decided (e.g. `restart_intensity`). */
    rule: nonEmpty,
    reason: z.string(),
    approval_id: nonEmpty.optional(),
  }),
  z.strictObject({
    ...agentBase,
    event: z.literal('revive_requested'),
    approval_id: nonEmpty,
    reason: z.string(),
    proposed: RemedyActionSchema,
    expires_at: IsoTimestampSchema,
  }),
  approvalAnswer('revive_approved'),
  approvalAnswer('revive_denied'),
  z.strictObject({
    ...agentBase,
    event: z.literal('agent_revived'),
    pid,
    attempt: z.number().int().nonnegative(),
    reason: z.string(),
    /** In a cluster: the host whose lease expired, when this start took the agent over. */
    taken_over_from: z.string().min(1).max(64).optional(),
  }),
  z.strictObject({ ...agentBase, event: z.literal('revive_failed'), reason: z.string() }),
  /** A clustered host did not start the agent: its claim was refused (another host owns it, the lease lapsed, NATS did not answer). */
  z.strictObject({
    ...agentBase,
    event: z.literal('start_refused'),
    reason: z.enum(['owned', 'lost', 'fenced', 'unavailable']),
    message: z.string(),
    owner_host: z.string().min(1).max(64).optional(),
    owner_epoch: z.number().int().positive().optional(),
  }),
  z.strictObject({
    ...agentBase,
    event: z.literal('config_rolled_back'),
    files: z.array(RolledBackFileSchema),
    reason: z.string(),
    source: z.enum(['snapshot', 'git']),
    /** The restored snapshot set (`null` or absent for git). */
    set: Sha256Schema.nullable().optional(),
    /** Written by @pit/snapshot's request log. */
    rollback_id: nonEmpty.optional(),
    moved_aside: z.array(MovedAsideFileSchema).optional(),
  }),
  z.strictObject({ ...agentBase, event: z.literal('rollback_failed'), reason: z.string() }),
  // Provider-aware revival (the daemon's provider health matrix).
  z.strictObject({
    ...agentBase,
    event: z.literal('provider_wait'),
    /** The agent's primary provider, which is down. */
    provider: nonEmpty,
    status: z.enum(['degraded', 'dead']),
    /** When the agent is looked at again. */
    until: IsoTimestampSchema,
    reason: z.string(),
  }),
  z.strictObject({
    ...agentBase,
    event: z.literal('provider_switched'),
    from: nonEmpty,
    to: nonEmpty,
    /** `fallback`: away from the primary; `back`: to the primary again. */
    direction: z.enum(['fallback', 'back']),
    files: z.array(RolledBackFileSchema),
    reason: z.string(),
  }),
  z.strictObject({
    ...agentBase,
    event: z.literal('agent_substituted'),
    substitute: AgentNameSchema,
    reason: z.string(),
    role: z.string(),
    /** The handoff's id on the mission bus, and the resume packet's path (absent: not published). */
    handoff: nonEmpty.optional(),
    resume_packet: nonEmpty.optional(),
  }),
  // Workspace checkpoints (@pit/snapshot).
  z.strictObject({
    ...base,
    event: z.literal('checkpoint_created'),
    checkpoint: nonEmpty,
    sha256: Sha256Schema,
    bytes: z.number().int().nonnegative(),
    files: z.number().int().nonnegative(),
    created_by: z.string(),
    reason: z.string(),
  }),
  z.strictObject({
    ...base,
    event: z.literal('checkpoint_restored'),
    checkpoint: nonEmpty,
    sha256: Sha256Schema,
    files: z.number().int().nonnegative(),
    restored_by: z.string().optional(),
    reason: z.string().optional(),
  }),
  z.strictObject({
    ...agentBase,
    event: z.literal('agent_control'),
    /** What the operator asked for: `restart`, `stop`, `start` or `reset` (backoff, restart budget, escalation). */
    action: OperatorActionSchema,
    /** Who asked: the bearer token's identity over HTTP, the user at the CLI. */
    by: nonEmpty,
    /** Where it came from: `http`, `cli` (no daemon running: recorded for the next sweep), `dashboard`. */
    via: nonEmpty,
    reason: z.string().optional(),
    /** Recorded by the CLI with no daemon running: carried out by the next sweep or daemon start. */
    pending: z.boolean().optional(),
  }),
  z.strictObject({
    ...base,
    event: z.literal('config_reloaded'),
    /** Who asked: `signal` (SIGHUP), or the HTTP token's identity. */
    by: nonEmpty,
    /** `signal`, `http`, `dashboard`. */
    via: nonEmpty,
    /** Whether the new config is in force (else the old one stays, and `error` says why). */
    ok: z.boolean(),
    /** The agents supervised under the new config. */
    agents: z.number().int().nonnegative().optional(),
    error: z.string().optional(),
  }),
  z.strictObject({
    ...agentBase,
    event: z.literal('agent_recovered'),
    /** The process now supervised (absent when only its probes passed again). */
    pid: pid.optional(),
    /** How it came back (a heartbeat with a new pid that passed the identity checks; probes passing again). */
    reason: z.string(),
  }),
  z.strictObject({
    ...agentBase,
    event: z.literal('manifest_refused'),
    /** What of the manifest was refused: the agent's entry (`agents`: not granted) or its `home`. */
    field: z.enum(['agents', 'home']),
    reason: z.string(),
  }),
]);
/** One event of `events.jsonl` of a known kind, exactly as written. */
export type CellEvent = z.infer<typeof CellEventSchema>;
/** The event kinds this version knows. */
export type CellEventKind = CellEvent['event'];
/** The event of one kind. */
export type CellEventOf<K extends CellEventKind> = Extract<CellEvent, { event: K }>;

/** Every kind this version knows, in the order of {@link CellEventSchema}. */
export const CELL_EVENT_KINDS: readonly CellEventKind[] = CellEventSchema.options.map(
  (option) => option.shape.event.value,
);
const KNOWN_KINDS: ReadonlySet<string> = new Set(CELL_EVENT_KINDS);

/** Whether `kind` is one this version knows. */
export function isCellEventKind(kind: unknown): kind is CellEventKind {
  return typeof kind === 'string' && KNOWN_KINDS.has(kind);
}

/** The minimum any line must have: a timestamp and a snake_case event name. */
export const AnyCellEventSchema = z.looseObject({
  ts: IsoTimestampSchema,
  event: z.string().regex(/^[a-z][a-z0-9_]*$/, { message: 'must be a snake_case event name' }),
});
/** Any event line: a known kind or one this version does not know. */
export type AnyCellEvent = z.infer<typeof AnyCellEventSchema>;
/** A known event as a reader sees it: its fields typed, extra fields (a newer writer's) kept. */
export type KnownCellEvent = AnyCellEvent & CellEvent;

/** What a writer passes to `appendEvent`: one known kind, exactly its fields; `ts` may be left out. */
export type CellEventInput = CellEvent extends infer E
  ? E extends CellEvent
    ? { [K in keyof E as K extends 'ts' ? never : K]: E[K] } & { ts?: string }
    : never
  : never;

/** An event about one agent without its `agent`, for a writer that fills that in. */
export type AgentEventInput = CellEventInput extends infer E
  ? E extends { agent: string }
    ? { [K in keyof E as K extends 'agent' ? never : K]: E[K] }
    : never
  : never;

/** The reading rule, per kind: the same fields, but extra ones kept instead of refused. */
const TolerantCellEventSchema = z.discriminatedUnion(
  'event',
  CellEventSchema.options.map((option) => option.loose()) as unknown as [
    z.ZodObject<{ ts: typeof IsoTimestampSchema; event: z.ZodLiteral<CellEventKind> }>,
  ],
);

/** What {@link parseCellEvent} makes of one value. */
export type ParsedCellEvent =
  | { ok: true; known: true; event: KnownCellEvent }
  | { ok: true; known: false; event: AnyCellEvent }
  | { ok: false; reason: string };

/**
 * Reads one event as readers must: a known kind is checked against its fields (extra fields
 * from a newer writer are kept); a kind this version does not know is accepted with `ts` and
 * a snake_case `event` (`known: false`), to be shown, never dropped. Never throws.
 * @example
 * const parsed = parseCellEvent(JSON.parse(line));
 * if (parsed.ok && parsed.known && parsed.event.event === 'agent_dead') console.log(parsed.event.reason);
 */
export function parseCellEvent(value: unknown): ParsedCellEvent {
  const kind =
    typeof value === 'object' && value !== null ? (value as { event?: unknown }).event : undefined;
  if (isCellEventKind(kind)) {
    const full = TolerantCellEventSchema.safeParse(value);
    if (!full.success) return { ok: false, reason: `${kind}: ${formatIssues(full.error)}` };
    return { ok: true, known: true, event: full.data as KnownCellEvent };
  }
  const basic = AnyCellEventSchema.safeParse(value);
  if (!basic.success) return { ok: false, reason: formatIssues(basic.error) };
  return { ok: true, known: false, event: basic.data };
}
