import {
  AgentNameSchema,
  ApprovalSchema,
  ApprovalsFileSchema,
  formatIssues,
  readJsonFile,
  timeoutDecision,
  writeJsonAtomic,
  type Approval,
  type ApprovalDecision,
  type ApprovalKind,
  type ApprovalsFile,
  type OnTimeout,
  type RemedyAction,
} from '@pit/cell-spec';
import { z } from 'zod';
import { createApprovalId, statusOf } from './approval-request.js';
import type {
  ApprovalChannel,
  ApprovalSink,
  DecisionAttempt,
  DecisionResult,
  RejectReason,
  RejectedAttempt,
} from './channel.js';
import { findSecretMatch } from './constant-time.js';
import { deliverWithRetry, type RetryOptions } from './deliver.js';
import { NotifyError } from './errors.js';
import { describeError, silentLogger, type Logger } from './logger.js';
import { EnvNameSchema, parseConfig } from './parse-config.js';

/**
 * The `[approvals]` section of pit.toml. Tokens are named by the environment variable that
 * holds them; the daemon resolves them and passes {@link ApprovalToken}s to the broker.
 */
export const ApprovalsConfigSchema = z.strictObject({
  /** How long a request stays open (s). @default 3600 */
  ttl_seconds: z
    .int()
    .min(10)
    .max(30 * 24 * 3600)
    .default(3600),
  /** The decision reported when a request that names no `on_timeout` expires unanswered (`approve`: it proceeds; `deny`: record only). @default "deny" */
  on_expiry: z.enum(['approve', 'deny']).default('deny'),
  /** How long decided requests are kept so that late answers are recognised as such (days). @default 7 */
  retain_decided_days: z.number().positive().max(365).default(7),
  /** CLI/HTTP approvers: a name (recorded as `decided_by`) and the variable holding its token. */
  tokens: z
    .array(z.strictObject({ name: z.string().min(1).max(64), token_env: EnvNameSchema }))
    .default([])
    .refine((tokens) => new Set(tokens.map((token) => token.name)).size === tokens.length, {
      message: 'token names must be unique',
    }),
});
export type ApprovalsConfig = z.infer<typeof ApprovalsConfigSchema>;

/** A CLI/HTTP approver: its name and its resolved token (at least 16 characters). */
export interface ApprovalToken {
  name: string;
  token: string;
}

/** What the daemon asks: the fields of an {@link Approval} a caller chooses. */
export interface AskInput {
  agent: string;
  mission: string;
  cell_uuid?: string;
  /** @default "revive" */
  kind?: ApprovalKind;
  /** Why, one line each. */
  reasons: string[];
  /** What will be done if approved. @default "restart" */
  proposed?: RemedyAction;
  /** The suggested substitute, if any. */
  substitute?: string | null;
  /** The channels it is asked on, as recorded in the request. @default [] */
  channels?: string[];
  /** Overrides the configured lifetime (s). */
  ttl_seconds?: number;
  /** When it expires (ms since epoch); wins over `ttl_seconds`. */
  expires_at?: number;
  /** What happens if nobody answers. @default `proceed` when the config's `on_expiry` is `approve`, else `record_only` */
  on_timeout?: OnTimeout;
}

/**
 * A CLI/HTTP decision whose caller the application has already authenticated (the daemon checks
 * its operator's bearer token; `pit approve` without a daemon runs as the operator on the state
 * directory). No broker token is involved.
 */
export interface TrustedDecision {
  decision: ApprovalDecision;
  id: string;
  channel: 'cli' | 'http';
  /** Who decided, recorded as `decided_by`. */
  by: string;
  /** The approver's note, recorded as `reason`. */
  reason?: string;
}

/** A decision given through the CLI or the daemon's HTTP API, authenticated by token. */
export interface TokenDecision {
  decision: ApprovalDecision;
  /** The request id… */
  id?: string;
  /** …or the agent (its newest pending request). */
  agent?: string;
  channel: 'cli' | 'http';
  /** The presented token; compared in constant time with every configured token. */
  token: string;
  /** Who the caller says they are, for the rejection log only (the token's name is recorded on success). */
  claimed_by?: string;
}

/** Options of {@link createApprovalBroker}. */
export interface ApprovalBrokerOptions {
  /** The approvals file (JSON, written atomically). Pending requests survive a restart through it. */
  path: string;
  /** Channels that carry requests and bring back answers. */
  channels?: ApprovalChannel[];
  /** The `[approvals]` config (defaults apply to omitted keys). */
  config?: z.input<typeof ApprovalsConfigSchema>;
  /** CLI/HTTP approvers with their resolved tokens. */
  tokens?: ApprovalToken[];
  /** Clock. @default () => new Date() */
  clock?: () => Date;
  /** How often pending requests are checked for expiry (ms); 0 disables the timer (call `expire()` yourself). @default 1000 */
  expiryIntervalMs?: number;
  /** Tolerated clock difference when judging whether an answer predates its request (ms). @default 60000 */
  clockSkewMs?: number;
  /** Retry policy for sending requests and outcomes to channels. */
  retry?: RetryOptions;
  logger?: Logger;
  /** Called once per decided request (approved, denied, or expired with its default). */
  onDecision?: (request: Approval) => void;
  /** Called for every refused attempt, with channel, claimed identity and why. */
  onRejected?: (attempt: RejectedAttempt) => void;
}

/** The approval broker. See {@link createApprovalBroker}. */
export interface ApprovalBroker {
  /**
   * Loads the approvals file, binds the channels, starts the expiry timer, expires what
   * expired while the daemon was down and re-sends requests a channel never received.
   * @throws {NotifyError} NOTIFY_STORE_INVALID when the file exists but is not an approvals file.
   */
  start(): Promise<void>;
  /**
   * Opens a request and returns at once (after the local write); channels are notified in the
   * background. If the agent already has a pending request, that one is returned instead.
   * @throws {NotifyError} NOTIFY_INVALID_INPUT; NOTIFY_STORE_IO when it could not be persisted; NOTIFY_NOT_STARTED.
   */
  ask(input: AskInput): Promise<Approval>;
  /** Records a CLI/HTTP decision after checking its token. Refusals are values (`ok: false`). */
  decide(input: TokenDecision): Promise<DecisionResult>;
  /**
   * Records a CLI/HTTP decision from a caller the application authenticated itself (first valid
   * decision wins, as for every channel). Refusals are values (`ok: false`).
   */
  decideTrusted(input: TrustedDecision): Promise<DecisionResult>;
  /** Expires every pending request whose deadline is at or before `now`; returns them. */
  expire(now?: Date): Promise<Approval[]>;
  /**
   * Withdraws a pending request (the agent recovered on its own): status `cancelled`, channels
   * show it as withdrawn, later answers are refused. `onDecision` is not called. Returns the
   * request, or undefined when it is unknown or no longer pending.
   */
  cancel(id: string, reason?: string): Promise<Approval | undefined>;
  /** A copy of the request with that id. */
  get(id: string): Approval | undefined;
  /** Copies of all known requests, optionally only those with a given status. */
  list(status?: Approval['status']): Approval[];
  /** Resolves when the request is decided (at once if it already is). */
  whenDecided(id: string, signal?: AbortSignal): Promise<Approval>;
  /** Resolves when every channel send started so far has finished (delivered or given up). */
  flush(): Promise<void>;
  /** Stops the timer, cancels channel sends in flight and waits for the last write. */
  close(): Promise<void>;
}

/**
 * Creates the broker that turns "ask a human" into a request every configured channel shows,
 * and accepts the first valid decision from any of them.
 *
 * @example
 * const broker = createApprovalBroker({
 *   path: '/var/lib/pit/approvals.json',
 *   channels: [telegram, nostr],
 *   config: { ttl_seconds: 900, on_expiry: 'deny' },
 *   tokens: [{ name: 'ops-cli', token: env.PIT_CLI_TOKEN }],
 *   onDecision: (request) => daemon.applyDecision(request),
 *   onRejected: (attempt) => metrics.rejected(attempt.channel, attempt.reason),
 * });
 * await broker.start();
 * const request = await broker.ask({ agent: 'scout', mission: 'survey', reasons: ['3 failed probes'] });
 * @throws {NotifyError} NOTIFY_INVALID_CONFIG when the config, tokens or channel names are invalid.
 */
export function createApprovalBroker(options: ApprovalBrokerOptions): ApprovalBroker {
  const config = parseConfig(ApprovalsConfigSchema, options.config ?? {}, 'approvals');
  const tokens = validateTokens(options.tokens ?? []);
  const channels = options.channels ?? [];
  const names = new Set<string>(['cli', 'http', 'expiry']);
  for (const channel of channels) {
    if (names.has(channel.name))
      throw new NotifyError(
        'NOTIFY_INVALID_CONFIG',
        `approvals: channel name ${JSON.stringify(channel.name)} is used twice or reserved`,
      );
    names.add(channel.name);
  }
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? (() => new Date());
  const clockSkewMs = options.clockSkewMs ?? 60_000;
  const requests = new Map<string, Approval>();
  const waiters = new Map<string, Set<(request: Approval) => void>>();
  /** Decided requests whose decision has been persisted and reported (the others are on their way). */
  const announced = new Set<string>();
  const inFlight = new Set<Promise<unknown>>();
  const deliveries = new Map<string, Promise<unknown>>();
  const closing = new AbortController();
  let state: 'new' | 'started' | 'closed' = 'new';
  let timer: NodeJS.Timeout | undefined;

  // --- persistence: one atomic write at a time; a write always captures the latest state.
  let saving: Promise<void> | null = null;
  let dirty = false;
  function snapshot(): ApprovalsFile {
    const cutoff = clock().getTime() - config.retain_decided_days * 86_400_000;
    for (const [id, request] of requests) {
      if (request.status !== 'pending' && (request.decided_at ?? Infinity) < cutoff)
        requests.delete(id);
    }
    return { version: 2, requests: [...requests.values()] };
  }
  async function save(): Promise<void> {
    dirty = true;
    while (saving) await saving.catch(() => undefined);
    if (!dirty) return;
    dirty = false;
    const write = writeJsonAtomic(options.path, snapshot(), { mode: 0o600 }).catch(
      (error: unknown) => {
        dirty = true;
        throw new NotifyError(
          'NOTIFY_STORE_IO',
          `${options.path}: could not write approvals: ${describeError(error)}`,
          { cause: error, retryable: true },
        );
      },
    );
    saving = write.finally(() => {
      saving = null;
    });
    await saving;
  }
  async function saveOrLog(what: string): Promise<void> {
    try {
      await save();
    } catch (error) {
      logger.error(
        `approvals: ${what} is decided in memory but not yet on disk: ${describeError(error)}`,
        { path: options.path },
      );
    }
  }

  function track<T>(promise: Promise<T>): Promise<T> {
    const settled: Promise<unknown> = promise.then(
      () => inFlight.delete(settled),
      () => inFlight.delete(settled),
    );
    inFlight.add(settled);
    return promise;
  }

  function emitDecision(request: Approval): void {
    announced.add(request.id);
    const copy = structuredClone(request);
    logger.info(
      `approvals: ${request.id} for ${request.agent} ${request.status} (${request.decision}) by ${request.decided_by} via ${request.decided_via}`,
      {
        request_id: request.id,
        agent: request.agent,
        status: request.status,
        decision: request.decision,
        decided_by: request.decided_by,
        decided_via: request.decided_via,
      },
    );
    try {
      if (request.status !== 'cancelled') options.onDecision?.(copy);
    } catch (error) {
      logger.error(`approvals: onDecision threw: ${describeError(error)}`, {
        request_id: request.id,
      });
    }
    const pending = waiters.get(request.id);
    waiters.delete(request.id);
    for (const resolve of pending ?? []) resolve(structuredClone(request));
    for (const channel of channels) sendOutcome(channel, request);
  }

  function recordRejection(attempt: RejectedAttempt): void {
    logger.warn(
      `approvals: refused ${attempt.reason} from ${attempt.identity} via ${attempt.channel}: ${attempt.detail}`,
      {
        channel: attempt.channel,
        identity: attempt.identity,
        reason: attempt.reason,
        request_id: attempt.request_id,
        agent: attempt.agent,
      },
    );
    try {
      options.onRejected?.({ ...attempt });
    } catch (error) {
      logger.error(`approvals: onRejected threw: ${describeError(error)}`);
    }
  }

  function refuse(
    channel: string,
    attempt: { identity: string; request_id?: string | undefined; agent?: string | undefined },
    reason: RejectReason,
    detail: string,
    request?: Approval,
  ): DecisionResult {
    recordRejection({
      channel,
      identity: attempt.identity,
      reason,
      detail,
      at: clock(),
      ...(attempt.request_id !== undefined
        ? { request_id: attempt.request_id }
        : request
          ? { request_id: request.id }
          : {}),
      ...(attempt.agent !== undefined
        ? { agent: attempt.agent }
        : request
          ? { agent: request.agent }
          : {}),
    });
    return request
      ? { ok: false, reason, detail, request: structuredClone(request) }
      : { ok: false, reason, detail };
  }

  function sendRequest(channel: ApprovalChannel, request: Approval): void {
    const key = `${request.id}:${channel.name}`;
    const delivery = track(
      deliverWithRetry((signal) => channel.sendApprovalRequest(structuredClone(request), signal), {
        ...options.retry,
        what: `${channel.name}: approval request ${request.id}`,
        signal: closing.signal,
        logger,
      })
        .then(async (reference) => {
          const current = requests.get(request.id);
          if (!current) return;
          current.deliveries[channel.name] = (reference ?? 'sent').slice(0, 500);
          await saveOrLog(`delivery of ${request.id}`);
        })
        .catch((error: unknown) => {
          logger[closing.signal.aborted ? 'debug' : 'error'](
            `approvals: ${channel.name} could not show request ${request.id}: ${describeError(error)}`,
            { request_id: request.id, channel: channel.name },
          );
        }),
    );
    deliveries.set(key, delivery);
    void delivery.finally(() => {
      if (deliveries.get(key) === delivery) deliveries.delete(key);
    });
  }

  function sendOutcome(channel: ApprovalChannel, request: Approval): void {
    const before = deliveries.get(`${request.id}:${channel.name}`) ?? Promise.resolve();
    void track(
      before
        .then(() => {
          const current = requests.get(request.id) ?? request;
          return deliverWithRetry(
            (signal) =>
              channel.sendApprovalOutcome(
                structuredClone(current),
                current.deliveries[channel.name],
                signal,
              ),
            {
              ...options.retry,
              what: `${channel.name}: outcome of ${request.id}`,
              signal: closing.signal,
              logger,
            },
          );
        })
        .catch((error: unknown) => {
          logger[closing.signal.aborted ? 'debug' : 'error'](
            `approvals: ${channel.name} could not show the outcome of ${request.id}: ${describeError(error)}`,
            { request_id: request.id, channel: channel.name },
          );
        }),
    );
  }

  function expireOne(request: Approval, now: Date): void {
    request.status = 'expired';
    request.decision = timeoutDecision(request.on_timeout);
    request.decided_at = now.getTime();
    request.decided_by = 'expiry';
    request.decided_via = 'expiry';
  }

  async function expire(now: Date = clock()): Promise<Approval[]> {
    const expired: Approval[] = [];
    for (const request of requests.values()) {
      if (request.status === 'pending' && request.expires_at <= now.getTime()) {
        expireOne(request, now);
        expired.push(request);
      }
    }
    if (expired.length === 0) return [];
    await saveOrLog(`expiry of ${expired.length} request(s)`);
    for (const request of expired) emitDecision(request);
    return expired.map((request) => structuredClone(request));
  }

  /** The newest pending request about `agent` (in cell `cell.uuid`, when given: two cells may both have a `scout`). */
  function newestPending(agent: string, cell?: { uuid: string | undefined }): Approval | undefined {
    let found: Approval | undefined;
    for (const request of requests.values()) {
      if (
        request.agent === agent &&
        (cell === undefined || request.cell_uuid === cell.uuid) &&
        request.status === 'pending' &&
        (!found || request.requested_at > found.requested_at)
      )
        found = request;
    }
    return found;
  }

  /**
   * The request `revive <agent>` means: the newest pending one of that agent in the cell whose
   * uuid starts with `cell`, or in any cell — unless agents of that name wait in several cells,
   * which a name alone cannot tell apart.
   */
  function pendingByName(
    agent: string,
    cell: string | undefined,
  ):
    | { ok: true; request: Approval }
    | { ok: false; reason: 'no_pending_request' | 'ambiguous'; detail: string } {
    const newest = new Map<string, Approval>();
    for (const request of requests.values()) {
      if (request.agent !== agent || request.status !== 'pending') continue;
      if (cell !== undefined && !(request.cell_uuid ?? '').startsWith(cell)) continue;
      const where = request.cell_uuid ?? '';
      const other = newest.get(where);
      if (!other || request.requested_at > other.requested_at) newest.set(where, request);
    }
    const [only, ...more] = newest.values();
    const named = cell === undefined ? agent : `${cell}/${agent}`;
    if (!only)
      return {
        ok: false,
        reason: 'no_pending_request',
        detail: `no pending approval request for ${named}`,
      };
    if (more.length === 0) return { ok: true, request: only };
    const choices = [only, ...more]
      .map((request) => `${(request.cell_uuid ?? '').slice(0, 8)}/${agent} (${request.id})`)
      .join(', ');
    return {
      ok: false,
      reason: 'ambiguous',
      detail: `${agent} waits for approval in ${more.length + 1} cells: answer with the request id or one of ${choices}`,
    };
  }

  async function decideAs(via: string, attempt: DecisionAttempt): Promise<DecisionResult> {
    if (state !== 'started')
      return refuse(via, attempt, 'unknown_request', 'the broker is not running');
    const now = clock();
    let request: Approval | undefined;
    if (attempt.request_id !== undefined) {
      request = requests.get(attempt.request_id);
      if (!request)
        return refuse(via, attempt, 'unknown_request', `no approval request ${attempt.request_id}`);
      if (attempt.agent !== undefined && attempt.agent !== request.agent)
        return refuse(
          via,
          attempt,
          'unknown_request',
          `request ${request.id} is not about ${attempt.agent}`,
        );
    } else if (attempt.agent !== undefined) {
      const found = pendingByName(attempt.agent, attempt.cell);
      if (!found.ok) return refuse(via, attempt, found.reason, found.detail);
      request = found.request;
    } else {
      return refuse(via, attempt, 'malformed', 'names neither a request id nor an agent');
    }
    if (request.status === 'expired')
      return refuse(
        via,
        attempt,
        'expired',
        `request ${request.id} expired at ${isoOf(request.decided_at ?? request.expires_at)}`,
        request,
      );
    if (request.status !== 'pending') {
      return refuse(
        via,
        attempt,
        'already_decided',
        `request ${request.id} was already ${request.status} by ${request.decided_by} via ${request.decided_via}`,
        request,
      );
    }
    if (request.expires_at <= now.getTime()) {
      expireOne(request, now);
      await saveOrLog(`expiry of ${request.id}`);
      emitDecision(request);
      return refuse(
        via,
        attempt,
        'expired',
        `request ${request.id} expired at ${isoOf(request.expires_at)}`,
        request,
      );
    }
    if (attempt.sent_at) {
      const sent = attempt.sent_at.getTime();
      if (sent < request.requested_at - clockSkewMs) {
        return refuse(
          via,
          attempt,
          'stale',
          `answer written at ${attempt.sent_at.toISOString()}, before request ${request.id} was created at ${isoOf(request.requested_at)}`,
          request,
        );
      }
      if (sent > now.getTime() + clockSkewMs)
        return refuse(
          via,
          attempt,
          'stale',
          `answer dated in the future (${attempt.sent_at.toISOString()})`,
          request,
        );
    }
    // Check and set with no await in between: the first valid decision wins.
    request.status = statusOf(attempt.decision);
    request.decision = attempt.decision;
    request.decided_at = now.getTime();
    request.decided_by = attempt.identity.slice(0, 200);
    request.decided_via = via;
    if (attempt.reason) request.reason = attempt.reason.slice(0, 500);
    await saveOrLog(`decision on ${request.id}`);
    emitDecision(request);
    return { ok: true, request: structuredClone(request) };
  }

  function sinkFor(channel: ApprovalChannel): ApprovalSink {
    return {
      decide: (attempt) => track(decideAs(channel.name, attempt)),
      reject: (attempt) => recordRejection({ ...attempt, channel: channel.name, at: clock() }),
      get: (id) => {
        const request = requests.get(id);
        return request ? structuredClone(request) : undefined;
      },
      hasPending: (agent, cell) => {
        const found = pendingByName(agent, cell);
        return found.ok || found.reason === 'ambiguous';
      },
    };
  }

  async function load(): Promise<void> {
    let store: ApprovalsFile;
    try {
      store = await readJsonFile(options.path, ApprovalsFileSchema, { maxBytes: 64 * 1024 * 1024 });
    } catch (error) {
      if ((error as { code?: string }).code === 'CELL_NOT_FOUND') return;
      throw new NotifyError(
        'NOTIFY_STORE_INVALID',
        `${options.path}: not a readable approvals file: ${describeError(error)}`,
        { cause: error },
      );
    }
    for (const request of store.requests) {
      requests.set(request.id, request);
      if (request.status !== 'pending') announced.add(request.id);
    }
  }

  return {
    async start() {
      if (state !== 'new')
        throw new NotifyError(
          'NOTIFY_NOT_STARTED',
          `approvals: start() called twice or after close()`,
        );
      await load();
      state = 'started';
      for (const channel of channels) channel.bindApprovals(sinkFor(channel));
      await expire(clock());
      for (const request of requests.values()) {
        if (request.status !== 'pending') continue;
        for (const channel of channels)
          if (request.deliveries[channel.name] === undefined) sendRequest(channel, request);
      }
      const interval = options.expiryIntervalMs ?? 1000;
      if (interval > 0) {
        timer = setInterval(() => {
          expire(clock()).catch((error: unknown) =>
            logger.error(`approvals: expiry sweep failed: ${describeError(error)}`),
          );
        }, interval);
        timer.unref();
      }
    },

    async ask(input) {
      if (state !== 'started')
        throw new NotifyError(
          'NOTIFY_NOT_STARTED',
          'approvals: ask() before start() or after close()',
        );
      const agent = AgentNameSchema.safeParse(input.agent);
      if (!agent.success)
        throw new NotifyError(
          'NOTIFY_INVALID_INPUT',
          `approval request: agent: ${formatIssues(agent.error)}`,
        );
      const existing = newestPending(agent.data, { uuid: input.cell_uuid });
      if (existing) return structuredClone(existing);
      const now = clock().getTime();
      const ttlSeconds = input.ttl_seconds ?? config.ttl_seconds;
      const expiresAt = input.expires_at ?? now + Math.round(ttlSeconds * 1000);
      const parsed = ApprovalSchema.safeParse({
        id: createApprovalId(),
        agent: agent.data,
        mission: input.mission,
        ...(input.cell_uuid !== undefined ? { cell_uuid: input.cell_uuid } : {}),
        kind: input.kind ?? 'revive',
        reasons: input.reasons,
        proposed: input.proposed ?? 'restart',
        ...(input.substitute ? { substitute: input.substitute } : {}),
        channels: input.channels ?? [],
        requested_at: now,
        expires_at: expiresAt,
        on_timeout:
          input.on_timeout ?? (config.on_expiry === 'approve' ? 'proceed' : 'record_only'),
        status: 'pending',
        decision: null,
        deliveries: {},
      });
      if (!parsed.success || !(expiresAt > now)) {
        throw new NotifyError(
          'NOTIFY_INVALID_INPUT',
          `approval request for ${agent.data}: ${parsed.success ? 'expires_at: must be after now (ttl_seconds must be positive)' : formatIssues(parsed.error)}`,
        );
      }
      const request = parsed.data;
      requests.set(request.id, request);
      try {
        await save();
      } catch (error) {
        requests.delete(request.id);
        throw error;
      }
      logger.info(
        `approvals: asked about ${request.agent} (${request.id}), expires ${isoOf(request.expires_at)}`,
        { request_id: request.id, agent: request.agent },
      );
      for (const channel of channels) sendRequest(channel, request);
      return structuredClone(request);
    },

    async decide(input) {
      const identity = input.claimed_by ?? 'unknown';
      const attempt = { identity, request_id: input.id, agent: input.agent };
      if (input.channel !== 'cli' && input.channel !== 'http')
        return refuse(
          String(input.channel),
          attempt,
          'bad_token',
          'token decisions come through cli or http only',
        );
      const match =
        typeof input.token === 'string' ? findSecretMatch(tokens, input.token) : undefined;
      if (!match)
        return refuse(
          input.channel,
          attempt,
          'bad_token',
          'the token matches no configured approver',
        );
      return track(
        decideAs(input.channel, {
          decision: input.decision,
          identity: match.name,
          ...(input.id !== undefined ? { request_id: input.id } : {}),
          ...(input.agent !== undefined ? { agent: input.agent } : {}),
        }),
      );
    },

    decideTrusted(input) {
      const attempt = { identity: input.by, request_id: input.id };
      if (input.channel !== 'cli' && input.channel !== 'http')
        return Promise.resolve(
          refuse(
            String(input.channel),
            attempt,
            'bad_token',
            'trusted decisions come through cli or http only',
          ),
        );
      return track(
        decideAs(input.channel, {
          decision: input.decision,
          identity: input.by,
          request_id: input.id,
          ...(input.reason ? { reason: input.reason } : {}),
        }),
      );
    },

    expire,

    async cancel(id, reason) {
      const request = requests.get(id);
      if (!request || request.status !== 'pending') return undefined;
      request.status = 'cancelled';
      request.decision = null;
      request.decided_at = clock().getTime();
      request.decided_by = 'daemon';
      request.decided_via = 'cancel';
      if (reason) request.reason = reason.slice(0, 500);
      await saveOrLog(`withdrawal of ${request.id}`);
      emitDecision(request);
      return structuredClone(request);
    },

    get(id) {
      const request = requests.get(id);
      return request ? structuredClone(request) : undefined;
    },

    list(status) {
      return [...requests.values()]
        .filter((request) => status === undefined || request.status === status)
        .map((request) => structuredClone(request));
    },

    whenDecided(id, signal) {
      const request = requests.get(id);
      if (!request)
        return Promise.reject(
          new NotifyError('NOTIFY_INVALID_INPUT', `approvals: no request ${id}`),
        );
      if (announced.has(id)) return Promise.resolve(structuredClone(request));
      return new Promise((resolve, reject) => {
        const set = waiters.get(id) ?? new Set();
        const onAbort = (): void => {
          set.delete(done);
          reject(new NotifyError('NOTIFY_CLOSED', `approvals: stopped waiting for ${id}`));
        };
        const done = (decided: Approval): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve(decided);
        };
        set.add(done);
        waiters.set(id, set);
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
      });
    },

    async flush() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },

    async close() {
      if (state === 'closed') return;
      state = 'closed';
      clearInterval(timer);
      closing.abort();
      await Promise.allSettled([...inFlight]);
      while (saving) await saving.catch(() => undefined);
    },
  };
}

/** A time in ms since epoch as ISO 8601, for messages. */
function isoOf(ms: number): string {
  return new Date(ms).toISOString();
}

function validateTokens(tokens: ApprovalToken[]): ApprovalToken[] {
  const names = new Set<string>();
  tokens.forEach((token, index) => {
    if (typeof token.name !== 'string' || token.name.length === 0)
      throw new NotifyError(
        'NOTIFY_INVALID_CONFIG',
        `approvals: tokens.${index}.name: must be a non-empty string`,
      );
    if (names.has(token.name))
      throw new NotifyError(
        'NOTIFY_INVALID_CONFIG',
        `approvals: tokens.${index}.name: ${token.name} is used twice`,
      );
    names.add(token.name);
    if (typeof token.token !== 'string' || token.token.length < 16) {
      throw new NotifyError(
        'NOTIFY_INVALID_CONFIG',
        `approvals: tokens.${index} (${token.name}): the token must be at least 16 characters`,
      );
    }
  });
  return tokens.map((token) => ({ ...token }));
}
