import { describe, expect, it } from 'vitest';
import { captureLogger } from '../test/helpers.js';
import { redactingLogger } from './logger.js';

describe('redactingLogger', () => {
  it('removes secrets from messages and nested fields', () => {
    const inner = captureLogger();
    const logger = redactingLogger(inner, ['s3cr3t-token', undefined, 'ab']);
    logger.warn('calling https://api/bots3cr3t-token/getMe failed', {
      url: 'x s3cr3t-token',
      nested: { list: ['s3cr3t-token'] },
      error: new Error('bad s3cr3t-token'),
    });
    expect(inner.text()).not.toContain('s3cr3t-token');
    expect(inner.lines[0]?.message).toBe('calling https://api/bot[redacted]/getMe failed');
    expect(inner.lines[0]?.fields).toEqual({
      url: 'x [redacted]',
      nested: { list: ['[redacted]'] },
      error: 'Error: bad [redacted]',
    });
  });
});
