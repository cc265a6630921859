import type { NostrEvent } from 'nostr-tools/pure';
import { z } from 'zod';
import type { RejectReason } from './channel.js';
import { nostrNip44, nostrPure } from './lazy-modules.js';
import { describeError } from './logger.js';

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const Hex128 = z.string().regex(/^[0-9a-f]{128}$/);
const Tags = z.array(z.array(z.string()));

/** A signed event as relays send it (third-party payload: loose). */
export const SignedEventSchema = z.looseObject({
  id: Hex64,
  pubkey: Hex64,
  created_at: z.int().nonnegative(),
  kind: z.int().nonnegative(),
  tags: Tags,
  content: z.string(),
  sig: Hex128,
});

/** An unsigned rumor (NIP-59) with its id. */
export const RumorSchema = z.looseObject({
  id: Hex64,
  pubkey: Hex64,
  created_at: z.int().nonnegative(),
  kind: z.int().nonnegative(),
  tags: Tags,
  content: z.string(),
});
export type Rumor = z.infer<typeof RumorSchema>;

/** NIP-59 event kinds. */
export const SEAL_KIND = 13;
export const GIFT_WRAP_KIND = 1059;
/** NIP-17 chat message kind. */
export const PRIVATE_DM_KIND = 14;

/** The result of opening a gift wrap: the rumor and who sealed it, or why it was refused. */
export type OpenedGiftWrap =
  | { ok: true; rumor: Rumor; sender: string }
  | {
      ok: false;
      reason: Extract<RejectReason, 'unwrap_failed' | 'bad_signature' | 'forged_seal'>;
      detail: string;
      claimed?: string;
    };

/**
 * Opens a NIP-59 gift wrap addressed to `secretKey`, checking everything
 * `nip59.unwrapEvent` checks and more, step by step so that a refusal says why:
 * the wrap's own signature; the seal decrypts, is kind 13 and its signature verifies; the
 * rumor decrypts with the seal signer's conversation key; the rumor's `pubkey` equals the
 * seal's signer (otherwise anyone could seal a message "from" an approver); and the rumor's
 * id is the hash of its content.
 */
export function openGiftWrap(wrap: NostrEvent, secretKey: Uint8Array): OpenedGiftWrap {
  const { getConversationKey, decrypt } = nostrNip44();
  const { getEventHash, verifyEvent } = nostrPure();
  if (wrap.kind !== GIFT_WRAP_KIND)
    return { ok: false, reason: 'unwrap_failed', detail: `kind ${wrap.kind} is not a gift wrap` };
  if (!verifyEvent({ ...wrap }))
    return {
      ok: false,
      reason: 'bad_signature',
      detail: `gift wrap ${wrap.id} has an invalid signature`,
    };
  let sealJson: unknown;
  try {
    sealJson = JSON.parse(decrypt(wrap.content, getConversationKey(secretKey, wrap.pubkey)));
  } catch (error) {
    return {
      ok: false,
      reason: 'unwrap_failed',
      detail: `gift wrap ${wrap.id} does not decrypt: ${describeError(error)}`,
    };
  }
  const seal = SignedEventSchema.safeParse(sealJson);
  if (!seal.success || seal.data.kind !== SEAL_KIND)
    return {
      ok: false,
      reason: 'unwrap_failed',
      detail: `gift wrap ${wrap.id} does not contain a seal`,
    };
  if (!verifyEvent({ ...seal.data } as NostrEvent)) {
    return {
      ok: false,
      reason: 'bad_signature',
      detail: `the seal in gift wrap ${wrap.id} has an invalid signature`,
      claimed: seal.data.pubkey,
    };
  }
  let rumorJson: unknown;
  try {
    rumorJson = JSON.parse(
      decrypt(seal.data.content, getConversationKey(secretKey, seal.data.pubkey)),
    );
  } catch (error) {
    return {
      ok: false,
      reason: 'unwrap_failed',
      detail: `the seal in gift wrap ${wrap.id} does not decrypt: ${describeError(error)}`,
      claimed: seal.data.pubkey,
    };
  }
  const rumor = RumorSchema.safeParse(rumorJson);
  if (!rumor.success)
    return {
      ok: false,
      reason: 'unwrap_failed',
      detail: `gift wrap ${wrap.id} does not contain a rumor`,
      claimed: seal.data.pubkey,
    };
  if (rumor.data.pubkey !== seal.data.pubkey) {
    return {
      ok: false,
      reason: 'forged_seal',
      detail: `the message claims to be from ${rumor.data.pubkey} but was sealed by ${seal.data.pubkey}`,
      claimed: rumor.data.pubkey,
    };
  }
  const { id: _id, ...unsigned } = rumor.data;
  if (getEventHash(unsigned as Parameters<typeof getEventHash>[0]) !== rumor.data.id) {
    return {
      ok: false,
      reason: 'unwrap_failed',
      detail: `gift wrap ${wrap.id}: the rumor id does not match its content`,
      claimed: rumor.data.pubkey,
    };
  }
  return { ok: true, rumor: rumor.data, sender: seal.data.pubkey };
}
