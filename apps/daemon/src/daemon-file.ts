import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { IsoTimestampSchema, readJsonFile, writeJsonAtomic } from '@pit/cell-spec';
import { z } from 'zod';

/** What `<state_dir>/daemon.json` records about the running daemon (for `pit approve`, `pit status`). */
export const DaemonFileSchema = z.strictObject({
  /** The daemon's process id. */
  pid: z.number().int().positive(),
  /** The dashboard/API base URL (the real port when it listens on port 0); absent when HTTP is disabled. */
  url: z.url().optional(),
  /** The mission bus WebSocket URL; absent when `[bus]` is disabled. */
  bus_url: z.url().optional(),
  /** When the daemon started (ISO 8601). */
  started_at: IsoTimestampSchema,
});

/** The contents of `<state_dir>/daemon.json`. */
export type DaemonFile = z.infer<typeof DaemonFileSchema>;

/** Where the running daemon records itself: `<state_dir>/daemon.json`. */
export const daemonFilePath = (stateDir: string): string => join(stateDir, 'daemon.json');

/**
 * Records where the daemon listens, atomically (readers see the old file or the new one, never a
 * part), once its HTTP server is up.
 * @throws {CellError} CELL_IO when the state directory cannot be written.
 * @example
 * await writeDaemonFile(stateDir, { pid: process.pid, url: http.url, started_at: new Date().toISOString() });
 */
export async function writeDaemonFile(stateDir: string, record: DaemonFile): Promise<void> {
  await writeJsonAtomic(daemonFilePath(stateDir), DaemonFileSchema.parse(record));
}

/** The recorded daemon, or `undefined` when there is no (valid) `daemon.json`. It may be stale after a crash: check `pid`. */
export async function readDaemonFile(stateDir: string): Promise<DaemonFile | undefined> {
  return readJsonFile(daemonFilePath(stateDir), DaemonFileSchema).catch(() => undefined);
}

/** Removes `daemon.json` on a clean stop, only when it still names `pid` (never another daemon's record). */
export async function removeDaemonFile(stateDir: string, pid: number): Promise<void> {
  const recorded = await readDaemonFile(stateDir);
  if (recorded !== undefined && recorded.pid !== pid) return;
  await fs.rm(daemonFilePath(stateDir), { force: true });
}
