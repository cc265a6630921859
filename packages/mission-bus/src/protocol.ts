import { AgentNameSchema, IsolationProfileSchema } from '@pit/cell-spec';
import { z } from 'zod';
import {
  BusEventSchema,
  CheckpointInputSchema,
  ConfigureIsolationInputSchema,
  EventIdSchema,
  HandoffInputSchema,
  PublishInputSchema,
} from './bus-event.js';
import { MissionIdSchema, MissionInfoSchema } from './config.js';
import { BUS_ERROR_CODES } from './errors.js';
import { ParticipantInfoSchema } from './resume-packet.js';
import { CapabilitySchema, RoleSchema } from './roles.js';

/** The protocol version spoken by this package. */
export const PROTOCOL_VERSION = 1;

/** The result of a `grant` frame: the `participant` event's sequence number, `null` when nothing changed. */
export const GrantResultSchema = z.strictObject({ seq: z.number().int().positive().nullable() });
export type GrantResult = z.infer<typeof GrantResultSchema>;

/** WebSocket close codes the server uses. */
export const BUS_CLOSE_CODES = Object.freeze({
  /** The server is shutting down: reconnect later. */
  goingAway: 1001,
  /** A frame exceeded the server's `maxFrameBytes` (set by ws). */
  tooBig: 1009,
  /** The mission's bus is closed or failed; try again later. */
  tryAgainLater: 1013,
  /** The subscriber fell too far behind; reconnect and resume from the last sequence seen. */
  slowConsumer: 4008,
  /** The mission is no longer served here. */
  missionGone: 4404,
  /** No successful hello in time. */
  helloTimeout: 4408,
  /** The hello named an unknown mission or carried a bad token; do not retry with the same token. */
  unauthenticated: 4401,
});

/** A request number chosen by the client, echoed in the answer. */
const RefSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** First frame of every connection: who is connecting to which mission, with what token. */
export const HelloFrameSchema = z.strictObject({
  op: z.literal('hello'),
  v: z.literal(PROTOCOL_VERSION),
  ref: RefSchema.optional(),
  mission: MissionIdSchema,
  participant: AgentNameSchema,
  token: z.string().min(1).max(1024),
});

/** Every frame a client may send, discriminated on `op`. */
export const ClientFrameSchema = z.discriminatedUnion('op', [
  HelloFrameSchema,
  PublishInputSchema.extend({ op: z.literal('publish'), ref: RefSchema }),
  CheckpointInputSchema.extend({ op: z.literal('checkpoint'), ref: RefSchema }),
  HandoffInputSchema.extend({ op: z.literal('handoff'), ref: RefSchema }),
  ConfigureIsolationInputSchema.extend({ op: z.literal('configure_isolation'), ref: RefSchema }),
  /** Backlog after `after`, then live events, as `event` frames. */
  z.strictObject({
    op: z.literal('subscribe'),
    ref: RefSchema,
    after: z.number().int().nonnegative(),
  }),
  z.strictObject({ op: z.literal('unsubscribe'), ref: RefSchema }),
  z.strictObject({ op: z.literal('resume_packet'), ref: RefSchema, handoff: EventIdSchema }),
  z.strictObject({ op: z.literal('participants'), ref: RefSchema }),
  /** Gives a participant a role or removes it (`role: null`); needs `grant`. Answered by a {@link GrantResultSchema} result. */
  z.strictObject({
    op: z.literal('grant'),
    ref: RefSchema,
    participant: AgentNameSchema,
    role: RoleSchema.nullable(),
  }),
  z.strictObject({
    op: z.literal('audit'),
    ref: RefSchema,
    limit: z.number().int().min(1).max(10_000).default(100),
  }),
]);
export type ClientFrame = z.infer<typeof ClientFrameSchema>;
/** What a client sends, before defaults. */
export type ClientFrameInput = z.input<typeof ClientFrameSchema>;

/** The answer to a successful hello. */
export const WelcomeFrameSchema = z.strictObject({
  type: z.literal('welcome'),
  mission: MissionInfoSchema,
  participant: AgentNameSchema,
  /** `null` when the token is valid but the name is not (or no longer) a participant: it can do nothing. */
  role: RoleSchema.nullable(),
  capabilities: z.array(CapabilitySchema),
  /** The stream's last sequence number. */
  head: z.number().int().nonnegative(),
  /** How often the server pings (ms). */
  heartbeat_ms: z.number().int().positive(),
  /** The largest frame the server accepts (bytes). */
  max_frame_bytes: z.number().int().positive(),
});
export type WelcomeFrame = z.infer<typeof WelcomeFrameSchema>;

/** The answer to a publish, checkpoint, handoff or configure_isolation: the event is acknowledged. */
export const AckFrameSchema = z.strictObject({
  type: z.literal('ack'),
  ref: RefSchema,
  seq: z.number().int().positive(),
  id: EventIdSchema,
  ts: z.string(),
});

/** The answer to `participants`. */
export const ParticipantsResultSchema = z.strictObject({
  participants: z.array(ParticipantInfoSchema),
  roles: z.record(RoleSchema, z.array(CapabilitySchema)),
  isolation: z.record(AgentNameSchema, IsolationProfileSchema),
});
export type ParticipantsResult = z.infer<typeof ParticipantsResultSchema>;

/** Every frame the server sends, discriminated on `type`. */
export const ServerFrameSchema = z.discriminatedUnion('type', [
  WelcomeFrameSchema,
  AckFrameSchema,
  /** The answer to `resume_packet`, `participants`, `audit`, `unsubscribe`. */
  z.strictObject({ type: z.literal('result'), ref: RefSchema, result: z.unknown() }),
  /** The subscription is live from `after`; `event` frames follow. */
  z.strictObject({
    type: z.literal('subscribed'),
    ref: RefSchema,
    after: z.number().int().nonnegative(),
    head: z.number().int().nonnegative(),
  }),
  z.strictObject({ type: z.literal('event'), event: BusEventSchema }),
  /** Consecutive events in one frame (sent when several are ready at once). */
  z.strictObject({ type: z.literal('events'), events: z.array(BusEventSchema).min(1) }),
  /** A refused request (`ref` of the request, `null` when the frame had none), or a subscription ended by the server. */
  z.strictObject({
    type: z.literal('error'),
    ref: RefSchema.nullable(),
    code: z.enum(BUS_ERROR_CODES),
    message: z.string(),
  }),
]);
export type ServerFrame = z.infer<typeof ServerFrameSchema>;

/** The `event` frame of an event line, built once and sent to every subscriber. */
export function eventFrame(line: string): string {
  return `{"type":"event","event":${line}}`;
}

/** The `events` frame of consecutive event lines. */
export function eventsFrame(lines: readonly string[]): string {
  return `{"type":"events","events":[${lines.join(',')}]}`;
}
