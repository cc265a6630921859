export {
  PitError,
  CellError,
  toCellError,
  type CellErrorCode,
  type PitErrorOptions,
} from './errors.js';
export { formatIssues } from './format-issues.js';
export {
  AgentNameSchema,
  AGENT_NAME_PATTERN,
  CellUuidSchema,
  assertAgentName,
  assertCellUuid,
  type AgentName,
} from './agent-name.js';
export {
  cellPaths,
  DEFAULT_CELLS_ROOT,
  heartbeatPath,
  PRODUCTION_CELLS_ROOT,
  type CellPaths,
} from './paths.js';
export {
  writeFileAtomic,
  writeJsonAtomic,
  readFileSafe,
  readJsonFile,
  parseJsonWith,
  fsyncDir,
  removeStaleTemps,
  writeNewFile,
  atomicTempPath,
  type WriteFileAtomicOptions,
  type WriteNewFileOptions,
  type ReadFileSafeOptions,
} from './atomic.js';
export {
  componentsBeneath,
  openDirectoryBeneath,
  openDirectoryBeneathSync,
  openFileBeneath,
  openFileBeneathSync,
  readFileBeneath,
  withParentBeneath,
  writeFileAtomicBeneath,
  type BeneathDirectory,
  type OpenBeneathOptions,
  type OpenFileBeneathOptions,
  type WriteFileAtomicBeneathOptions,
} from './beneath.js';
export { isProcessAlive } from './process-alive.js';
export { withFileLock, type FileLockOptions } from './lock.js';
export { assertCellDir, ensureCellSubdir, type EnsureCellSubdirOptions } from './cell-dir.js';
export {
  IsolationLevelSchema,
  IsolationProfileSchema,
  type IsolationLevel,
  type IsolationProfile,
} from './isolation.js';
export {
  CellStatusSchema,
  CELL_TRANSITIONS,
  SUPERVISED_STATUSES,
  TRANSITION_EVENTS,
  canTransition,
  assertTransition,
  type CellStatus,
} from './lifecycle.js';
export {
  CellManifestSchema,
  CellAgentSchema,
  IsoTimestampSchema,
  MANIFEST_MAX_BYTES,
  readManifest,
  parseManifest,
  updateManifest,
  type ParsedManifest,
  type CellManifest,
  type CellManifestInput,
  type CellAgent,
  type UpdateManifestOptions,
} from './manifest.js';
export { transitionCell, type TransitionCellOptions } from './transition.js';
export { SEED_MANIFEST_DEFAULTS, applySeedDefaults, type SeedDefaults } from './seed-manifest.js';
export {
  CellEventSchema,
  AnyCellEventSchema,
  RolledBackFileSchema,
  MovedAsideFileSchema,
  DecisionActionSchema,
  OperatorActionSchema,
  type OperatorAction,
  CELL_EVENT_KINDS,
  isCellEventKind,
  parseCellEvent,
  type CellEvent,
  type CellEventKind,
  type CellEventOf,
  type AnyCellEvent,
  type KnownCellEvent,
  type CellEventInput,
  type AgentEventInput,
  type ParsedCellEvent,
} from './event-kinds.js';
export {
  EVENT_LINE_MAX_BYTES,
  appendEvent,
  createEventAppender,
  readEvents,
  readEventLog,
  serializeEvent,
  serializeLogRecord,
  type LogRecordInput,
  type EventAppender,
  type EventLogEntry,
  type AppendEventOptions,
  type ReadEventsOptions,
  type EventLogFileEntry,
} from './events.js';
export {
  rotatedLogPath,
  rotateLogFiles,
  openLogFile,
  openLogFiles,
  type RotationNaming,
  type LogRotationLimits,
  type LogFilesOptions,
  type LogFile,
} from './log-rotation.js';
export {
  HeartbeatSchema,
  HEARTBEAT_MAX_BYTES,
  writeHeartbeat,
  readHeartbeat,
  readHeartbeatSync,
  type Heartbeat,
  type HeartbeatInput,
  type WriteHeartbeatOptions,
} from './heartbeat.js';
export {
  AgentStateSchema,
  CellStateSchema,
  CELL_STATE_MAX_BYTES,
  readCellState,
  writeCellState,
  type AgentState,
  type CellState,
} from './state.js';
export { provisionCell, PROVISIONING_PREFIX, type ProvisionCellOptions } from './provision.js';
export {
  describeDiscoveryProblem,
  discoverCells,
  type Discovery,
  type DiscoveredCell,
  type DiscoveryProblem,
  type DiscoveryIgnored,
  type DiscoverCellsOptions,
} from './discover.js';
export { destroyCell, DESTROYING_PREFIX, type DestroyCellOptions } from './destroy.js';
export {
  ApprovalSchema,
  ApprovalsFileSchema,
  ApprovalIdSchema,
  ApprovalStatusSchema,
  ApprovalDecisionSchema,
  ApprovalKindSchema,
  RemedyActionSchema,
  OnTimeoutSchema,
  DecisionSourceSchema,
  timeoutDecision,
  type Approval,
  type ApprovalsFile,
  type ApprovalStatus,
  type ApprovalDecision,
  type ApprovalKind,
  type RemedyAction,
  type OnTimeout,
} from './approval.js';
export { JSON_SCHEMAS, toJsonSchemas } from './json-schemas.js';
export {
  silentLogger,
  redactingLogger,
  describeError,
  type Logger,
  type LogFields,
} from './logger.js';
export { Sha256Schema, EnvNameSchema } from './common-schemas.js';
