export { SnapshotError, type SnapshotErrorCode } from './errors.js';
export { silentLogger, type Logger } from './logger.js';
export {
  createSnapshotStore,
  type SnapshotStore,
  type SnapshotStoreOptions,
  type SnapshotOptions,
  type SnapshotResult,
  type ConfigValidator,
  type RollbackOptions,
  type RollbackResult,
  type HistoryEntry,
  type VerifyResult,
  type GcResult,
} from './snapshot-store.js';
export type {
  RolledBackFile,
  MovedAsideFile,
  ConfigRolledBackRecord,
  RecoveryOutcome,
} from './rollback.js';
export type { CanonicalSource } from './canonical-git.js';
export type { ConfigDiff, ConfigDiffFile, DiffConfigOptions } from './config-diff.js';
export { storePaths, type StorePaths } from './store-layout.js';
export { unifiedDiff, type UnifiedDiffOptions } from './unified-diff.js';
export {
  createCheckpoint,
  listCheckpoints,
  pruneCheckpoints,
  checkpointsDir,
  type Checkpoint,
  type CheckpointList,
  type CheckpointProblem,
  type CreateCheckpointOptions,
  type CreatedCheckpoint,
  type PruneCheckpointsOptions,
  type PruneResult,
} from './checkpoint.js';
export {
  restoreCheckpoint,
  restoreLimits,
  recoverWorkspace,
  type RestoreCheckpointOptions,
  type RestoredCheckpoint,
} from './restore-checkpoint.js';
export {
  CheckpointManifestSchema,
  CHECKPOINT_NAME_PATTERN,
  type CheckpointManifest,
} from './checkpoint-layout.js';
