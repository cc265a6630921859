import {
  AgentNameSchema,
  IsoTimestampSchema,
  IsolationProfileSchema,
  Sha256Schema,
} from '@pit/cell-spec';
import { z } from 'zod';
import { RoleSchema } from './roles.js';

/**
 * The sender of events published by the bus's owner in-process (the daemon), with every
 * capability. It is not a valid agent name, so no participant can claim it, and the server
 * never authenticates anyone as it.
 */
export const SYSTEM_SENDER = '@pit';

/** A hex sha256 digest (64 lower-case hex characters): the shared @pit/cell-spec schema. */
export const Sha256HexSchema = Sha256Schema;

/** An event id: 1–128 characters of `A-Z a-z 0-9 . _ : -` (a UUID by default); it becomes part of inbox file names. */
export const EventIdSchema = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, {
  message: 'must be 1-128 characters of A-Z a-z 0-9 . _ : -',
});

/** Who sent an event: a participant's name or {@link SYSTEM_SENDER}. */
export const SenderSchema = z.union([AgentNameSchema, z.literal(SYSTEM_SENDER)]);

/** A message topic (1–200 characters). */
export const TopicSchema = z.string().min(1).max(200);

/**
 * A reference to a workspace checkpoint archive made by @pit/snapshot
 * (`checkpoints/<ts>.tar.gz`), passed in by the caller as plain data: its timestamp and the
 * archive's sha256.
 */
export const WorkspaceCheckpointRefSchema = z.strictObject({
  /** The checkpoint's timestamp, as @pit/snapshot names it. */
  ts: z.string().min(1).max(100),
  /** sha256 of the archive. */
  sha256: Sha256HexSchema,
});
export type WorkspaceCheckpointRef = z.infer<typeof WorkspaceCheckpointRefSchema>;

/** An artifact a checkpoint points at: a path in the workspace or a URL. */
export const ArtifactSchema = z.string().min(1).max(4096);

/** An incarnation epoch: the revision of the agent's owner record in a cluster (a positive integer). */
export const EpochSchema = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const base = {
  /** Position in the stream: 1, 2, 3, … with no gap. */
  seq: z.number().int().positive(),
  id: EventIdSchema,
  /** When the bus sequenced it (ISO-8601 UTC). */
  ts: IsoTimestampSchema,
  sender: SenderSchema,
  /** The sender's incarnation epoch, when it gave one (a clustered daemon's agents): which incarnation wrote it. */
  epoch: EpochSchema.optional(),
};

/** A message on a topic; with `to`, a direct message that also lands in the recipient's inbox. */
export const MessageEventSchema = z.strictObject({
  ...base,
  event: z.literal('message'),
  topic: TopicSchema,
  payload: z.json(),
  to: AgentNameSchema.optional(),
});
export type MessageEvent = z.infer<typeof MessageEventSchema>;

/** What a participant has done so far, enough for another to continue. */
export const CheckpointEventSchema = z.strictObject({
  ...base,
  event: z.literal('checkpoint'),
  summary: z.string().max(65_536),
  state: z.json(),
  artifacts: z.array(ArtifactSchema).max(10_000),
  workspace: WorkspaceCheckpointRefSchema.optional(),
});
export type CheckpointEvent = z.infer<typeof CheckpointEventSchema>;

/** Work passing from one participant to another, resuming at a checkpoint. */
export const HandoffEventSchema = z.strictObject({
  ...base,
  event: z.literal('handoff'),
  from: AgentNameSchema,
  to: AgentNameSchema,
  /** The id of a checkpoint event of this stream. */
  checkpoint: EventIdSchema,
  note: z.string().max(65_536),
  workspace: WorkspaceCheckpointRefSchema.optional(),
});
export type HandoffEvent = z.infer<typeof HandoffEventSchema>;

/** A participant registered, given another role (`role`), or removed (`role: null`) at run time. */
export const ParticipantEventSchema = z.strictObject({
  ...base,
  event: z.literal('participant'),
  name: AgentNameSchema,
  role: RoleSchema.nullable(),
});
export type ParticipantEvent = z.infer<typeof ParticipantEventSchema>;

/** A participant's isolation profile set (`profile`) or cleared (`null`). */
export const IsolationEventSchema = z.strictObject({
  ...base,
  event: z.literal('isolation'),
  participant: AgentNameSchema,
  profile: IsolationProfileSchema.nullable(),
});
export type IsolationEvent = z.infer<typeof IsolationEventSchema>;

/** One event of a mission's stream, as stored (one JSON line) and as sent over the wire. */
export const BusEventSchema = z.discriminatedUnion('event', [
  MessageEventSchema,
  CheckpointEventSchema,
  HandoffEventSchema,
  ParticipantEventSchema,
  IsolationEventSchema,
]);
export type BusEvent = z.infer<typeof BusEventSchema>;
/** The kinds of stream events. */
export type BusEventKind = BusEvent['event'];

/** What a sender supplies to publish a message (`id` defaults to a new UUID). */
export const PublishInputSchema = z.strictObject({
  /** Idempotency key: publishing the same id again returns the first event instead of a copy. */
  id: EventIdSchema.optional(),
  topic: TopicSchema,
  payload: z.json(),
  /** A participant: makes this a direct message, also written to its inbox. */
  to: AgentNameSchema.optional(),
  /**
   * The sender's incarnation epoch (`PIT_EPOCH` in a clustered daemon's agents): refused with
   * BUS_STALE_EPOCH when older than the participant's current epoch; kept in the event.
   */
  epoch: EpochSchema.optional(),
});
export type PublishInput = z.input<typeof PublishInputSchema>;

/** What a sender supplies to record a checkpoint. */
export const CheckpointInputSchema = z.strictObject({
  id: EventIdSchema.optional(),
  summary: z.string().max(65_536),
  /** Any JSON the next agent needs. @default null */
  state: z.json().default(null),
  /** @default [] */
  artifacts: z.array(ArtifactSchema).max(10_000).default([]),
  /** A @pit/snapshot workspace checkpoint `{ ts, sha256 }`. */
  workspace: WorkspaceCheckpointRefSchema.optional(),
  /**
   * The sender's incarnation epoch (`PIT_EPOCH` in a clustered daemon's agents): refused with
   * BUS_STALE_EPOCH when older than the participant's current epoch; kept in the event.
   */
  epoch: EpochSchema.optional(),
});
export type CheckpointInput = z.input<typeof CheckpointInputSchema>;

/** What a sender supplies to hand work off. */
export const HandoffInputSchema = z.strictObject({
  id: EventIdSchema.optional(),
  /** Whose work is handed off. @default the sender (required when the sender is {@link SYSTEM_SENDER}) */
  from: AgentNameSchema.optional(),
  /** The participant taking over. */
  to: AgentNameSchema,
  /** The id of an existing checkpoint event. */
  checkpoint: EventIdSchema,
  /** @default '' */
  note: z.string().max(65_536).default(''),
  /** A @pit/snapshot workspace checkpoint `{ ts, sha256 }` to restore before resuming. */
  workspace: WorkspaceCheckpointRefSchema.optional(),
  /**
   * The sender's incarnation epoch (`PIT_EPOCH` in a clustered daemon's agents): refused with
   * BUS_STALE_EPOCH when older than the participant's current epoch; kept in the event.
   */
  epoch: EpochSchema.optional(),
});
export type HandoffInput = z.input<typeof HandoffInputSchema>;

/** What a sender supplies to set or clear a participant's isolation profile. */
export const ConfigureIsolationInputSchema = z.strictObject({
  id: EventIdSchema.optional(),
  participant: AgentNameSchema,
  profile: IsolationProfileSchema.nullable(),
});
export type ConfigureIsolationInput = z.input<typeof ConfigureIsolationInputSchema>;
