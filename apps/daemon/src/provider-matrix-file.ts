/**
 * The provider matrix on disk: `<state_dir>/providers.json`, so that `pit status` shows it with no
 * daemon to ask. It owns that file: the daemon's writer (only when a row's status, since or
 * evidence changed, never on every probe; off the supervision path: fire-and-forget, one write at
 * a time, the newest matrix wins, failures logged) and the reader `pit status` uses. It never asks
 * the tracker anything and never runs inside a status request.
 */
import { join } from 'node:path';
import { PitError, readJsonFile, writeJsonAtomic } from '@pit/cell-spec';
import { z } from 'zod';
import type { Logger } from './logger.js';
import type { ProviderEntry } from './provider-health.js';

/** The file's name in the state directory. */
export const PROVIDER_MATRIX_FILE = 'providers.json';

/** The path of the persisted matrix. */
export const providerMatrixPath = (stateDir: string): string =>
  join(stateDir, PROVIDER_MATRIX_FILE);

const ProviderRowSchema = z.looseObject({
  provider: z.string(),
  status: z.enum(['healthy', 'degraded', 'dead', 'unknown']),
  since: z.string(),
  evidence: z.array(z.string()),
});

/** `providers.json`: the matrix as the daemon (`pid`) last saw it change, at `written_at`. */
export const ProviderMatrixFileSchema = z.looseObject({
  /** ISO-8601: when it was written (the matrix changed then). */
  written_at: z.string(),
  /** The daemon that wrote it: the matrix is live only while that daemon holds the lock. */
  pid: z.number().int().positive(),
  providers: z.array(ProviderRowSchema),
});
/** The persisted matrix, parsed. */
export type ProviderMatrixFile = z.infer<typeof ProviderMatrixFileSchema>;

/** What the file keeps of a row: not `checked_at` (it moves on every probe; the file does not). */
const persisted = (entry: ProviderEntry) => ({
  provider: entry.provider,
  status: entry.status,
  since: entry.since,
  evidence: [...entry.evidence],
});

/** See the module header. */
export interface ProviderMatrixWriter {
  /** Writes `matrix` (in the background) when it differs from the last one written; returns at once. */
  offer(matrix: readonly ProviderEntry[]): void;
  /** Resolves when the writes asked for so far are done (or failed and were logged). */
  flush(): Promise<void>;
}

/** Creates the daemon's writer of `<stateDir>/providers.json`. */
export function createProviderMatrixWriter(options: {
  stateDir: string;
  logger: Logger;
  now: () => number;
}): ProviderMatrixWriter {
  const path = providerMatrixPath(options.stateDir);
  let lastOffered: string | undefined;
  let pending: ProviderMatrixFile | undefined;
  let scheduled = false;
  let chain: Promise<void> = Promise.resolve();

  const writeNewest = async (): Promise<void> => {
    scheduled = false;
    const next = pending;
    pending = undefined;
    if (!next) return;
    await writeJsonAtomic(path, next).catch((error: unknown) =>
      options.logger.warn('provider matrix not persisted', {
        path,
        error: error instanceof Error ? error.message : String(error),
      }),
    );
  };

  return {
    offer(matrix) {
      const rows = matrix.map(persisted);
      const key = JSON.stringify(rows);
      if (key === lastOffered) return;
      lastOffered = key;
      // Only the newest matters: a write still waiting is replaced, never queued behind.
      pending = {
        written_at: new Date(options.now()).toISOString(),
        pid: process.pid,
        providers: rows,
      };
      if (scheduled) return;
      scheduled = true;
      // After the write in flight (writes never overlap); writeNewest never rejects.
      chain = chain.then(writeNewest);
    },
    async flush() {
      let seen: Promise<void>;
      do {
        seen = chain;
        await seen;
      } while (seen !== chain);
    },
  };
}

/**
 * Reads `<stateDir>/providers.json`: undefined when there is none (no daemon with providers ran).
 * @throws {CellError} CELL_INVALID / CELL_IO when it cannot be read (the message names the file).
 */
export async function readProviderMatrix(
  stateDir: string,
): Promise<ProviderMatrixFile | undefined> {
  return readJsonFile(providerMatrixPath(stateDir), ProviderMatrixFileSchema).catch(
    (error: unknown) => {
      if (PitError.is(error) && error.code === 'CELL_NOT_FOUND') return undefined;
      throw error;
    },
  );
}
