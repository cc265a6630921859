import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeJsonAtomic } from '@pit/cell-spec';
import {
  ApprovalStoreSchema,
  createApprovalBroker,
  type ApprovalBroker,
  type ApprovalChannel,
  type ApprovalRequest,
} from '@pit/notify';
import type { ApprovalDecisionResult } from './http.js';
import type { Logger } from './logger.js';

/**
 * One approval request as the loop sees it: @pit/notify's request (id, agent, reasons, status,
 * who decided and through which channel) joined with what the policy needs (the agent's key,
 * the request's kind, the proposed remedy, what happens on expiry). Times are ms since epoch.
 */
export const StoredApprovalSchema = z.strictObject({
  id: z.string().min(1),
  /** The supervised agent's key (`<cell uuid>/<name>` or `host/<name>`). */
  key: z.string().min(1),
  agent: z.string().min(1),
  cell: z.string().optional(),
  mission: z.string().optional(),
  kind: z.enum(['revive', 'escalation']),
  proposed: z.enum(['restart', 'rollback_and_restart', 'substitute']),
  substitute: z.string().optional(),
  reasons: z.array(z.string()),
  channels: z.array(z.string()),
  status: z.enum(['pending', 'approved', 'denied', 'expired', 'cancelled']),
  requested_at: z.number(),
  expires_at: z.number(),
  on_timeout: z.enum(['record_only', 'proceed', 'restart', 'rollback_and_restart', 'substitute']),
  decided_at: z.number().optional(),
  by: z.string().optional(),
  channel: z.string().optional(),
  reason: z.string().optional(),
});
export type StoredApproval = z.infer<typeof StoredApprovalSchema>;

/** What the daemon keeps beside @pit/notify's request (`<state_dir>/approval-meta.json`). */
const MetaSchema = z.strictObject({
  key: z.string(),
  kind: z.enum(['revive', 'escalation']),
  proposed: z.enum(['restart', 'rollback_and_restart', 'substitute']),
  channels: z.array(z.string()),
  requested_at: z.number(),
  expires_at: z.number(),
  on_timeout: z.enum(['record_only', 'proceed', 'restart', 'rollback_and_restart', 'substitute']),
  by: z.string().optional(),
  reason: z.string().optional(),
});
type Meta = z.infer<typeof MetaSchema>;
const MetaFileSchema = z.strictObject({
  version: z.literal(1),
  meta: z.record(z.string(), MetaSchema),
});

/** What {@link ApprovalStore.ask} takes. */
export type AskInput = Omit<
  StoredApproval,
  'id' | 'status' | 'decided_at' | 'by' | 'channel' | 'reason'
>;

/** The daemon's approval requests: single-use, persisted, answered from any channel. */
export interface ApprovalStore {
  ask(input: AskInput): Promise<StoredApproval>;
  get(id: string): StoredApproval | undefined;
  /** The latest request about an agent key. */
  latest(key: string): StoredApproval | undefined;
  list(status?: StoredApproval['status']): StoredApproval[];
  /** Answers a pending request once (a trusted caller: the HTTP layer checked the token); later answers are refused. */
  decide(
    id: string,
    decision: 'approve' | 'deny',
    answer: { by?: string; channel: 'http' | 'cli'; reason?: string; now: number },
  ): Promise<ApprovalDecisionResult>;
  /** Marks pending requests past their expiry as expired; returns them. */
  expire(now: number): Promise<StoredApproval[]>;
  /** Withdraws a pending request (the agent recovered). */
  cancel(id: string, now: number): Promise<void>;
  /** Stops the broker (channel sends in flight are cancelled). */
  close(): Promise<void>;
}

/** Options of {@link openApprovalStore}. */
export interface OpenApprovalStoreOptions {
  stateDir: string;
  /** Telegram, Nostr…: they show requests and bring answers back. @default none (HTTP and CLI only) */
  channels?: ApprovalChannel[];
  /** Called for a decision that arrived through a channel (not through {@link ApprovalStore.decide}). */
  onChannelDecision?: (approval: StoredApproval) => void;
  logger?: Logger;
  /** Clock, ms since epoch. */
  now?: () => number;
}

/**
 * Opens the approvals: @pit/notify's approval broker (`<state_dir>/approvals.json`, shown on
 * every configured channel, first valid answer wins, expiry) plus the loop's own fields
 * (`<state_dir>/approval-meta.json`). HTTP and CLI answers reach it through
 * {@link ApprovalStore.decide} once the caller is authenticated.
 */
export async function openApprovalStore(options: OpenApprovalStoreOptions): Promise<ApprovalStore> {
  const metaPath = join(options.stateDir, 'approval-meta.json');
  await fs.mkdir(options.stateDir, { recursive: true });
  const meta: Record<string, Meta> = await readJsonFile(metaPath, MetaFileSchema)
    .then((file) => file.meta)
    .catch(() => ({}));
  const saveMeta = async () => {
    const known = new Set(broker.list().map((request) => request.id));
    for (const id of Object.keys(meta)) if (!known.has(id)) delete meta[id];
    await writeJsonAtomic(metaPath, { version: 1, meta });
  };
  // The daemon authenticates HTTP and CLI callers itself; it speaks to the broker with its own token.
  const internal = randomBytes(24).toString('hex');
  const now = options.now ?? Date.now;
  const compose = (request: ApprovalRequest | undefined): StoredApproval | undefined =>
    request ? joinApproval(request, meta[request.id]) : undefined;
  let deciding = false;
  const broker: ApprovalBroker = createApprovalBroker({
    path: join(options.stateDir, 'approvals.json'),
    channels: options.channels ?? [],
    tokens: [{ name: 'daemon', token: internal }],
    config: { on_expiry: 'deny' },
    clock: () => new Date(now()),
    expiryIntervalMs: 0,
    ...(options.logger ? { logger: options.logger } : {}),
    onDecision: (request) => {
      if (
        deciding ||
        request.decided_via === 'http' ||
        request.decided_via === 'cli' ||
        request.decided_via === 'expiry'
      )
        return;
      const approval = compose(request);
      if (approval) options.onChannelDecision?.(approval);
    },
  });
  await broker.start();
  return {
    async ask(input) {
      const request = await broker.ask({
        agent: input.agent,
        mission: input.mission ?? 'outside cells',
        ...(input.cell ? { cell_uuid: input.cell } : {}),
        reasons: input.reasons.length > 0 ? input.reasons : [`${input.agent} is dead`],
        substitute: input.substitute ?? null,
        proposed_action: input.proposed.replace(/_/g, ' '),
        ttl_seconds: Math.min(
          30 * 24 * 3600,
          Math.max(10, Math.round((input.expires_at - now()) / 1000)),
        ),
      });
      meta[request.id] ??= {
        key: input.key,
        kind: input.kind,
        proposed: input.proposed,
        channels: input.channels,
        requested_at: input.requested_at,
        expires_at: input.expires_at,
        on_timeout: input.on_timeout,
      };
      await saveMeta();
      return compose(request)!;
    },
    get: (id) => compose(broker.get(id)),
    latest(key) {
      const ids = Object.entries(meta)
        .filter(([, extra]) => extra.key === key)
        .sort(([, a], [, b]) => a.requested_at - b.requested_at)
        .map(([id]) => id);
      return compose(broker.get(ids.at(-1) ?? ''));
    },
    list: (status) =>
      broker
        .list()
        .map(compose)
        .filter(
          (approval): approval is StoredApproval =>
            approval !== undefined && (status === undefined || approval.status === status),
        ),
    async decide(id, decision, answer) {
      deciding = true;
      let result;
      try {
        result = await broker.decide({
          decision,
          id,
          channel: answer.channel,
          token: internal,
          ...(answer.by ? { claimed_by: answer.by } : {}),
        });
      } finally {
        deciding = false;
      }
      if (!result.ok) {
        const reason =
          result.reason === 'unknown_request'
            ? 'not_found'
            : result.reason === 'expired'
              ? 'expired'
              : 'already_decided';
        return { ok: false, reason, message: `approval request ${id}: ${result.detail}` };
      }
      const extra = meta[id];
      if (extra) {
        if (answer.by) extra.by = answer.by;
        if (answer.reason) extra.reason = answer.reason;
        await saveMeta();
      }
      const approval = compose(result.request);
      return {
        ok: true,
        id,
        decision,
        agent: result.request.agent,
        ...(approval?.cell ? { cell: approval.cell } : {}),
      };
    },
    async expire(at) {
      const expired = await broker.expire(new Date(at));
      return expired
        .map(compose)
        .filter((approval): approval is StoredApproval => approval !== undefined);
    },
    async cancel(id) {
      await broker.cancel(id, 'the agent recovered');
    },
    close: () => broker.close(),
  };
}

/**
 * Reads the approval requests from disk without opening the broker (nothing is written): for
 * `pit status` and `pit approvals` while a daemon may be running.
 */
export async function readApprovals(stateDir: string): Promise<StoredApproval[]> {
  const file = await readJsonFile(join(stateDir, 'approvals.json'), ApprovalStoreSchema, {
    maxBytes: 32 * 1024 * 1024,
  }).catch(() => undefined);
  const meta = await readJsonFile(join(stateDir, 'approval-meta.json'), MetaFileSchema)
    .then((read) => read.meta)
    .catch(() => ({}) as Record<string, Meta>);
  return (file?.requests ?? []).flatMap((request) => {
    const approval = joinApproval(request, meta[request.id]);
    return approval ? [approval] : [];
  });
}

/** @pit/notify's request joined with the loop's own fields; undefined when the loop has no record of it. */
function joinApproval(
  request: ApprovalRequest,
  extra: Meta | undefined,
): StoredApproval | undefined {
  if (!extra) return undefined;
  return {
    id: request.id,
    key: extra.key,
    agent: request.agent,
    ...(request.cell_uuid ? { cell: request.cell_uuid } : {}),
    mission: request.mission,
    kind: extra.kind,
    proposed: extra.proposed,
    ...(request.substitute ? { substitute: request.substitute } : {}),
    reasons: request.reasons,
    channels: extra.channels,
    status: request.status as StoredApproval['status'],
    requested_at: extra.requested_at,
    expires_at: extra.expires_at,
    on_timeout: extra.on_timeout,
    ...(request.decided_at ? { decided_at: Date.parse(request.decided_at) } : {}),
    ...((extra.by ?? request.decided_by) ? { by: (extra.by ?? request.decided_by)! } : {}),
    ...(request.decided_via ? { channel: request.decided_via } : {}),
    ...(extra.reason ? { reason: extra.reason } : {}),
  };
}
