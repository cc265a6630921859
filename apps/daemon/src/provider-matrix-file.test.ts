import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from './logger.js';
import {
  createProviderMatrixWriter,
  providerMatrixPath,
  readProviderMatrix,
} from './provider-matrix-file.js';
import type { ProviderEntry } from './provider-health.js';

afterEach(cleanup);

const row = (
  status: ProviderEntry['status'],
  extra: Partial<ProviderEntry> = {},
): ProviderEntry => ({
  provider: 'anthropic',
  status,
  since: '2030-01-01T00:00:00.000Z',
  evidence: [`status_url: status ${status}`],
  ...extra,
});

/** A logger that keeps its warnings. */
function keepingLogger() {
  const warnings: Array<{ message: string; fields?: Record<string, unknown> }> = [];
  const logger = {
    debug: () => undefined,
    info: () => undefined,
    warn: (message: string, fields?: Record<string, unknown>) => warnings.push({ message, fields }),
    error: () => undefined,
    child: () => logger,
  } as unknown as Logger;
  return { logger, warnings };
}

describe('createProviderMatrixWriter', () => {
  it('writes only when a status, since or evidence changed, never for a new probe time alone', async () => {
    const stateDir = await tempDir();
    let now = Date.parse('2030-01-01T00:00:00Z');
    const writer = createProviderMatrixWriter({
      stateDir,
      logger: keepingLogger().logger,
      now: () => now,
    });
    writer.offer([row('healthy', { checked_at: '2030-01-01T00:00:00.000Z' })]);
    await writer.flush();
    const first = await readProviderMatrix(stateDir);
    expect(first).toEqual({
      written_at: '2030-01-01T00:00:00.000Z',
      pid: process.pid,
      providers: [row('healthy')],
    });
    // Probes answered again (checked_at moved), nothing else: the file is left alone.
    now += 60_000;
    writer.offer([row('healthy', { checked_at: '2030-01-01T00:01:00.000Z' })]);
    await writer.flush();
    expect(await readProviderMatrix(stateDir)).toEqual(first);
    // New evidence is a change.
    writer.offer([row('healthy', { evidence: ['exec: exit 0'] })]);
    await writer.flush();
    expect(await readProviderMatrix(stateDir)).toMatchObject({
      written_at: '2030-01-01T00:01:00.000Z',
      providers: [{ evidence: ['exec: exit 0'] }],
    });
  });

  it('returns at once, never overlaps writes, and the newest matrix is the one left', async () => {
    const stateDir = await tempDir();
    const writer = createProviderMatrixWriter({
      stateDir,
      logger: keepingLogger().logger,
      now: Date.now,
    });
    const statuses = ['healthy', 'degraded', 'dead', 'unknown'] as const;
    for (let i = 0; i < 200; i++) writer.offer([row(statuses[i % 4]!, { since: `t${i}` })]);
    await writer.flush();
    expect((await readProviderMatrix(stateDir))?.providers).toEqual([
      row('unknown', { since: 't199' }),
    ]);
    // No temporary file left behind by overlapping writes.
    expect(await fs.readdir(stateDir)).toEqual(['providers.json']);
  });

  it('logs a write that failed, naming the file, and keeps going', async () => {
    const base = await tempDir();
    const stateDir = join(base, 'missing');
    const { logger, warnings } = keepingLogger();
    const writer = createProviderMatrixWriter({ stateDir, logger, now: Date.now });
    writer.offer([row('dead')]);
    await writer.flush();
    expect(warnings).toEqual([
      {
        message: 'provider matrix not persisted',
        fields: expect.objectContaining({ path: providerMatrixPath(stateDir) }),
      },
    ]);
    await fs.mkdir(stateDir);
    writer.offer([row('healthy')]);
    await writer.flush();
    expect((await readProviderMatrix(stateDir))?.providers).toEqual([row('healthy')]);
  });
});
