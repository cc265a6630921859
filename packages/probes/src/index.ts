export { ProbeError, type ProbeErrorCode } from './errors.js';
export type { Logger } from './logger.js';
export {
  DEFAULT_PROBE_TIMEOUT_MS,
  type ProbeResult,
  type ProbeOptions,
  type ProbeKind,
  type ProbeFailure,
} from './probe-result.js';
export { tcpProbe, type TcpTarget, type TcpProbeResult } from './tcp-probe.js';
export {
  createHttpProbe,
  httpProbe,
  GatewayHealthSchema,
  DEFAULT_MAX_BODY_BYTES,
  type HttpTarget,
  type HttpProbeResult,
  type HttpProbe,
} from './http-probe.js';
export { wsProbe, type WsTarget, type WsProbeResult } from './ws-probe.js';
export {
  readProcessStat,
  readProcessStatSync,
  readProcessStartTime,
  processStartedAtMs,
  parseProcessStat,
  scanProcesses,
  listProcessIds,
  type ProcessStat,
  type ProcessInfo,
} from './proc.js';
export {
  createProcessTable,
  type ProcessTable,
  type ProcessSnapshot,
  type ProcessTableOptions,
} from './process-table.js';
export {
  processProbe,
  type ProcessTarget,
  type ProcessProbeOptions,
  type ProcessProbeResult,
} from './process-probe.js';
export {
  heartbeatProbe,
  createHeartbeatProbe,
  createHeartbeatCheck,
  type HeartbeatCheck,
  type HeartbeatRule,
  type HeartbeatTarget,
  type HeartbeatProbe,
  type HeartbeatProbeResult,
  type CycleProgress,
} from './heartbeat-probe.js';
export { execProbe, type ExecTarget, type ExecProbeResult } from './exec-probe.js';
export {
  createPhiAccrualDetector,
  type PhiAccrualDetector,
  type PhiAccrualOptions,
  type PhiAccrualStats,
} from './phi-accrual.js';
export {
  createAssessor,
  type Assessor,
  type AssessorOptions,
  type Assessment,
  type Health,
  type HealthNote,
  type HealthRule,
  type ProbeRule,
  type ProbeState,
  type ProbeStatus,
  type ProcessExit,
  type TrackOptions,
} from './assessor.js';
export {
  createProbeScheduler,
  type ProbeScheduler,
  type ProbeSchedulerOptions,
  type ScheduledProbe,
  type AgentSchedule,
  type ProbeEvent,
  type ProbeRunContext,
  type RunReason,
  type SchedulerStats,
} from './scheduler.js';
export {
  createHealthServer,
  HealthResponseSchema,
  type HealthServer,
  type HealthServerOptions,
  type HealthServerAddress,
  type HealthFields,
  type HealthResponse,
} from './health-server.js';
