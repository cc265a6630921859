import { describe, expect, it } from 'vitest';
import { redactingLogger, silentLogger, type LogFields, type Logger } from './logger.js';

function recording(): { logger: Logger; lines: Array<[string, string, LogFields | undefined]> } {
  const lines: Array<[string, string, LogFields | undefined]> = [];
  const at = (level: string) => (message: string, fields?: LogFields) =>
    lines.push([level, message, fields]);
  return {
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
    lines,
  };
}

describe('redactingLogger', () => {
  it('never passes a secret on, in the message, a nested field or an error', () => {
    const { logger, lines } = recording();
    const log = redactingLogger(logger, ['s3cr3t-token', undefined, 'ab']);
    log.warn('sending with s3cr3t-token', {
      url: 'https://api/bots3cr3t-token/send',
      nested: { list: ['x s3cr3t-token'] },
      error: new Error('401 for s3cr3t-token'),
    });
    expect(JSON.stringify(lines)).not.toContain('s3cr3t-token');
    expect(lines[0]![1]).toBe('sending with [redacted]');
    expect(lines[0]![2]).toMatchObject({
      url: 'https://api/bot[redacted]/send',
      nested: { list: ['x [redacted]'] },
      error: 'Error: 401 for [redacted]',
    });
  });

  it('ignores secrets too short to be secrets and passes everything else through unchanged', () => {
    const { logger, lines } = recording();
    redactingLogger(logger, ['ab']).info('about a cab', { n: 1 });
    expect(lines).toEqual([['info', 'about a cab', { n: 1 }]]);
    expect(() => silentLogger.error('dropped')).not.toThrow();
  });
});
