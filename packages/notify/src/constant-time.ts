import { createHash, timingSafeEqual } from 'node:crypto';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Finds the entry whose secret equals `candidate`, in time independent of where (or whether)
 * it matches and of the secrets' lengths: every secret is compared, as SHA-256 digests,
 * with `crypto.timingSafeEqual`.
 */
export function findSecretMatch<T extends { token: string }>(
  entries: readonly T[],
  candidate: string,
): T | undefined {
  const probe = digest(candidate);
  let found: T | undefined;
  for (const entry of entries) {
    const equal = timingSafeEqual(digest(entry.token), probe);
    if (equal && found === undefined) found = entry;
  }
  return found;
}
