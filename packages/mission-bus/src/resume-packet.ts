import { AgentNameSchema, IsolationProfileSchema } from '@pit/cell-spec';
import { z } from 'zod';
import {
  CheckpointEventSchema,
  HandoffEventSchema,
  SenderSchema,
  WorkspaceCheckpointRefSchema,
} from './bus-event.js';
import { MissionInfoSchema } from './config.js';
import { CapabilitySchema, RoleSchema } from './roles.js';

/** A participant as the bus sees it now. */
export const ParticipantInfoSchema = z.strictObject({
  name: AgentNameSchema,
  role: RoleSchema,
  capabilities: z.array(CapabilitySchema),
});
export type ParticipantInfo = z.infer<typeof ParticipantInfoSchema>;

/**
 * Everything a participant needs to resume work handed to it: who handed what over and why,
 * the checkpoint to resume from, who else is on the mission and what they may do, how each
 * is isolated, and where the stream stands.
 */
export const ResumePacketSchema = z.strictObject({
  mission: MissionInfoSchema,
  /** The handoff event itself. */
  handoff: HandoffEventSchema,
  /** The participant taking over (`handoff.to`). */
  recipient: AgentNameSchema,
  /** Who published the handoff (the previous owner, or `@pit` when the daemon substituted a dead agent). */
  sender: SenderSchema,
  /** Whose work it was (`handoff.from`). */
  from: AgentNameSchema,
  note: z.string(),
  /** The checkpoint to resume from. */
  checkpoint: CheckpointEventSchema,
  /** The workspace checkpoint archive to restore first: the handoff's, else the checkpoint's, else null. */
  workspace: WorkspaceCheckpointRefSchema.nullable(),
  participants: z.array(ParticipantInfoSchema),
  /** Capabilities of every role as configured. */
  roles: z.record(RoleSchema, z.array(CapabilitySchema)),
  /** Isolation profile of each participant that has one. */
  isolation: z.record(AgentNameSchema, IsolationProfileSchema),
  stream: z.strictObject({
    /** Events in the stream when the packet was built (the last sequence number). */
    length: z.number().int().nonnegative(),
    /** Subscribe after this sequence number (the checkpoint's) to read what happened since. */
    resume_after: z.number().int().nonnegative(),
  }),
});
export type ResumePacket = z.infer<typeof ResumePacketSchema>;
