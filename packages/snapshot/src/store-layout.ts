import { join } from 'node:path';
import { AgentNameSchema, IsoTimestampSchema, Sha256Schema } from '@pit/cell-spec';
import { z } from 'zod';

const AbsolutePathSchema = z.string().startsWith('/', { message: 'must be an absolute path' });
const ModeSchema = z.number().int().min(0).max(0o7777);

/** One entry of a config set: a regular file, a symbolic link inside a config directory, or a directory. */
export const SetEntrySchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('file'),
    path: AbsolutePathSchema,
    sha256: Sha256Schema,
    size: z.number().int().nonnegative(),
    mode: ModeSchema,
  }),
  z.strictObject({
    kind: z.literal('symlink'),
    path: AbsolutePathSchema,
    sha256: Sha256Schema,
    target: z.string().min(1),
  }),
  z.strictObject({ kind: z.literal('dir'), path: AbsolutePathSchema, mode: ModeSchema }),
]);
export type SetEntry = z.infer<typeof SetEntrySchema>;

/** A path the caller named: a file, or a directory walked in a stable (byte-wise sorted) order. */
export const SetRootSchema = z.strictObject({
  path: AbsolutePathSchema,
  kind: z.enum(['file', 'dir']),
});
export type SetRoot = z.infer<typeof SetRootSchema>;

/** `sets/<sha256>.json`: one snapshot of an agent's config, hashed as a whole (`sha256`) and per file. */
export const ConfigSetSchema = z.strictObject({
  version: z.literal(1),
  agent: AgentNameSchema,
  sha256: Sha256Schema,
  created_at: IsoTimestampSchema,
  roots: z.array(SetRootSchema).min(1),
  entries: z.array(SetEntrySchema),
});
export type ConfigSet = z.infer<typeof ConfigSetSchema>;

/** One retained snapshot in the pointer's history. */
export const HistoryItemSchema = z.strictObject({ set: Sha256Schema, at: IsoTimestampSchema });
export type HistoryItem = z.infer<typeof HistoryItemSchema>;

/** `last-good.json`: the atomic pointer to the last-known-good set, with the retained history (newest first). */
export const PointerSchema = z
  .strictObject({
    version: z.literal(1),
    agent: AgentNameSchema,
    current: Sha256Schema,
    history: z.array(HistoryItemSchema).min(1),
  })
  .refine((pointer) => pointer.history[0]?.set === pointer.current, {
    message: 'history[0] must be the current set',
    path: ['history'],
  });
export type Pointer = z.infer<typeof PointerSchema>;

/** A file moved out of a config directory by a rollback (it was added after the snapshot). */
export const AsideFileSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('file'),
    path: AbsolutePathSchema,
    sha256: Sha256Schema,
    mode: ModeSchema,
  }),
  z.strictObject({
    kind: z.literal('symlink'),
    path: AbsolutePathSchema,
    sha256: Sha256Schema,
    target: z.string().min(1),
  }),
]);
export type AsideFile = z.infer<typeof AsideFileSchema>;

/** `aside/<rollback id>.json`: what a rollback moved aside, kept so nothing is ever lost. */
export const AsideRecordSchema = z.strictObject({
  version: z.literal(1),
  agent: AgentNameSchema,
  rollback_id: z.string().regex(/^[0-9a-f]{32}$/),
  at: IsoTimestampSchema,
  files: z.array(AsideFileSchema),
});
export type AsideRecord = z.infer<typeof AsideRecordSchema>;

/** One file a rollback writes. `temp` is the prepared temporary file beside `path`. */
export const JournalWriteSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('file'),
    path: AbsolutePathSchema,
    sha256: Sha256Schema,
    mode: ModeSchema,
    temp: AbsolutePathSchema,
    old_sha256: Sha256Schema.nullable(),
  }),
  z.strictObject({
    kind: z.literal('symlink'),
    path: AbsolutePathSchema,
    sha256: Sha256Schema,
    target: z.string().min(1),
    temp: AbsolutePathSchema,
    old_sha256: Sha256Schema.nullable(),
  }),
]);
export type JournalWrite = z.infer<typeof JournalWriteSchema>;

/**
 * `journal.json`: a rollback in flight. Written (atomically) before the live config is
 * touched; `prepare` means temporary files may exist and nothing was renamed (undo: delete
 * them), `commit` means every temporary file is complete and durable (redo: rename the rest).
 */
export const JournalSchema = z.strictObject({
  version: z.literal(1),
  agent: AgentNameSchema,
  id: z.string().regex(/^[0-9a-f]{32}$/),
  phase: z.enum(['prepare', 'commit']),
  started_at: IsoTimestampSchema,
  source: z.enum(['snapshot', 'git']),
  set: Sha256Schema.nullable(),
  dirs: z.array(z.strictObject({ path: AbsolutePathSchema, mode: ModeSchema })),
  writes: z.array(JournalWriteSchema),
  aside: z.array(AsideFileSchema),
  /** The request-log line, already validated against the `config_rolled_back` event. */
  record: z.string(),
  request_log: z.string().nullable(),
});
export type Journal = z.infer<typeof JournalSchema>;

/** The files of one agent's store (`<state_dir>/snapshots/<agent>/`). */
export interface StorePaths {
  /** `<state_dir>/snapshots/<agent>` */
  dir: string;
  /** `objects/`: file contents by sha256 (read-only, immutable). */
  objects: string;
  /** `sets/`: one JSON manifest per snapshot, by the set's sha256. */
  sets: string;
  /** `aside/`: records of files a rollback moved out of the way. */
  aside: string;
  /** `last-good.json`: the atomic pointer to the last-known-good set and the history. */
  pointer: string;
  /** `journal.json`: a rollback in flight (absent at rest). */
  journal: string;
  /** `.lock`: held while the store is written. */
  lock: string;
  /** `objects/<sha256>` */
  object(sha256: string): string;
  /** `sets/<sha256>.json` */
  set(sha256: string): string;
}

/** The layout of one agent's snapshot store under `stateDir`. The agent name must already be checked. */
export function storePaths(stateDir: string, agent: string): StorePaths {
  const dir = join(stateDir, 'snapshots', agent);
  const objects = join(dir, 'objects');
  const sets = join(dir, 'sets');
  return {
    dir,
    objects,
    sets,
    aside: join(dir, 'aside'),
    pointer: join(dir, 'last-good.json'),
    journal: join(dir, 'journal.json'),
    lock: join(dir, '.lock'),
    object: (sha) => join(objects, sha),
    set: (sha) => join(sets, `${sha}.json`),
  };
}
