export {
  PolicyError,
  formatPolicyProblems,
  type PolicyErrorCode,
  type PolicyProblem,
} from './errors.js';
export { DurationSchema, parseDuration, formatDuration, type DurationInput } from './duration.js';
export {
  PolicyConfigSchema,
  PolicyLayerSchema,
  AgentPolicySchema,
  FleetBrakeSchema,
  ClassifySchema,
  ModeSchema,
  FailureClassSchema,
  FailureActionSchema,
  OnTimeoutSchema,
  MissionNameSchema,
  ChannelNameSchema,
  MODES,
  FAILURE_CLASSES,
  BUILTIN_POLICY,
  type PolicyConfig,
  type PolicyConfigInput,
  type PolicyLayer,
  type PolicyLayerInput,
  type AgentPolicy,
  type FleetBrake,
  type Classify,
  type Mode,
  type FailureClass,
  type FailureAction,
  type OnTimeout,
  type ResolvedLayer,
} from './policy-config.js';
export {
  resolvePolicy,
  describePolicySource,
  type ResolvePolicyOptions,
  type ResolvedPolicy,
  type PolicyTrace,
  type PolicySource,
} from './resolve-policy.js';
export {
  validatePolicy,
  parsePolicy,
  type PolicyContext,
  type ValidatePolicyResult,
} from './validate-policy.js';
export {
  nextBackoff,
  backoffState,
  type NextBackoffOptions,
  type BackoffSettings,
  type BackoffState,
} from './backoff.js';
export { classifyFailure, type Classification } from './classify-failure.js';
export { pickSubstitute, type SubstituteChoice } from './pick-substitute.js';
export {
  createFleetIndex,
  indexFleet,
  isFleetIndex,
  assessFleetBrake,
  type FleetIndex,
  type FleetSource,
  type BrakeStatus,
} from './fleet-index.js';
export { isDeathStorm, type StormThresholds } from './storm-rule.js';
export { decide, type DecideOptions } from './decide.js';
export { policyConfigJsonSchema } from './json-schema.js';
export type {
  AgentRef,
  AgentHealth,
  AgentHistory,
  ApprovalRecord,
  FailureInfo,
  FleetAgent,
  FleetView,
  HealthState,
  HealthyPeriod,
  RemedyAction,
} from './decide-input.js';
export type {
  Decision,
  DecisionAction,
  DecisionCommon,
  DecisionRule,
  NoneDecision,
  WaitDecision,
  WaitCause,
  RestartDecision,
  SubstituteDecision,
  AskDecision,
  RecordOnlyDecision,
  EscalateDecision,
  EscalationCause,
  ApprovalRequestDraft,
} from './decision.js';
export {
  decideProviderRevival,
  shouldSwitchBack,
  classifyProviderError,
  providerWaitDelay,
  type ProviderStatus,
  type ProviderHealth,
  type ProviderErrorClass,
  type ProviderWaitBackoff,
  type ProviderRevivalInput,
  type ProviderRevival,
  type SwitchBackInput,
} from './provider-revival.js';
