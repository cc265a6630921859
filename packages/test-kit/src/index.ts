/**
 * @pit/test-kit: what the Pit's tests, fault suite and benchmarks share. Local stand-ins for the
 * services the Pit talks to (a real Nostr relay and approver, HTTP servers speaking the Telegram
 * Bot API and the GitHub/Gitea issues API), the shared test agent, and the helpers every suite
 * needs (bounded waits, free ports, temp dirs and process groups, running TypeScript children).
 * Private: never published, never imported by code that ships.
 */
export { waitFor, within } from './wait-for.js';
export { freePort } from './free-port.js';
export { tempDir, reapLater, killReaped, cleanup, isGone } from './scratch.js';
export { spawnTsx, type SpawnTsxOptions } from './spawn-tsx.js';
export { testAgentPath } from './test-agent.js';
export { startNostrRelay, type TestNostrRelay } from './servers/nostr-relay.js';
export {
  connectTestApprover,
  forgeGiftWrap,
  garbageGiftWrap,
  type TestApprover,
  type InboxMessage,
} from './servers/nostr-approver.js';
export {
  startTelegramBotApi,
  type TestTelegramBotApi,
  type TelegramUser,
  type StoredMessage,
  type RecordedCall,
} from './servers/telegram-bot-api.js';
export {
  startIssuesApi,
  type TestIssuesApi,
  type IssuesFlavour,
  type StoredIssue,
  type IssuesCall,
} from './servers/issues-api.js';
export type { Fault } from './servers/http-util.js';
export {
  startNatsCluster,
  natsInstalled,
  natsServerPath,
  type NatsClusterOptions,
  type TestNatsCluster,
  type TestNatsNode,
} from './servers/nats-cluster.js';
