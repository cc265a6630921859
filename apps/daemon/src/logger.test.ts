import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

afterEach(cleanup);

const capture = (isTTY = false) => {
  const lines: string[] = [];
  return { lines, stream: { isTTY, write: (chunk: string) => lines.push(chunk) } };
};
const now = () => new Date('2026-11-22T17:43:00.123Z');

describe('createLogger', () => {
  it('writes JSON lines with ts, level, msg and fields when not a TTY', () => {
    const { lines, stream } = capture();
    createLogger({ stream, now }).info('agent revived', { agent: 'forge', pid: 42 });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toEqual({
      ts: '2026-11-22T17:43:00.123Z',
      level: 'info',
      msg: 'agent revived',
      agent: 'forge',
      pid: 42,
    });
  });

  it('keeps a field named ts, level or msg as field_<name>: it never replaces the line’s own', () => {
    const { lines, stream } = capture();
    createLogger({ stream, now })
      .child({ msg: 'child' })
      .warn('agent started', { agent: 'forge', level: 2, ts: 'then' });
    expect(JSON.parse(lines[0]!)).toEqual({
      ts: '2026-11-22T17:43:00.123Z',
      level: 'warn',
      msg: 'agent started',
      agent: 'forge',
      field_level: 2,
      field_ts: 'then',
      field_msg: 'child',
    });
  });

  it('writes one pretty line per entry on a TTY', () => {
    const { lines, stream } = capture(true);
    createLogger({ stream, now }).warn('probe failed', { agent: 'forge', latency: { ms: 3 } });
    expect(lines[0]).toBe('17:43:00.123 WARN  probe failed agent=forge latency={ ms: 3 }\n');
  });

  it('drops lines below the level, and the level can change', () => {
    const { lines, stream } = capture();
    const logger = createLogger({ stream, level: 'warn' });
    logger.info('hidden');
    logger.error('shown');
    logger.setLevel('debug');
    logger.debug('now shown');
    expect(lines.map((line) => JSON.parse(line).msg)).toEqual(['shown', 'now shown']);
  });

  it('never writes a configured secret, in the message, a field, a nested field or an error', () => {
    const { lines, stream } = capture();
    const logger = createLogger({ stream, secrets: ['tok-abcdef123'] });
    logger.addSecrets(['sk-live-999', 'ab']);
    logger.error('auth with tok-abcdef123 failed', {
      header: 'Bearer tok-abcdef123',
      nested: { list: ['x sk-live-999 y'] },
      error: new Error('bad sk-live-999'),
    });
    const text = lines.join('');
    expect(text).not.toContain('tok-abcdef123');
    expect(text).not.toContain('sk-live-999');
    const entry = JSON.parse(lines[0]!);
    expect(entry.msg).toBe('auth with [redacted] failed');
    expect(entry.header).toBe('Bearer [redacted]');
    expect(entry.nested.list[0]).toBe('x [redacted] y');
    expect(entry.error.message).toBe('bad [redacted]');
    // Values shorter than 4 characters are not treated as secrets (they would redact everything).
    logger.info('ab stays');
    expect(JSON.parse(lines[1]!).msg).toBe('ab stays');
  });

  it('adds child fields and appends JSON lines to a log file', async () => {
    const dir = await tempDir();
    const { lines, stream } = capture();
    const file = join(dir, 'daemon.jsonl');
    createLogger({ stream, file, secrets: ['hunter22'] })
      .child({ component: 'http' })
      .info('listening hunter22');
    expect(JSON.parse(lines[0]!).component).toBe('http');
    const written = await fs.readFile(file, 'utf8');
    expect(JSON.parse(written)).toMatchObject({ component: 'http', msg: 'listening [redacted]' });
  });
});
