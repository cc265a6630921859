export { BusError, BUS_ERROR_CODES, type BusErrorCode } from './errors.js';
export { silentLogger, type BusLogger, type LogFields } from './logger.js';
export {
  ROLES,
  CAPABILITIES,
  RoleSchema,
  CapabilitySchema,
  DEFAULT_ROLE_CAPABILITIES,
  RoleOverridesSchema,
  resolveRoleCapabilities,
  type Role,
  type Capability,
  type RoleOverrides,
} from './roles.js';
export {
  SYSTEM_SENDER,
  BusEventSchema,
  MessageEventSchema,
  CheckpointEventSchema,
  HandoffEventSchema,
  ParticipantEventSchema,
  IsolationEventSchema,
  WorkspaceCheckpointRefSchema,
  PublishInputSchema,
  CheckpointInputSchema,
  HandoffInputSchema,
  ConfigureIsolationInputSchema,
  EventIdSchema,
  EpochSchema,
  type BusEvent,
  type BusEventKind,
  type MessageEvent,
  type CheckpointEvent,
  type HandoffEvent,
  type ParticipantEvent,
  type IsolationEvent,
  type WorkspaceCheckpointRef,
  type PublishInput,
  type CheckpointInput,
  type HandoffInput,
  type ConfigureIsolationInput,
} from './bus-event.js';
export {
  BusConfigSchema,
  FsyncPolicySchema,
  LogConfigSchema,
  MissionInfoSchema,
  ParticipantConfigSchema,
  type BusConfig,
  type BusConfigInput,
  type FsyncPolicy,
  type LogConfig,
  type MissionInfo,
  type ParticipantConfig,
} from './config.js';
export { JSON_SCHEMAS, toJsonSchemas } from './json-schemas.js';
export { hashToken, createToken, tokenMatches } from './tokens.js';
export {
  ResumePacketSchema,
  ParticipantInfoSchema,
  type ResumePacket,
  type ParticipantInfo,
} from './resume-packet.js';
export { inboxFileName, isDirectEvent, type DirectEvent } from './inbox.js';
export { segmentFileName, type LogRepair, type StoredEvent } from './segment-log.js';
export {
  openSegmentLog,
  withLocalCopy,
  type BusEventLog,
  type BusEventLogBase,
  type BusEventLogFactory,
  type OpenBusEventLogOptions,
  type OwnedBusEventLog,
  type SharedBusEventLog,
  type SharedAppendResult,
} from './event-log.js';
export { readBusLog, type BusLogEntry, type ReadBusLogOptions } from './read-bus-log.js';
export type { AuditEntry } from './audit-trail.js';
export {
  createDirectoryParticipantStore,
  ParticipantRosterSchema,
  StoredParticipantSchema,
  type ParticipantRoster,
  type ParticipantStore,
  type SharedRoleChange,
  type StoredParticipant,
} from './participant-store.js';
export {
  MissionBus,
  BusExportSchema,
  GrantInputSchema,
  type GrantInput,
  type IgnoredRoleClaim,
  type BusExport,
  type OpenMissionBusOptions,
  type ReadOptions,
  type SubscribeOptions,
  type RegisterParticipantInput,
} from './mission-bus.js';
export { buildResumePacket } from './build-resume-packet.js';
export {
  PROTOCOL_VERSION,
  BUS_CLOSE_CODES,
  ClientFrameSchema,
  ServerFrameSchema,
  WelcomeFrameSchema,
  ParticipantsResultSchema,
  GrantResultSchema,
  type GrantResult,
  type ClientFrame,
  type ClientFrameInput,
  type ServerFrame,
  type WelcomeFrame,
  type ParticipantsResult,
} from './protocol.js';
export {
  createBusServer,
  type BusServer,
  type BusServerOptions,
  type BusConnectionInfo,
  type BusServerStats,
} from './server.js';
export {
  connectBus,
  type BusClient,
  type BusClientState,
  type BusAck,
  type BusSubscription,
  type ClientSubscribeOptions,
  type ConnectBusOptions,
  type ReconnectOptions,
} from './client.js';
