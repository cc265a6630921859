import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** sha256 (hex) of a participant's token: what a config stores instead of the token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * A new random token (32 bytes, base64url) and its hash. Give the token to the participant;
 * keep only the hash in the config.
 * @example
 * const { token, sha256 } = createToken();
 * participants.push({ name: 'forge', role: 'write', token_sha256: sha256 });
 */
export function createToken(): { token: string; sha256: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, sha256: hashToken(token) };
}

const UNSET = Buffer.alloc(32);

/**
 * Whether `token` hashes to `sha256Hex`, compared in constant time. With no stored hash the
 * same work is done against a dummy and `false` is returned, so timing does not tell whether
 * a participant has a token.
 */
export function tokenMatches(token: string, sha256Hex: string | undefined): boolean {
  const presented = createHash('sha256').update(token, 'utf8').digest();
  const stored =
    sha256Hex !== undefined && /^[0-9a-f]{64}$/.test(sha256Hex)
      ? Buffer.from(sha256Hex, 'hex')
      : UNSET;
  return timingSafeEqual(presented, stored) && stored !== UNSET;
}
