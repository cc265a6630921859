import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import {
  cellPaths,
  parseJsonWith,
  readFileBeneath,
  withParentBeneath,
  writeFileAtomicBeneath,
} from '@pit/cell-spec';
import { z } from 'zod';
import type { HandoffEvent, MessageEvent } from './bus-event.js';

/** An event that is addressed to one participant and so lands in its inbox. */
export type DirectEvent = (MessageEvent & { to: string }) | HandoffEvent;

/** Whether `event` is addressed to one participant (a direct message or a handoff). */
export function isDirectEvent(event: { event: string; to?: string }): event is DirectEvent {
  return (event.event === 'message' || event.event === 'handoff') && typeof event.to === 'string';
}

/**
 * The file name of a direct event in its recipient's inbox: `<seq, 20 digits>-<id>.json`, so
 * that listing the inbox in name order lists it in stream order.
 */
export function inboxFileName(event: { seq: number; id: string }): string {
  return `${String(event.seq).padStart(20, '0')}-${event.id}.json`;
}

/**
 * Writes a direct event into `bus/inbox/<to>/` of the cell, atomically (temp file + rename):
 * a reader sees the whole event or nothing. Readers should ignore names starting with `.`
 * (temporary files).
 * @throws {CellError} CELL_BAD_NAME, CELL_IO.
 */
export async function writeInboxEvent(
  cellDir: string,
  event: DirectEvent,
  options: { fsync: boolean },
): Promise<string> {
  const path = join(cellPaths(cellDir).inbox(event.to), inboxFileName(event));
  // Beneath the cell: an inbox (or `bus/`) an agent made a link is refused, not written through.
  await writeFileAtomicBeneath(cellDir, path, `${JSON.stringify(event, null, 2)}\n`, {
    fsync: options.fsync,
    mode: 0o640,
    createParents: true,
  });
  return path;
}

/** Whether a direct event's inbox file is present. */
export async function inboxEventExists(cellDir: string, event: DirectEvent): Promise<boolean> {
  const path = join(cellPaths(cellDir).inbox(event.to), inboxFileName(event));
  return withParentBeneath(cellDir, path, {}, (directory, name) =>
    fs.lstat(directory.entry(name)),
  ).then(
    () => true,
    () => false,
  );
}

const WatermarkSchema = z.strictObject({ seq: z.number().int().nonnegative() });

/** `bus/inbox-delivered.json`: every direct event up to `seq` has been written to its inbox. */
export function watermarkPath(cellDir: string): string {
  return join(cellPaths(cellDir).bus, 'inbox-delivered.json');
}

/** Reads the inbox watermark; 0 when there is none. */
export async function readWatermark(cellDir: string): Promise<number> {
  try {
    const path = watermarkPath(cellDir);
    const text = (await readFileBeneath(cellDir, path)).toString('utf8');
    return parseJsonWith(WatermarkSchema, text, path).seq;
  } catch {
    return 0;
  }
}

/** Records that every direct event up to `seq` is in its inbox. */
export async function writeWatermark(cellDir: string, seq: number): Promise<void> {
  await writeFileAtomicBeneath(cellDir, watermarkPath(cellDir), `${JSON.stringify({ seq })}\n`, {
    fsync: false,
  });
}
