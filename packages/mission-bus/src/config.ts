import { AgentNameSchema, IsolationProfileSchema } from '@pit/cell-spec';
import { z } from 'zod';
import { Sha256HexSchema } from './bus-event.js';
import { RoleOverridesSchema, RoleSchema } from './roles.js';

/** A mission id (the cell uuid by default): 1–128 characters of `A-Z a-z 0-9 . _ : -`. */
export const MissionIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, {
  message: 'must be 1-128 characters of A-Z a-z 0-9 . _ : - (not starting with a symbol)',
});

/** The mission a bus belongs to. */
export const MissionInfoSchema = z.strictObject({
  id: MissionIdSchema,
  title: z.string().min(1).max(500),
});
export type MissionInfo = z.infer<typeof MissionInfoSchema>;

/**
 * When the log is fsynced, and so what an acknowledged publish survives:
 * - `always`: each batch of appended events is fsynced before any of them is acknowledged
 *   (concurrent publishes share one fsync). An acknowledged event survives a process crash,
 *   a kernel crash and a power loss.
 * - `batch`: events are acknowledged once written to the file (the OS page cache), and the
 *   file is fsynced at most `interval_ms` after a write. An acknowledged event survives a
 *   process crash (SIGKILL) at once; a power loss or kernel crash can lose at most the events
 *   acknowledged in the last `interval_ms` plus one fsync.
 * - `never`: events are acknowledged once written to the file and fsynced only on segment
 *   rotation, `flush()` and `close()`. An acknowledged event survives a process crash; a power
 *   loss can lose whatever the OS had not yet written back (on Linux, up to ~30 s by default).
 *
 * Under every policy an event is delivered to subscribers only after it is acknowledged, so no
 * subscriber sees an event that a process crash could take back.
 */
export const FsyncPolicySchema = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('always') }),
  z.strictObject({
    mode: z.literal('batch'),
    /** Longest time between a write and its fsync (ms). @default 10 */
    interval_ms: z.number().int().min(1).max(60_000).default(10),
  }),
  z.strictObject({ mode: z.literal('never') }),
]);
export type FsyncPolicy = z.infer<typeof FsyncPolicySchema>;

/** How the durable log is kept. */
export const LogConfigSchema = z.strictObject({
  /** @default { mode: 'batch', interval_ms: 10 } */
  fsync: FsyncPolicySchema.prefault({ mode: 'batch' }),
  /** Start a new segment file once the current one reaches this size (bytes). @default 67108864 (64 MiB) */
  segment_max_bytes: z
    .number()
    .int()
    .min(1024)
    .default(64 * 1024 * 1024),
  /** An event whose JSON line exceeds this is refused with BUS_TOO_LARGE (bytes). @default 1048576 (1 MiB) */
  max_event_bytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
  /** Recent events kept in memory for fast reads and delivery (count). @default 8192 */
  cache_max_events: z.number().int().min(1).default(8192),
  /** …and at most this many bytes of them. @default 16777216 (16 MiB) */
  cache_max_bytes: z
    .number()
    .int()
    .min(1024)
    .default(16 * 1024 * 1024),
  /**
   * How many recent event ids are remembered to make a republish with the same id return the
   * original event (idempotency window, count). Checkpoint and handoff ids are always remembered.
   * @default 65536
   */
  dedupe_window: z.number().int().min(1).default(65_536),
});
export type LogConfig = z.infer<typeof LogConfigSchema>;

/** A participant of the mission and its role. */
export const ParticipantConfigSchema = z.strictObject({
  name: AgentNameSchema,
  role: RoleSchema,
  /** sha256 (hex) of the participant's token; without one it cannot connect over the wire. See `hashToken`. */
  token_sha256: Sha256HexSchema.optional(),
});
export type ParticipantConfig = z.infer<typeof ParticipantConfigSchema>;

/**
 * The configuration of one mission's bus.
 * @example
 * BusConfigSchema.parse({
 *   mission: { id: cellUuid, title: 'Port the parser' },
 *   participants: [{ name: 'forge', role: 'lead', token_sha256: hashToken(token) }],
 *   log: { fsync: { mode: 'batch', interval_ms: 10 } },
 * });
 */
export const BusConfigSchema = z
  .strictObject({
    /** The mission's id and title. @default read from the cell's `cell.json` (uuid, name or mission) */
    mission: MissionInfoSchema.optional(),
    /** Participants known from the start (more can be registered at run time). @default [] */
    participants: z.array(ParticipantConfigSchema).default([]),
    /** Capabilities per role, replacing the defaults role by role. */
    roles: RoleOverridesSchema.default({}),
    /** Isolation profiles per participant from the start (`configure_isolation` changes them). @default {} */
    isolation: z.record(AgentNameSchema, IsolationProfileSchema).default({}),
    /** @default see {@link LogConfigSchema} */
    log: LogConfigSchema.prefault({}),
  })
  .superRefine((config, context) => {
    const seen = new Set<string>();
    config.participants.forEach((participant, index) => {
      if (seen.has(participant.name))
        context.addIssue({
          code: 'custom',
          path: ['participants', index, 'name'],
          message: `duplicate participant ${participant.name}`,
        });
      seen.add(participant.name);
    });
  });
export type BusConfig = z.infer<typeof BusConfigSchema>;
/** What a caller supplies (defaults may be left out). */
export type BusConfigInput = z.input<typeof BusConfigSchema>;
