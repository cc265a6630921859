import * as nip17 from 'nostr-tools/nip17';
import * as nip59 from 'nostr-tools/nip59';
import { finalizeEvent, generateSecretKey, getEventHash, getPublicKey } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import { openGiftWrap } from './nostr-gift-wrap.js';

const daemon = generateSecretKey();
const daemonPub = getPublicKey(daemon);
const ada = generateSecretKey();
const mallory = generateSecretKey();

describe('openGiftWrap', () => {
  it('opens what nip17.wrapEvent makes, agreeing with nip17.unwrapEvent', () => {
    const wrap = nip17.wrapEvent(ada, { publicKey: daemonPub }, 'approve 0123');
    const opened = openGiftWrap(wrap, daemon);
    const reference = nip17.unwrapEvent(wrap, daemon);
    expect(opened).toMatchObject({
      ok: true,
      sender: getPublicKey(ada),
      rumor: { content: 'approve 0123', kind: 14, id: reference.id },
    });
  });

  it('refuses a seal signed by someone other than the claimed author', () => {
    const unsigned = {
      kind: 14,
      content: 'approve 0123',
      tags: [['p', daemonPub]],
      created_at: 1_800_000_000,
      pubkey: getPublicKey(ada),
    };
    const rumor = { ...unsigned, id: getEventHash(unsigned) };
    const wrap = nip59.createWrap(nip59.createSeal(rumor, mallory, daemonPub), daemonPub);
    expect(() => nip17.unwrapEvent(wrap, daemon)).toThrow(/does not match seal pubkey/);
    expect(openGiftWrap(wrap, daemon)).toMatchObject({
      ok: false,
      reason: 'forged_seal',
      claimed: getPublicKey(ada),
    });
  });

  it('refuses a rumor whose id does not match its content', () => {
    const unsigned = {
      kind: 14,
      content: 'approve 0123',
      tags: [['p', daemonPub]],
      created_at: 1_800_000_000,
      pubkey: getPublicKey(ada),
    };
    const rumor = { ...unsigned, content: 'deny 0123', id: getEventHash(unsigned) };
    const wrap = nip59.createWrap(nip59.createSeal(rumor, ada, daemonPub), daemonPub);
    expect(openGiftWrap(wrap, daemon)).toMatchObject({
      ok: false,
      reason: 'unwrap_failed',
      detail: expect.stringContaining('rumor id'),
    });
  });

  it('refuses a tampered wrap, one for someone else, and garbage', () => {
    const wrap = nip17.wrapEvent(ada, { publicKey: daemonPub }, 'approve 0123');
    expect(
      openGiftWrap({ ...wrap, content: `${wrap.content.slice(0, -4)}AAAA` }, daemon),
    ).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(openGiftWrap(wrap, mallory)).toMatchObject({ ok: false, reason: 'unwrap_failed' });
    const garbage = finalizeEvent(
      { kind: 1059, created_at: 1_800_000_000, tags: [['p', daemonPub]], content: 'garbage' },
      mallory,
    );
    expect(openGiftWrap(garbage, daemon)).toMatchObject({ ok: false, reason: 'unwrap_failed' });
    const note = finalizeEvent(
      { kind: 1, created_at: 1_800_000_000, tags: [], content: 'hi' },
      mallory,
    );
    expect(openGiftWrap(note, daemon)).toMatchObject({ ok: false, reason: 'unwrap_failed' });
  });

  it('refuses a seal whose signature does not verify', () => {
    const rumor = nip59.createRumor(
      { kind: 14, content: 'approve 0123', tags: [['p', daemonPub]] },
      ada,
    );
    const seal = nip59.createSeal(rumor, ada, daemonPub);
    const broken = { ...seal, sig: seal.sig.replace(/^./, seal.sig[0] === 'a' ? 'b' : 'a') };
    const wrap = nip59.createWrap(broken, daemonPub);
    expect(openGiftWrap(wrap, daemon)).toMatchObject({ ok: false, reason: 'bad_signature' });
  });
});
