import { describe, expect, it } from 'vitest';
import { findSecretMatch } from './constant-time.js';

describe('findSecretMatch', () => {
  const entries = [
    { name: 'a', token: 'token-aaaaaaaaaaaaaaaa' },
    { name: 'b', token: 'token-bbbbbbbbbbbbbbbbbbbbbbbb' },
  ];

  it('finds the entry whose token matches exactly, whatever its position or length', () => {
    expect(findSecretMatch(entries, 'token-aaaaaaaaaaaaaaaa')?.name).toBe('a');
    expect(findSecretMatch(entries, 'token-bbbbbbbbbbbbbbbbbbbbbbbb')?.name).toBe('b');
  });

  it('matches nothing for prefixes, extensions, case changes or an empty token', () => {
    for (const candidate of [
      'token-aaaaaaaaaaaaaaa',
      'token-aaaaaaaaaaaaaaaaa',
      'TOKEN-aaaaaaaaaaaaaaaa',
      '',
    ]) {
      expect(findSecretMatch(entries, candidate)).toBeUndefined();
    }
    expect(findSecretMatch([], 'anything')).toBeUndefined();
  });
});
