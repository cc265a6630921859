import { describe, expect, it } from 'vitest';
import { fixture } from './__fixtures__/helpers.js';
import { formatIssues } from './format-issues.js';
import { IsolationProfileSchema } from './isolation.js';

describe('IsolationProfileSchema', () => {
  it('accepts a realistic level-3 profile and a bare level 1', async () => {
    expect(IsolationProfileSchema.safeParse(await fixture('isolation-profile.json')).success).toBe(
      true,
    );
    expect(IsolationProfileSchema.safeParse({ level: 1 }).success).toBe(true);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['level 4', { level: 4 }, /level:/],
    ['a relative read-only path', { level: 2, readonly_paths: ['etc/ssl'] }, /readonly_paths\.0:/],
    ['an unknown key', { level: 2, privileged: true }, /Unrecognized key.*"privileged"/],
    ['an unknown network mode', { level: 3, network: 'bridge' }, /network:/],
  ])('rejects %s, naming the field', (_label, profile, expected) => {
    const parsed = IsolationProfileSchema.safeParse(profile);
    expect(parsed.success).toBe(false);
    expect(formatIssues(parsed.error!)).toMatch(expected);
  });
});
