import { stat } from 'node:fs/promises';
import { readFileSafe } from '@pit/cell-spec';
import { z } from 'zod';
import { NotifyError } from './errors.js';
import { nostrNip19, nostrPure } from './lazy-modules.js';
import { describeError } from './logger.js';

const HEX64 = /^[0-9a-f]{64}$/i;

/**
 * Reads a Nostr secret key given as `nsec1…` or 64 hex characters (surrounding whitespace
 * ignored), or passes 32 raw bytes through.
 * @throws {NotifyError} NOTIFY_BAD_KEY (the message never contains the key).
 */
export function parseSecretKey(input: string | Uint8Array, where = 'nostr secret key'): Uint8Array {
  if (input instanceof Uint8Array) {
    if (input.length !== 32)
      throw new NotifyError('NOTIFY_BAD_KEY', `${where}: expected 32 bytes, got ${input.length}`);
    return validSecret(new Uint8Array(input), where);
  }
  const text = input.trim();
  if (text.startsWith('nsec1')) {
    try {
      const decoded = nostrNip19().decode(text);
      if (decoded.type === 'nsec') return validSecret(decoded.data, where);
    } catch {
      // fall through to the error below without echoing the key
    }
    throw new NotifyError('NOTIFY_BAD_KEY', `${where}: not a valid nsec`);
  }
  if (HEX64.test(text)) return validSecret(Uint8Array.from(Buffer.from(text, 'hex')), where);
  throw new NotifyError('NOTIFY_BAD_KEY', `${where}: expected nsec1… or 64 hex characters`);
}

function validSecret(key: Uint8Array, where: string): Uint8Array {
  try {
    nostrPure().getPublicKey(key);
  } catch {
    throw new NotifyError('NOTIFY_BAD_KEY', `${where}: not a valid secp256k1 secret key`);
  }
  return key;
}

/**
 * Normalises a public key given as `npub1…` or 64 hex characters to lower-case hex.
 * @throws {NotifyError} NOTIFY_BAD_KEY.
 */
export function parsePublicKey(input: string, where = 'nostr public key'): string {
  const text = input.trim();
  if (text.startsWith('npub1')) {
    try {
      const decoded = nostrNip19().decode(text);
      if (decoded.type === 'npub') return decoded.data.toLowerCase();
    } catch {
      // reported below
    }
    throw new NotifyError(
      'NOTIFY_BAD_KEY',
      `${where}: ${JSON.stringify(text.slice(0, 80))} is not a valid npub`,
    );
  }
  if (HEX64.test(text)) return text.toLowerCase();
  throw new NotifyError(
    'NOTIFY_BAD_KEY',
    `${where}: ${JSON.stringify(text.slice(0, 80))} must be npub1… or 64 hex characters`,
  );
}

/** A public key in config: `npub1…` or 64 hex characters, normalised to lower-case hex. */
export const PublicKeySchema = z.string().transform((value, context) => {
  try {
    return parsePublicKey(value, 'public key');
  } catch (error) {
    context.addIssue({
      code: 'custom',
      message: describeError(error).replace(/^public key: /, ''),
    });
    return z.NEVER;
  }
});

/**
 * Reads the daemon's secret key from a file (nsec or hex, one line). Refuses a symlink, a
 * file readable by group or others, or anything over 1 KiB.
 * @throws {NotifyError} NOTIFY_BAD_KEY when the file is missing, unsafe, or not a key.
 */
export async function readSecretKeyFile(path: string): Promise<Uint8Array> {
  let buffer: Buffer;
  try {
    buffer = await readFileSafe(path, { maxBytes: 1024 });
  } catch (error) {
    throw new NotifyError(
      'NOTIFY_BAD_KEY',
      `${path}: cannot read the nostr secret key: ${describeError(error)}`,
      { cause: error },
    );
  }
  const mode = (await stat(path)).mode;
  if ((mode & 0o077) !== 0)
    throw new NotifyError(
      'NOTIFY_BAD_KEY',
      `${path}: the nostr secret key file must not be readable by group or others (mode ${(mode & 0o777).toString(8)}; use 600)`,
    );
  return parseSecretKey(buffer.toString('utf8'), path);
}
