/**
 * A human approver's Nostr client for tests: it reads NIP-17 DMs addressed to it (with
 * nostr-tools' own `nip17.unwrapEvent`) and answers with real signed, encrypted replies,
 * or with hand-made forgeries.
 */
import { AbstractRelay } from 'nostr-tools/abstract-relay';
import * as nip04 from 'nostr-tools/nip04';
import * as nip17 from 'nostr-tools/nip17';
import * as nip59 from 'nostr-tools/nip59';
import { npubEncode } from 'nostr-tools/nip19';
import {
  finalizeEvent,
  generateSecretKey,
  getEventHash,
  getPublicKey,
  verifyEvent,
  type NostrEvent,
} from 'nostr-tools/pure';
import WebSocket from 'ws';

/** A message the approver received. */
export interface InboxMessage {
  from: string;
  content: string;
  created_at: number;
  via: 'nip17' | 'nip04';
}

/** A test approver connected to one relay. */
export interface TestApprover {
  readonly secretKey: Uint8Array;
  readonly publicKey: string;
  readonly npub: string;
  readonly inbox: InboxMessage[];
  /** Waits for a received message matching the predicate. */
  waitForMessage(
    predicate: (message: InboxMessage) => boolean,
    timeoutMs?: number,
  ): Promise<InboxMessage>;
  /** Sends a NIP-17 reply; `createdAt` (unix s) back- or forward-dates the inner message. */
  reply(to: string, text: string, options?: { createdAt?: number }): Promise<NostrEvent>;
  /** Sends a NIP-04 DM (kind 4). */
  replyNip04(to: string, text: string, options?: { createdAt?: number }): Promise<NostrEvent>;
  /** Publishes any event as is. */
  publish(event: NostrEvent): Promise<void>;
  close(): void;
}

/** Connects an approver (a fresh key unless one is given) to `relayUrl` and listens for its DMs. */
export async function connectTestApprover(
  relayUrl: string,
  secretKey: Uint8Array = generateSecretKey(),
): Promise<TestApprover> {
  const publicKey = getPublicKey(secretKey);
  const relay = new AbstractRelay(relayUrl, {
    verifyEvent,
    websocketImplementation: WebSocket as unknown as typeof globalThis.WebSocket,
  });
  relay.onnotice = () => undefined;
  await relay.connect({ timeout: 5000 });
  const inbox: InboxMessage[] = [];
  const listeners = new Set<() => void>();
  const seen = new Set<string>();
  relay.subscribe(
    [{ kinds: [1059, 4], '#p': [publicKey], since: Math.floor(Date.now() / 1000) - 3 * 24 * 3600 }],
    {
      onevent: (event) => {
        if (seen.has(event.id)) return;
        seen.add(event.id);
        try {
          if (event.kind === 1059) {
            const rumor = nip17.unwrapEvent(event, secretKey);
            inbox.push({
              from: rumor.pubkey,
              content: rumor.content,
              created_at: rumor.created_at,
              via: 'nip17',
            });
          } else {
            inbox.push({
              from: event.pubkey,
              content: nip04.decrypt(secretKey, event.pubkey, event.content),
              created_at: event.created_at,
              via: 'nip04',
            });
          }
        } catch {
          return;
        }
        for (const listener of [...listeners]) listener();
      },
    },
  );

  async function publish(event: NostrEvent): Promise<void> {
    await relay.publish(event);
  }

  return {
    secretKey,
    publicKey,
    npub: npubEncode(publicKey),
    inbox,
    waitForMessage(predicate, timeoutMs = 10_000) {
      const found = inbox.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const listener = (): void => {
          const match = inbox.find(predicate);
          if (!match) return;
          listeners.delete(listener);
          clearTimeout(timer);
          resolve(match);
        };
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(
            new Error(
              `no matching DM within ${timeoutMs} ms; inbox: ${JSON.stringify(inbox.map((message) => message.content.slice(0, 60)))}`,
            ),
          );
        }, timeoutMs);
        listeners.add(listener);
      });
    },
    async reply(to, text, options = {}) {
      const rumor = nip59.createRumor(
        {
          kind: 14,
          content: text,
          tags: [['p', to]],
          ...(options.createdAt !== undefined ? { created_at: options.createdAt } : {}),
        },
        secretKey,
      );
      const wrap = nip59.createWrap(nip59.createSeal(rumor, secretKey, to), to);
      await publish(wrap);
      return wrap;
    },
    async replyNip04(to, text, options = {}) {
      const event = finalizeEvent(
        {
          kind: 4,
          created_at: options.createdAt ?? Math.floor(Date.now() / 1000),
          tags: [['p', to]],
          content: nip04.encrypt(secretKey, to, text),
        },
        secretKey,
      );
      await publish(event);
      return event;
    },
    publish,
    close: () => relay.close(),
  };
}

/**
 * A gift wrap whose inner message claims to come from `claimedAuthor` but is sealed (signed)
 * by `sealerSecretKey`: what an attacker who is not an approver can produce.
 */
export function forgeGiftWrap(input: {
  claimedAuthor: string;
  sealerSecretKey: Uint8Array;
  to: string;
  text: string;
}): NostrEvent {
  const unsigned = {
    kind: 14,
    content: input.text,
    tags: [['p', input.to]],
    created_at: Math.floor(Date.now() / 1000),
    pubkey: input.claimedAuthor,
  };
  const rumor = { ...unsigned, id: getEventHash(unsigned) };
  return nip59.createWrap(nip59.createSeal(rumor, input.sealerSecretKey, input.to), input.to);
}

/** A validly signed gift wrap addressed to `to` whose content is not an encrypted seal. */
export function garbageGiftWrap(to: string): NostrEvent {
  return finalizeEvent(
    {
      kind: 1059,
      created_at: Math.floor(Date.now() / 1000),
      tags: [['p', to]],
      content: 'this is not nip44 ciphertext at all',
    },
    generateSecretKey(),
  );
}
