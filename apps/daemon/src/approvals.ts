/**
 * The daemon's approval requests: @pit/notify's broker over the one file
 * `<state_dir>/approvals.json`, holding @pit/cell-spec's `Approval` records (the same records
 * the policy decides on). The daemon calls the broker directly; HTTP and CLI answers reach it
 * through {@link ApprovalStore.decide} once their caller is authenticated (over HTTP by a bearer
 * token, recorded as its identity: `operator` or a named approver; the CLI without a daemon by
 * its access to the state directory), Telegram and Nostr answers through the broker's channels, which
 * accept only their configured approvers. Owns opening, asking, answering and withdrawing;
 * never decides what an answer means (the policy does).
 */
import { promises as fs } from 'node:fs';
import type { Approval } from '@pit/cell-spec';
import { createApprovalBroker, type ApprovalBroker, type ApprovalChannel } from '@pit/notify';
import { approvalsPath, prepareApprovalsFile } from './approvals-file.js';
import type { ApprovalDecisionResult } from './http.js';
import { silentLogger, type Logger } from './logger.js';

export { readApprovals } from './approvals-file.js';

/** The supervised agent an approval is about: its slot key (`<cell uuid>/<name>`, or `host/<name>` outside cells). */
export function approvalKey(approval: Pick<Approval, 'agent' | 'cell_uuid'>): string {
  return `${approval.cell_uuid ?? 'host'}/${approval.agent}`;
}

/** What {@link ApprovalStore.ask} takes: the request's fields the policy chose (times in ms since epoch). */
export type AskInput = Pick<
  Approval,
  'agent' | 'kind' | 'proposed' | 'reasons' | 'channels' | 'expires_at' | 'on_timeout'
> &
  Partial<Pick<Approval, 'cell_uuid' | 'mission' | 'substitute'>>;

/** The daemon's approval requests: single-use, persisted, answered from any channel. */
export interface ApprovalStore {
  /** Opens a request (or returns the agent's pending one); channels show it in the background. */
  ask(input: AskInput): Promise<Approval>;
  get(id: string): Approval | undefined;
  /** The latest request about an agent key (see {@link approvalKey}). */
  latest(key: string): Approval | undefined;
  list(status?: Approval['status']): Approval[];
  /** Answers a pending request once (a trusted caller: the HTTP layer checked the token); later answers are refused. */
  decide(
    id: string,
    decision: 'approve' | 'deny',
    answer: { by?: string; channel: 'http' | 'cli'; reason?: string; now: number },
  ): Promise<ApprovalDecisionResult>;
  /** Marks pending requests past their expiry as expired; returns them. */
  expire(now: number): Promise<Approval[]>;
  /** Withdraws a pending request (the agent recovered, unless `reason` says otherwise). */
  cancel(id: string, now: number, reason?: string): Promise<void>;
  /** Stops the broker (channel sends in flight are cancelled). */
  close(): Promise<void>;
  /** A damaged approvals file kept aside when the store opened (for the status's problems). */
  problems(): readonly string[];
}

/** Options of {@link openApprovalStore}. */
export interface OpenApprovalStoreOptions {
  stateDir: string;
  /** Telegram, Nostr…: they show requests and bring answers back. @default none (HTTP and CLI only) */
  channels?: ApprovalChannel[];
  /** Called for a decision that arrived through a channel (not through {@link ApprovalStore.decide}). */
  onChannelDecision?: (approval: Approval) => void;
  logger?: Logger;
  /** Clock, ms since epoch. */
  now?: () => number;
}

/** Who answered when an HTTP or CLI caller names nobody. */
const ANONYMOUS_APPROVER = 'daemon';

/**
 * Opens the approvals: migrates or sets aside what the previous version left in the state
 * directory, then starts @pit/notify's broker on `approvals.json` (shown on every configured
 * channel, first valid answer wins, expiry on {@link ApprovalStore.expire}).
 * @throws {NotifyError} NOTIFY_STORE_INVALID / CellError CELL_IO when the state directory cannot be used.
 */
export async function openApprovalStore(options: OpenApprovalStoreOptions): Promise<ApprovalStore> {
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? Date.now;
  await fs.mkdir(options.stateDir, { recursive: true });
  const problems = await prepareApprovalsFile({ stateDir: options.stateDir, logger, now: now() });
  const broker: ApprovalBroker = createApprovalBroker({
    path: approvalsPath(options.stateDir),
    channels: options.channels ?? [],
    config: { on_expiry: 'deny' },
    clock: () => new Date(now()),
    expiryIntervalMs: 0,
    logger,
    onDecision: (request) => {
      const via = request.decided_via;
      if (via === 'http' || via === 'cli' || via === 'expiry') return;
      options.onChannelDecision?.(request);
    },
  });
  await broker.start();
  // The newest request per agent key, so that latest() (asked at every evaluation) copies one request, not all.
  const newest = new Map<string, { id: string; requested_at: number }>();
  const remember = (approval: Approval): Approval => {
    const known = newest.get(approvalKey(approval));
    if (!known || known.requested_at <= approval.requested_at)
      newest.set(approvalKey(approval), { id: approval.id, requested_at: approval.requested_at });
    return approval;
  };
  for (const approval of broker.list()) remember(approval);
  return {
    ask: async (input) =>
      remember(
        await broker.ask({
          agent: input.agent,
          mission: input.mission ?? 'outside cells',
          ...(input.cell_uuid ? { cell_uuid: input.cell_uuid } : {}),
          kind: input.kind,
          reasons: input.reasons.length > 0 ? input.reasons : [`${input.agent} is dead`],
          proposed: input.proposed,
          ...(input.substitute ? { substitute: input.substitute } : {}),
          channels: input.channels,
          expires_at: Math.max(input.expires_at, now() + 1),
          on_timeout: input.on_timeout,
        }),
      ),
    get: (id) => broker.get(id),
    latest: (key) => {
      const id = newest.get(key)?.id;
      return id === undefined ? undefined : broker.get(id);
    },
    list: (status) => broker.list(status),
    decide: (id, decision, answer) => decideThrough(broker, id, decision, answer),
    expire: (at) => broker.expire(new Date(at)),
    async cancel(id, _now, reason) {
      await broker.cancel(id, reason ?? 'the agent recovered');
    },
    close: () => broker.close(),
    problems: () => problems,
  };
}

/** An authenticated HTTP or CLI answer, recorded by the broker as the caller's; refusals as values. */
async function decideThrough(
  broker: ApprovalBroker,
  id: string,
  decision: 'approve' | 'deny',
  answer: { by?: string; channel: 'http' | 'cli'; reason?: string },
): Promise<ApprovalDecisionResult> {
  const result = await broker.decideTrusted({
    id,
    decision,
    channel: answer.channel,
    by: answer.by ?? ANONYMOUS_APPROVER,
    ...(answer.reason ? { reason: answer.reason } : {}),
  });
  if (!result.ok) {
    const reason =
      result.reason === 'unknown_request'
        ? 'not_found'
        : result.reason === 'expired'
          ? 'expired'
          : 'already_decided';
    return { ok: false, reason, message: `approval request ${id}: ${result.detail}` };
  }
  return {
    ok: true,
    id,
    decision,
    agent: result.request.agent,
    ...(result.request.cell_uuid ? { cell: result.request.cell_uuid } : {}),
  };
}
