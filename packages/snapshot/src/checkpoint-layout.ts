import { join } from 'node:path';
import { IsoTimestampSchema, Sha256Schema } from '@pit/cell-spec';
import { z } from 'zod';
import { SnapshotError } from './errors.js';

/** A checkpoint name: its UTC timestamp made safe as a file name (`2026-11-22T17-43-00.123Z`), plus `-<n>` when two share a millisecond. */
export const CHECKPOINT_NAME_PATTERN =
  /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}Z(?:-[1-9]\d{0,5})?$/;

/** `checkpoints/<name>.json`: describes `checkpoints/<name>.tar.gz`. Written after the archive; its presence is what makes a checkpoint exist. */
export const CheckpointManifestSchema = z.strictObject({
  /** When the checkpoint was taken (ISO-8601 UTC). */
  ts: IsoTimestampSchema,
  /** The checkpoint's name (file names `<name>.tar.gz` / `<name>.json`). */
  name: z.string().regex(CHECKPOINT_NAME_PATTERN),
  /** sha256 of the `.tar.gz` file. */
  sha256: Sha256Schema,
  /** Size of the `.tar.gz` file. (bytes) */
  bytes: z.number().int().nonnegative(),
  /** Regular files in the archive. */
  files: z.number().int().nonnegative(),
  /** Archive entries (files, directories, links). */
  entries: z.number().int().nonnegative(),
  /** Bytes of file content once unpacked. */
  unpacked_bytes: z.number().int().nonnegative(),
  created_by: z.string().min(1),
  reason: z.string(),
  /** Paths left out (a symlink pointing out of the workspace, a FIFO, a socket, a device). */
  skipped: z.array(z.strictObject({ path: z.string(), reason: z.string() })),
});
export type CheckpointManifest = z.infer<typeof CheckpointManifestSchema>;

/** The name a checkpoint taken at `date` gets (before any `-<n>` suffix). */
export function checkpointStamp(date: Date): string {
  return date.toISOString().replace(/:/g, '-');
}

/** Sort key: timestamp, then suffix. */
export function compareCheckpointNames(a: string, b: string): number {
  const [stampA = '', suffixA = '0'] = a.split(/Z-?/);
  const [stampB = '', suffixB = '0'] = b.split(/Z-?/);
  if (stampA !== stampB) return stampA < stampB ? -1 : 1;
  return Number(suffixA || 0) - Number(suffixB || 0);
}

/**
 * Returns `name` if it is a checkpoint name (so it can never address a file outside `checkpoints/`).
 * @throws {SnapshotError} SNAPSHOT_BAD_NAME.
 */
export function assertCheckpointName(name: string): string {
  if (typeof name !== 'string' || !CHECKPOINT_NAME_PATTERN.test(name)) {
    throw new SnapshotError(
      'SNAPSHOT_BAD_NAME',
      `checkpoint ${JSON.stringify(name)}: expected a name like 2026-11-22T17-43-00.123Z`,
    );
  }
  return name;
}

/** The two files of a checkpoint. */
export function checkpointFiles(
  checkpointsDir: string,
  name: string,
): { archive: string; manifest: string } {
  return {
    archive: join(checkpointsDir, `${name}.tar.gz`),
    manifest: join(checkpointsDir, `${name}.json`),
  };
}
