export {
  runDaemon,
  sweepOnce,
  type DaemonOptions,
  type RunDaemonOptions,
  type DaemonHandle,
  type ReloadResult,
} from './daemon.js';
export { applyConfigOverrides, type ConfigOverrides } from './config-overrides.js';
export {
  loadConfig,
  loadConfigFile,
  locateConfig,
  parseConfig,
  assertConfigPermissions,
  resolveConfigPaths,
  formatConfigProblems,
  EMBEDDED_DEFAULT_CONFIG,
  SYSTEM_CONFIG_PATH,
  type LoadedConfig,
  type LoadConfigOptions,
  type LocateConfigOptions,
  type ConfigLocation,
  type ConfigSource,
  type ConfigProblem,
  type ParseConfigResult,
} from './config.js';
export {
  PitConfigSchema,
  AgentConfigSchema,
  AgentProbesSchema,
  EnvNameSchema,
  secretEnvNames,
  mergesStderr,
  type PitConfig,
  type AgentConfig,
} from './config-schema.js';
export {
  createSupervisor,
  type Supervisor,
  type SupervisorOptions,
  type FleetStatus,
  type AgentStatus,
  type SweepReport,
  type StopOutcome,
  type AgentLeft,
} from './supervisor.js';
export { effectivePolicy, approvalChannels } from './effective-policy.js';
export { movedDefaults } from './config-deprecations.js';
export { readFleetStatus } from './fleet-status.js';
export { agentStatePath, readAgentStates } from './state-store.js';
export { resolveAgentPolicies, type AgentPolicyReport } from './policies.js';
export { createNotifier, silentNotifier, type Notifier, type DeathNotice } from './notifier.js';
export { publishHandoff, type PublishHandoffOptions, type PublishedHandoff } from './handoff.js';
export { composeAgentEnv, INHERITED_ENV } from './agent-env.js';
export {
  createExecutor,
  findInPath,
  type Executor,
  type ExecutorOptions,
  type StartAgentOptions,
  type AdoptAgentOptions,
  type AgentProcess,
  type AgentExit,
} from './executor.js';
export { sandboxArgv, SANDBOX_LAUNCHER, type SandboxSpec, type SandboxUser } from './sandbox.js';
export {
  createPodman,
  podmanAvailable,
  CONTAINERS_CONF,
  DEFAULT_AGENT_IMAGE,
  type Podman,
  type PodmanOptions,
  type ContainerSpec,
} from './podman.js';
export {
  writeDaemonFile,
  readDaemonFile,
  removeDaemonFile,
  daemonFilePath,
  DaemonFileSchema,
  type DaemonFile,
} from './daemon-file.js';
export {
  acquireDaemonLock,
  readDaemonLock,
  lockPath,
  type DaemonLock,
  type LockHolder,
} from './lock.js';
export {
  createLogger,
  silentLogger,
  LOG_LEVELS,
  type Logger,
  type DaemonLogger,
  type LoggerOptions,
  type LogLevel,
} from './logger.js';
export {
  startHttpServer,
  ApprovalDecisionBodySchema,
  type HttpServer,
  type HttpServerOptions,
  type HttpHandlers,
  type ApprovalDecisionResult,
} from './http.js';
export {
  authorize,
  assertListenAllowed,
  httpCredentials,
  httpWarnings,
  isAllowedHost,
  isLoopbackHost,
  tokenProblem,
  MIN_TOKEN_LENGTH,
  OPERATOR_IDENTITY,
  type Credential,
} from './http-access.js';
export {
  createMetricsRegistry,
  LATENCY_BUCKETS_S,
  type MetricsRegistry,
  type Counter,
  type Gauge,
  type Histogram,
} from './metrics.js';
export {
  createCellEventFeed,
  type EventFeed,
  type FeedEvent,
  type FeedQuery,
} from './event-feed.js';
export {
  openApprovalStore,
  readApprovals,
  approvalKey,
  type ApprovalStore,
  type AskInput,
  type OpenApprovalStoreOptions,
} from './approvals.js';
export { prepareApprovalsFile, approvalsPath } from './approvals-file.js';
export { approvalView, type ApprovalView } from './approval-view.js';
export { createBusHub, type BusHub, type BusHubOptions } from './bus-hub.js';
export {
  checkProcess,
  readProcessStat,
  signalGroup,
  signalProcess,
  type ProcessStat,
  type ProcessLiveness,
} from './proc.js';
export { DaemonError, type DaemonErrorCode } from './errors.js';
export { DASHBOARD_HTML } from './dashboard.js';
export { startChannels, type Channels } from './channels.js';
export {
  readMembers,
  updateMembers,
  grant,
  withdraw,
  migration,
  membersPath,
  MembersFileSchema,
  type MembersFile,
  type MembersChange,
} from './membership.js';
export { checkpointStore } from './checkpoint-store.js';
export { recordControlOffline, type OfflineControlOptions } from './offline-controls.js';
export { resolveAgentRef, type AgentRefCandidate, type AgentRefResolution } from './agent-ref.js';
export type { ControlRequest, ControlResult } from './controls.js';
export {
  buildIncidents,
  describeEvent,
  isStoryEvent,
  type Incident,
  type StoryEvent,
} from './incidents.js';
export { collectAgentEvents, readAgentStory, type AgentStory } from './agent-story.js';
export {
  agentLogPaths,
  findAgentLog,
  streamLog,
  readLogLines,
  readLogTail,
  readSteady,
  rotationMark,
  type FoundLog,
  type LogStream,
  type RotationMark,
} from './agent-log.js';
export { copyRotateLog, ROTATING_SUFFIX, type CopyRotateOptions } from './log-copy-rotation.js';
export {
  cgroup2MountOf,
  favorDynmods,
  setFavorDynmods,
  type Cgroup2Mount,
  type FavorDynmodsOutcome,
} from './cgroup-favordynmods.js';
