/**
 * Local stand-ins for the services @pit/notify talks to, for this package's tests and the
 * daemon's end-to-end tests: a real Nostr relay, and HTTP servers speaking the Telegram Bot
 * API and the GitHub/Gitea issues API for the real grammY and Octokit clients.
 * Not part of the published package.
 */
export { startNostrRelay, type TestNostrRelay } from './nostr-relay.js';
export {
  startTelegramBotApi,
  type TestTelegramBotApi,
  type TelegramUser,
  type StoredMessage,
  type RecordedCall,
} from './telegram-bot-api.js';
export type { Fault } from './http-util.js';
export {
  connectTestApprover,
  forgeGiftWrap,
  garbageGiftWrap,
  type TestApprover,
  type InboxMessage,
} from './nostr-approver.js';
export {
  startIssuesApi,
  type TestIssuesApi,
  type IssuesFlavour,
  type StoredIssue,
  type IssuesCall,
} from './issues-api.js';
