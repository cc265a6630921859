export { NotifyError, type NotifyErrorCode } from './errors.js';
export { silentLogger, redactingLogger, type Logger, type LogFields } from './logger.js';
export { parseApprovalCommand, type ApprovalCommand } from './approval-command.js';
export { agentReference, renderApprovalRequest, renderApprovalOutcome } from './approval-text.js';
export {
  createApprovalBroker,
  ApprovalsConfigSchema,
  type ApprovalBroker,
  type ApprovalBrokerOptions,
  type ApprovalsConfig,
  type ApprovalToken,
  type AskInput,
  type TokenDecision,
  type TrustedDecision,
} from './approval-broker.js';
export type {
  ApprovalChannel,
  AlertChannel,
  ApprovalSink,
  DecisionAttempt,
  DecisionResult,
  RejectedAttempt,
  RejectReason,
} from './channel.js';
export {
  AlertSchema,
  AlertKindSchema,
  formatAlertText,
  type Alert,
  type AlertKind,
  type AlertBatch,
} from './alert.js';
export {
  createAlertDispatcher,
  type AlertDispatcher,
  type AlertDispatcherOptions,
  type AlertInput,
  type DeliveryReport,
} from './alert-dispatcher.js';
export { createRateLimiter, type RateLimit, type RateLimiter } from './rate-limiter.js';
export { type RetryOptions } from './deliver.js';
export {
  createTelegramChannel,
  TelegramConfigSchema,
  type TelegramChannel,
  type TelegramChannelOptions,
  type TelegramConfig,
} from './telegram-channel.js';
export {
  createNostrChannel,
  NostrConfigSchema,
  type NostrChannel,
  type NostrChannelOptions,
  type NostrConfig,
  type RelayStatus,
} from './nostr-channel.js';
export {
  parseSecretKey,
  parsePublicKey,
  readSecretKeyFile,
  PublicKeySchema,
} from './nostr-keys.js';
export { openGiftWrap, type OpenedGiftWrap } from './nostr-gift-wrap.js';
export {
  createIssueTracker,
  IssuesConfigSchema,
  issueTitlePrefix,
  type IssueTracker,
  type IssueTrackerOptions,
  type IssuesConfig,
  type IssueRef,
  type DeathIssueResult,
} from './issue-tracker.js';
export {
  DeathReportSchema,
  ProbeSummarySchema,
  RestartRecordSchema,
  renderPostMortem,
  type DeathReport,
  type DeathReportInput,
} from './post-mortem.js';
export { EnvNameSchema } from './parse-config.js';
export { NOTIFY_JSON_SCHEMAS, toNotifyJsonSchemas } from './json-schemas.js';
