import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { npubEncode, nsecEncode } from 'nostr-tools/nip19';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../test/helpers.js';
import { parsePublicKey, parseSecretKey, readSecretKeyFile } from './nostr-keys.js';

const secret = generateSecretKey();
const hex = Buffer.from(secret).toString('hex');

describe('nostr keys', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => cleanup?.());

  it('reads a secret key as nsec, hex or bytes', () => {
    expect(parseSecretKey(nsecEncode(secret))).toEqual(secret);
    expect(parseSecretKey(` ${hex.toUpperCase()}\n`)).toEqual(secret);
    expect(parseSecretKey(secret)).toEqual(secret);
  });

  it('refuses bad secret keys without echoing them', () => {
    for (const bad of ['nsec1qqqq', 'zz'.repeat(32), '0'.repeat(64), 'abc']) {
      try {
        parseSecretKey(bad);
        expect.unreachable();
      } catch (error) {
        expect((error as { code: string }).code).toBe('NOTIFY_BAD_KEY');
        expect((error as Error).message).not.toContain(bad);
      }
    }
  });

  it('normalises npub and hex public keys', () => {
    const pub = getPublicKey(secret);
    expect(parsePublicKey(npubEncode(pub))).toBe(pub);
    expect(parsePublicKey(pub.toUpperCase())).toBe(pub);
    expect(() => parsePublicKey('npub1nope')).toThrow(/not a valid npub/);
  });

  it('reads a key file only when it is private', async () => {
    const dir = await tempDir();
    cleanup = dir.cleanup;
    const file = join(dir.path, 'nostr.key');
    await writeFile(file, `${nsecEncode(secret)}\n`, { mode: 0o600 });
    expect(await readSecretKeyFile(file)).toEqual(secret);
    await chmod(file, 0o644);
    await expect(readSecretKeyFile(file)).rejects.toMatchObject({
      code: 'NOTIFY_BAD_KEY',
      message: expect.stringContaining('mode 644'),
    });
    await expect(readSecretKeyFile(join(dir.path, 'missing'))).rejects.toMatchObject({
      code: 'NOTIFY_BAD_KEY',
    });
  });
});
