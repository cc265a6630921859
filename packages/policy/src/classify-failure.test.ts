import { describe, expect, it } from 'vitest';
import { classifyFailure } from './classify-failure.js';
import { ClassifySchema } from './policy-config.js';

const classify = ClassifySchema.parse({});

describe('classifyFailure', () => {
  it.each([
    ['a class already given wins', { class: 'auth_failed' as const, exit_code: 78 }, 'auth_failed'],
    ['a stuck heartbeat', { stuck: true, exit_code: 1 }, 'stuck'],
    ['a failing probe named stuck', { failing_probes: ['heartbeat', 'stuck'] }, 'stuck'],
    ['EX_CONFIG (78)', { exit_code: 78 }, 'bad_config'],
    ['EX_NOPERM (77)', { exit_code: 77 }, 'auth_failed'],
    ['EX_TEMPFAIL (75)', { exit_code: 75 }, 'rate_limited'],
    ['a reset time', { reset_at: 1_000, exit_code: 1 }, 'rate_limited'],
    ['a signal', { signal: 'SIGKILL' }, 'crashed'],
    ['a non-zero exit code', { exit_code: 1 }, 'crashed'],
    ['a clean exit', { exit_code: 0 }, 'unknown'],
    ['failing probes alone', { failing_probes: ['http', 'tcp'] }, 'unknown'],
  ])('classifies %s', (_label, failure, expected) => {
    expect(classifyFailure({ failure, classify }).class).toBe(expected);
  });

  it('says why', () => {
    expect(classifyFailure({ failure: { exit_code: 78 }, classify }).because).toBe(
      'exit code 78 (classify.exit_codes)',
    );
    expect(classifyFailure({ failure: { signal: 'SIGSEGV' }, classify }).because).toBe(
      'killed by SIGSEGV',
    );
    expect(classifyFailure({ failure: { failing_probes: ['http'] }, classify }).because).toBe(
      'failing probes: http',
    );
    expect(classifyFailure({ classify })).toEqual({
      class: 'unknown',
      because: 'no failure details',
    });
  });

  it('follows a configured exit-code table', () => {
    const custom = ClassifySchema.parse({ exit_codes: { '3': 'bad_config' } });
    expect(classifyFailure({ failure: { exit_code: 3 }, classify: custom }).class).toBe(
      'bad_config',
    );
    expect(classifyFailure({ failure: { exit_code: 78 }, classify: custom }).class).toBe('crashed');
  });
});
