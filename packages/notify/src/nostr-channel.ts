import type { AbstractRelay, Subscription } from 'nostr-tools/abstract-relay';
import type { Filter } from 'nostr-tools/filter';
import type { NostrEvent } from 'nostr-tools/pure';
import { z } from 'zod';
import { parseApprovalCommand } from './approval-command.js';
import type { Approval } from '@pit/cell-spec';
import { agentReference, renderApprovalOutcome, renderApprovalRequest } from './approval-text.js';
import { formatAlertText, type AlertBatch } from './alert.js';
import type { AlertChannel, ApprovalChannel, ApprovalSink, DecisionResult } from './channel.js';
import { runWithDeadline } from './deliver.js';
import { NotifyError } from './errors.js';
import {
  nostrNip04,
  nostrNip17,
  nostrNip19,
  nostrPure,
  nostrRelay,
  wsWebSocket,
} from './lazy-modules.js';
import { describeError, silentLogger, type Logger } from './logger.js';
import {
  GIFT_WRAP_KIND,
  openGiftWrap,
  PRIVATE_DM_KIND,
  SignedEventSchema,
} from './nostr-gift-wrap.js';
import { parseSecretKey, PublicKeySchema } from './nostr-keys.js';
import { EnvNameSchema, parseConfig } from './parse-config.js';

const ENCRYPTED_DM_KIND = 4;
/** NIP-59 back-dates gift wraps by up to two days. */
const GIFT_WRAP_BACKDATE_SECONDS = 2 * 24 * 3600;

/** The `[nostr]` section of pit.toml. */
export const NostrConfigSchema = z
  .strictObject({
    /** The environment variable holding the daemon's secret key (nsec or hex). @default "PIT_NOSTR_SECRET_KEY" */
    secret_key_env: EnvNameSchema.default('PIT_NOSTR_SECRET_KEY'),
    /** Or a file holding it (mode 600); read with `readSecretKeyFile`. Takes precedence over the variable. */
    secret_key_file: z.string().min(1).optional(),
    /** Relays to publish to and listen on (`wss://…`, or `ws://` for a local relay). */
    relays: z.array(z.url({ protocol: /^wss?$/ })).min(1),
    /** Approvers' public keys (npub or hex). Only they can decide; everyone else is refused and logged. */
    approvers: z.array(PublicKeySchema).default([]),
    /** Who receives alerts (npub or hex). @default the approvers */
    alert_recipients: z.array(PublicKeySchema).optional(),
    /** Also send NIP-04 DMs (kind 4) and accept NIP-04 replies, for clients without NIP-17. @default false */
    nip04_fallback: z.boolean().default(false),
    /** A reply written longer ago than this is refused as stale (s). @default 900 */
    max_reply_age_seconds: z
      .int()
      .min(10)
      .max(7 * 24 * 3600)
      .default(900),
    /** First reconnection delay after a relay drops (ms); doubled up to `reconnect_max_delay_ms`. @default 500 */
    reconnect_min_delay_ms: z.int().min(10).default(500),
    /** Longest reconnection delay (ms). @default 60000 */
    reconnect_max_delay_ms: z.int().min(10).default(60_000),
    /** Deadline for connecting to a relay and for a relay to acknowledge a published event (ms). @default 10000 */
    timeout_ms: z.int().min(100).default(10_000),
  })
  .refine((config) => config.reconnect_max_delay_ms >= config.reconnect_min_delay_ms, {
    message: 'reconnect_max_delay_ms must be at least reconnect_min_delay_ms',
    path: ['reconnect_max_delay_ms'],
  });
export type NostrConfig = z.infer<typeof NostrConfigSchema>;

/** Options of {@link createNostrChannel}. */
export interface NostrChannelOptions {
  /** The `[nostr]` config. */
  config: z.input<typeof NostrConfigSchema>;
  /** The daemon's secret key (nsec, hex or 32 bytes), resolved by the caller. Never logged. */
  secretKey: string | Uint8Array;
  logger?: Logger;
  /** Clock. @default () => new Date() */
  clock?: () => Date;
}

/** Connection state of one relay. */
export interface RelayStatus {
  url: string;
  connected: boolean;
  /** Successful connections so far (the first one included). */
  connections: number;
  /** Failed or dropped connections since the last success. */
  failures: number;
}

/** A Nostr channel: NIP-17 DMs for alerts and approval requests; signed, encrypted replies as answers. */
export interface NostrChannel extends ApprovalChannel, AlertChannel {
  readonly name: 'nostr';
  /** The daemon's public key (hex). */
  readonly publicKey: string;
  /** The daemon's public key as npub. */
  readonly npub: string;
  /** Connects to every relay (reconnecting with backoff when one drops); resolves after each relay's first attempt. */
  start(): Promise<void>;
  /** Closes every relay connection and stops reconnecting. */
  stop(): Promise<void>;
  /** Connection state per relay. */
  relays(): RelayStatus[];
}

interface RelayLink {
  url: string;
  relay: AbstractRelay | undefined;
  subscription: Subscription | undefined;
  connected: boolean;
  connections: number;
  failures: number;
  delay: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Creates the Nostr channel. Requests go out as NIP-17 private messages (NIP-44 encryption,
 * NIP-59 gift wrap) to every approver on every relay. A reply counts only if the gift wrap
 * opens, the seal's signer is the message's author and a configured approver, the message
 * (judged by the inner rumor's `created_at`) is fresh, and it names an open request:
 * `approve <id>`, `deny <id>`, `revive <agent>` or `skip <agent>`. Events are deduplicated by id.
 *
 * @example
 * const nostr = createNostrChannel({
 *   config: { relays: ['wss://relay.example'], approvers: ['npub1…'] },
 *   secretKey: env[config.nostr.secret_key_env],
 *   logger,
 * });
 * await nostr.start();
 * @throws {NotifyError} NOTIFY_INVALID_CONFIG for a bad config; NOTIFY_BAD_KEY for a bad key.
 */
export function createNostrChannel(options: NostrChannelOptions): NostrChannel {
  const config = parseConfig(NostrConfigSchema, options.config, 'nostr');
  const secretKey = parseSecretKey(options.secretKey, '[nostr] secret key');
  // Loaded now that a Nostr channel exists (see lazy-modules.ts).
  const { finalizeEvent, getPublicKey, verifyEvent } = nostrPure();
  const nip04 = nostrNip04();
  const nip17 = nostrNip17();
  const { npubEncode } = nostrNip19();
  const { AbstractRelay } = nostrRelay();
  const WebSocket = wsWebSocket();
  const publicKey = getPublicKey(secretKey);
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? (() => new Date());
  const approvers = new Set(config.approvers);
  const alertRecipients = [...new Set(config.alert_recipients ?? config.approvers)];
  const links: RelayLink[] = [...new Set(config.relays)].map((url) => ({
    url,
    relay: undefined,
    subscription: undefined,
    connected: false,
    connections: 0,
    failures: 0,
    delay: config.reconnect_min_delay_ms,
    timer: undefined,
  }));
  const seen = new Map<string, true>();
  const SEEN_LIMIT = 10_000;
  let sink: ApprovalSink | undefined;
  let running = false;

  const npubOf = (hex: string): string => {
    try {
      return npubEncode(hex);
    } catch {
      return hex;
    }
  };

  function markSeen(id: string): boolean {
    if (seen.has(id)) return false;
    seen.set(id, true);
    if (seen.size > SEEN_LIMIT) {
      const oldest = seen.keys().next().value;
      if (oldest !== undefined) seen.delete(oldest);
    }
    return true;
  }

  function filters(): Filter[] {
    const nowSeconds = Math.floor(clock().getTime() / 1000);
    const list: Filter[] = [
      {
        kinds: [GIFT_WRAP_KIND],
        '#p': [publicKey],
        since: nowSeconds - GIFT_WRAP_BACKDATE_SECONDS - config.max_reply_age_seconds,
      },
    ];
    if (config.nip04_fallback)
      list.push({
        kinds: [ENCRYPTED_DM_KIND],
        '#p': [publicKey],
        since: nowSeconds - config.max_reply_age_seconds,
      });
    return list;
  }

  // --- incoming

  function handleEvent(raw: unknown, relayUrl: string): void {
    const parsed = SignedEventSchema.safeParse(raw);
    if (!parsed.success) return;
    const event = parsed.data as NostrEvent;
    if (!sink) {
      logger.debug(`nostr: event ${event.id} from ${relayUrl} ignored: approvals are not bound`);
      return;
    }
    if (!markSeen(event.id)) return;
    if (event.kind === GIFT_WRAP_KIND) {
      const opened = openGiftWrap(event, secretKey);
      if (!opened.ok) {
        sink.reject({
          identity: opened.claimed ? npubOf(opened.claimed) : 'unknown',
          reason: opened.reason,
          detail: `${opened.detail} (relay ${relayUrl})`,
        });
        return;
      }
      if (opened.rumor.kind !== PRIVATE_DM_KIND) {
        sink.reject({
          identity: npubOf(opened.sender),
          reason: 'malformed',
          detail: `sealed kind ${opened.rumor.kind} is not a private message (kind 14)`,
        });
        return;
      }
      dispatchMessage({
        sender: opened.sender,
        content: opened.rumor.content,
        createdAt: opened.rumor.created_at,
        via: 'nip17',
        eventId: event.id,
      });
      return;
    }
    if (event.kind === ENCRYPTED_DM_KIND && config.nip04_fallback) {
      if (!verifyEvent({ ...event })) {
        sink.reject({
          identity: npubOf(event.pubkey),
          reason: 'bad_signature',
          detail: `NIP-04 message ${event.id} has an invalid signature`,
        });
        return;
      }
      let content: string;
      try {
        content = nip04.decrypt(secretKey, event.pubkey, event.content);
      } catch (error) {
        sink.reject({
          identity: npubOf(event.pubkey),
          reason: 'unwrap_failed',
          detail: `NIP-04 message ${event.id} does not decrypt: ${describeError(error)}`,
        });
        return;
      }
      dispatchMessage({
        sender: event.pubkey,
        content,
        createdAt: event.created_at,
        via: 'nip04',
        eventId: event.id,
      });
    }
  }

  function dispatchMessage(message: Parameters<typeof handleMessage>[0]): void {
    handleMessage(message).catch((error: unknown) => {
      logger.error(`nostr: failed to handle message ${message.eventId}: ${describeError(error)}`);
    });
  }

  async function handleMessage(message: {
    sender: string;
    content: string;
    createdAt: number;
    via: 'nip17' | 'nip04';
    eventId: string;
  }): Promise<void> {
    if (!sink) return;
    const identity = npubOf(message.sender);
    const command = parseApprovalCommand(message.content);
    const named = command
      ? command.target === 'request'
        ? { request_id: command.id }
        : { agent: command.agent, ...(command.cell ? { cell: command.cell } : {}) }
      : {};
    if (!approvers.has(message.sender)) {
      sink.reject({
        identity,
        reason: 'not_approver',
        detail: `${identity} is not a configured approver (event ${message.eventId})`,
        ...named,
      });
      return;
    }
    const ageSeconds = clock().getTime() / 1000 - message.createdAt;
    if (ageSeconds > config.max_reply_age_seconds) {
      sink.reject({
        identity,
        reason: 'stale',
        detail: `message written ${Math.round(ageSeconds)} s ago (limit ${config.max_reply_age_seconds} s)`,
        ...named,
      });
      return;
    }
    if (!command) {
      sink.reject({
        identity,
        reason: 'malformed',
        detail: `not a command: ${JSON.stringify(message.content.slice(0, 80))}`,
      });
      await reply(
        message.sender,
        message.via,
        'Not understood. Answer "approve <id>", "deny <id>", "revive <agent>" or "skip <agent>".',
      );
      return;
    }
    const result = await sink.decide({
      decision: command.decision,
      identity,
      sent_at: new Date(message.createdAt * 1000),
      ...named,
    });
    if (!result.ok) await reply(message.sender, message.via, `Refused: ${refusalText(result)}`);
  }

  function refusalText(result: Extract<DecisionResult, { ok: false }>): string {
    return result.reason === 'already_decided' && result.request
      ? `already decided (${renderApprovalOutcome(result.request)})`
      : result.detail;
  }

  async function reply(recipient: string, via: 'nip17' | 'nip04', text: string): Promise<void> {
    try {
      await publishTo([recipient], text, AbortSignal.timeout(config.timeout_ms), via === 'nip04');
    } catch (error) {
      logger.warn(`nostr: could not reply to ${npubOf(recipient)}: ${describeError(error)}`);
    }
  }

  // --- relays

  function scheduleReconnect(link: RelayLink): void {
    if (!running || link.timer) return;
    const delay = Math.round(link.delay * (0.75 + Math.random() * 0.5));
    link.delay = Math.min(link.delay * 2, config.reconnect_max_delay_ms);
    logger.debug(`nostr: reconnecting to ${link.url} in ${delay} ms`);
    link.timer = setTimeout(() => {
      link.timer = undefined;
      void connect(link);
    }, delay);
    link.timer.unref();
  }

  async function connect(link: RelayLink): Promise<void> {
    if (!running) return;
    const relay = new AbstractRelay(link.url, {
      verifyEvent,
      websocketImplementation: WebSocket as unknown as typeof globalThis.WebSocket,
      enablePing: true,
    });
    relay.onnotice = (notice) => logger.debug(`nostr: notice from ${link.url}: ${notice}`);
    let closed = false;
    relay.onclose = () => {
      if (closed) return;
      closed = true;
      const wasConnected = link.connected;
      link.connected = false;
      if (link.relay === relay) {
        link.relay = undefined;
        link.subscription = undefined;
      }
      if (!running) return;
      link.failures += 1;
      if (wasConnected) logger.warn(`nostr: lost ${link.url}`);
      scheduleReconnect(link);
    };
    link.relay = relay;
    try {
      await relay.connect({ timeout: config.timeout_ms });
    } catch (error) {
      logger.warn(`nostr: cannot connect to ${link.url}: ${describeError(error)}`);
      if (!closed) {
        closed = true;
        if (link.relay === relay) link.relay = undefined;
        link.failures += 1;
        relay.close();
        scheduleReconnect(link);
      }
      return;
    }
    if (!running) {
      relay.close();
      return;
    }
    link.connected = true;
    link.connections += 1;
    link.failures = 0;
    link.delay = config.reconnect_min_delay_ms;
    logger.info(`nostr: connected to ${link.url} as ${npubOf(publicKey)}`);
    link.subscription = relay.subscribe(filters(), {
      onevent: (event) => {
        try {
          handleEvent(event, link.url);
        } catch (error) {
          logger.error(
            `nostr: failed to handle an event from ${link.url}: ${describeError(error)}`,
          );
        }
      },
      onclose: (reason) => logger.debug(`nostr: subscription on ${link.url} closed: ${reason}`),
    });
  }

  // --- outgoing

  async function publishTo(
    recipients: string[],
    text: string,
    signal: AbortSignal,
    nip04Only = false,
  ): Promise<number> {
    if (recipients.length === 0) return 0;
    const connected = links.filter((link) => link.connected && link.relay);
    if (connected.length === 0) {
      throw new NotifyError(
        'NOTIFY_SEND_FAILED',
        `nostr: no relay connected (${links.map((link) => link.url).join(', ')})`,
        { retryable: true },
      );
    }
    const events: NostrEvent[] = [];
    for (const recipient of recipients) {
      if (!nip04Only) events.push(nip17.wrapEvent(secretKey, { publicKey: recipient }, text));
      if (nip04Only || config.nip04_fallback) {
        events.push(
          finalizeEvent(
            {
              kind: ENCRYPTED_DM_KIND,
              created_at: Math.floor(clock().getTime() / 1000),
              tags: [['p', recipient]],
              content: nip04.encrypt(secretKey, recipient, text),
            },
            secretKey,
          ),
        );
      }
    }
    const failures: string[] = [];
    let delivered = 0;
    for (const event of events) {
      const attempts = connected.map((link) =>
        runWithDeadline(
          () =>
            link.relay ? link.relay.publish(event) : Promise.reject(new Error('disconnected')),
          {
            timeoutMs: config.timeout_ms,
            what: `nostr publish to ${link.url}`,
            signal,
          },
        ),
      );
      const results = await Promise.allSettled(attempts);
      if (results.some((result) => result.status === 'fulfilled')) delivered += 1;
      else
        failures.push(
          ...results.map(
            (result, index) =>
              `${connected[index]?.url}: ${result.status === 'rejected' ? describeError(result.reason) : 'ok'}`,
          ),
        );
    }
    if (delivered < events.length) {
      throw new NotifyError(
        'NOTIFY_SEND_FAILED',
        `nostr: ${events.length - delivered} of ${events.length} messages reached no relay (${failures.slice(0, 4).join('; ')})`,
        {
          retryable: true,
        },
      );
    }
    return delivered;
  }

  function requestText(request: Approval): string {
    return renderApprovalRequest(request, {
      now: clock(),
      howToAnswer: `Reply "approve ${request.id}" or "deny ${request.id}" (or "revive ${agentReference(request)}" / "skip ${agentReference(request)}").`,
    });
  }

  return {
    name: 'nostr',
    publicKey,
    npub: npubOf(publicKey),

    bindApprovals(approvalSink) {
      sink = approvalSink;
    },

    async start() {
      if (running) return;
      running = true;
      await Promise.all(links.map((link) => connect(link)));
    },

    async stop() {
      running = false;
      for (const link of links) {
        clearTimeout(link.timer);
        link.timer = undefined;
        const relay = link.relay;
        link.relay = undefined;
        link.connected = false;
        relay?.close();
      }
    },

    relays() {
      return links.map((link) => ({
        url: link.url,
        connected: link.connected,
        connections: link.connections,
        failures: link.failures,
      }));
    },

    async sendAlert(batch: AlertBatch, signal: AbortSignal) {
      await publishTo(alertRecipients, formatAlertText(batch), signal);
    },

    async sendApprovalRequest(request, signal) {
      const count = await publishTo([...approvers], requestText(request), signal);
      return `sent:${count}`;
    },

    async sendApprovalOutcome(request, _reference, signal) {
      const outcome = renderApprovalOutcome(request);
      if (!outcome) return;
      await publishTo([...approvers], `[pit] ${request.agent} (${request.id}): ${outcome}`, signal);
    },
  };
}
