import { describe, expect, it } from 'vitest';
import { statusFromDocument } from './provider-health.js';

describe('statusFromDocument', () => {
  it('maps a Statuspage indicator', () => {
    expect(statusFromDocument({ status: { indicator: 'none' } }).status).toBe('healthy');
    expect(statusFromDocument({ status: { indicator: 'minor' } }).status).toBe('degraded');
    expect(statusFromDocument({ status: { indicator: 'major' } }).status).toBe('dead');
    expect(statusFromDocument({ status: { indicator: 'critical' } }).status).toBe('dead');
  });
  it('maps a top-level status word, whatever its case', () => {
    expect(statusFromDocument({ status: 'OK' }).status).toBe('healthy');
    expect(statusFromDocument({ status: 'degraded' }).status).toBe('degraded');
    expect(statusFromDocument({ status: 'down' }).status).toBe('dead');
  });
  it('says nothing about a document it does not understand', () => {
    for (const document of [null, 'up', { status: { indicator: 'purple' } }, { state: 'ok' }])
      expect(statusFromDocument(document)).toMatchObject({ status: undefined });
  });
});
