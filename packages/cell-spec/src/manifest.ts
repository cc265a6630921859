import { statSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { z } from 'zod';
import { AgentNameSchema, CellUuidSchema } from './agent-name.js';
import { readFileSafe, removeStaleTemps, writeJsonAtomic } from './atomic.js';
import { assertCellDir, ensureCellSubdir } from './cell-dir.js';
import { CellError } from './errors.js';
import { appendEvent } from './events.js';
import type { CellEventInput } from './event-kinds.js';
import { formatIssues } from './format-issues.js';
import { IsolationLevelSchema } from './isolation.js';
import { assertTransition, CellStatusSchema, TRANSITION_EVENTS } from './lifecycle.js';
import { withFileLock } from './lock.js';
import { cellPaths } from './paths.js';
import { IsoTimestampSchema } from './timestamp.js';
import { applySeedDefaults } from './seed-manifest.js';

export { IsoTimestampSchema } from './timestamp.js';

/** An agent of a cell, as listed in `cell.json`. */
export const CellAgentSchema = z.strictObject({
  name: AgentNameSchema,
  role: z.string().min(1),
  joined_at: IsoTimestampSchema,
  /** The agent's home directory, hidden from other agents at isolation level 2. */
  home: z.string().startsWith('/').optional(),
});
export type CellAgent = z.infer<typeof CellAgentSchema>;

/** `cell.json`: the identity and status of a mission cell. */
export const CellManifestSchema = z
  .strictObject({
    uuid: CellUuidSchema,
    name: z.string().min(1).max(200).optional(),
    mission: z.string().min(1),
    created_at: IsoTimestampSchema,
    created_by: z.string().min(1),
    status: CellStatusSchema,
    agents: z.array(CellAgentSchema),
    isolation: z.strictObject({ level: IsolationLevelSchema }).optional(),
    issue: z.string().min(1).optional(),
    repo: z.string().min(1).optional(),
    /** Incremented by every update; lets a writer detect that someone else wrote first. */
    revision: z.number().int().nonnegative().default(0),
    updated_at: IsoTimestampSchema.optional(),
  })
  .superRefine((manifest, context) => {
    const seen = new Set<string>();
    manifest.agents.forEach((agent, index) => {
      if (seen.has(agent.name))
        context.addIssue({
          code: 'custom',
          path: ['agents', index, 'name'],
          message: `duplicate agent name ${agent.name}`,
        });
      seen.add(agent.name);
    });
  });
export type CellManifest = z.infer<typeof CellManifestSchema>;
/** What a writer supplies (revision may be omitted). */
export type CellManifestInput = z.input<typeof CellManifestSchema>;

/** The largest `cell.json` accepted. */
export const MANIFEST_MAX_BYTES = 1024 * 1024;

/** A manifest as read, with the seed-format fields that were absent and defaulted. */
export interface ParsedManifest {
  manifest: CellManifest;
  /**
   * Fields a seed-format `cell.json` left out and the Pit defaulted (`created_at`,
   * `agents.0.role`, …; see `SEED_MANIFEST_DEFAULTS`); empty for a full manifest.
   */
  defaulted: string[];
}

/** When `cell.json` was last modified (a seed manifest's `created_at`), or the epoch when unknown. */
function manifestTime(path: string): string {
  try {
    return statSync(path).mtime.toISOString();
  } catch {
    return new Date(0).toISOString();
  }
}

/**
 * Parses a `cell.json`'s text: a seed-format manifest (`{uuid, status, mission, agents:
 * [{name}]}`) has its missing fields defaulted (`created_at`: the file's modification time;
 * `created_by`: `unknown`; `agents[].role`: `unspecified`; `agents[].joined_at`: the cell's
 * `created_at`) and they are listed in `defaulted`. Defaults describe; they never grant.
 * @param path the file, named in errors (and stat'ed for a missing `created_at`).
 * @throws {CellError} CELL_INVALID naming the file and every bad field.
 * @example
 * const { manifest, defaulted } = parseManifest(text, '/var/missions/3f2a…/cell.json');
 */
export function parseManifest(text: string, path: string): ParsedManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new CellError('CELL_INVALID', `${path}: not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const { value, defaulted } = applySeedDefaults(raw, () => manifestTime(path));
  const parsed = CellManifestSchema.safeParse(value);
  if (!parsed.success)
    throw new CellError('CELL_INVALID', `${path}: ${formatIssues(parsed.error)}`, {
      cause: parsed.error,
    });
  return { manifest: parsed.data, defaulted };
}

/** Reads and parses `cell.json` (seed-format fields defaulted, see {@link parseManifest}). */
async function readManifestFile(path: string): Promise<ParsedManifest> {
  const buffer = await readFileSafe(path, { maxBytes: MANIFEST_MAX_BYTES });
  return parseManifest(buffer.toString('utf8'), path);
}

/**
 * Reads and validates a cell's `cell.json` (a seed-format one has its missing fields defaulted,
 * see {@link parseManifest}).
 * @param cellDir the cell directory (a real directory: a symbolic link or a file is refused).
 * @throws {CellError} CELL_NOT_FOUND, CELL_NOT_A_CELL (the cell dir is a file), CELL_INVALID
 *   (naming the file and every bad field), CELL_UNSAFE_PATH (a link), CELL_TOO_LARGE.
 * @example
 * const manifest = await readManifest('/var/missions/3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b');
 */
export async function readManifest(cellDir: string): Promise<CellManifest> {
  await assertCellDir(cellDir);
  return (await readManifestFile(cellPaths(cellDir).manifest)).manifest;
}

/** Options of {@link updateManifest}. */
export interface UpdateManifestOptions {
  /** Refuse with CELL_CONFLICT unless the manifest is still at this revision (compare-and-swap). */
  expectedRevision?: number;
  /** How long to wait for another writer. @default 5000 (ms) */
  lockTimeoutMs?: number;
  /** Clock, for tests. @default () => new Date() */
  now?: () => Date;
  /** Recorded as `reason` in the lifecycle event when the update changes `status`. */
  reason?: string;
}

/**
 * Reads the manifest, applies `change`, validates and writes it atomically (temp, fsync,
 * rename, fsync dir), under a lock (`cell.json.lock`) so that two processes updating at once
 * both survive, in some order: no update is ever lost. `change` may mutate its argument or
 * return a new manifest. The revision is incremented and `updated_at` set.
 * A change of `status` must be a legal lifecycle transition, and appends its event
 * (`cell_frozen`, …, with `from` and `reason`) to `logs/events.jsonl` while the lock is held,
 * so the log's order is the manifest's order. {@link transitionCell} is the usual way.
 * A seed-format manifest's defaulted fields (see {@link parseManifest}) are written out with it.
 * @throws {CellError} CELL_CONFLICT when `expectedRevision` no longer holds;
 *   CELL_ILLEGAL_TRANSITION naming both states; CELL_INVALID when the result breaks the schema
 *   or changes `uuid` (nothing is written); CELL_LOCKED (retryable); CELL_NOT_FOUND;
 *   CELL_NOT_A_CELL; CELL_UNSAFE_PATH; CELL_IO. An error thrown by `change` is passed through.
 * @example
 * await updateManifest(dir, (m) => { m.issue = 'https://…/issues/7'; });
 */
export async function updateManifest(
  cellDir: string,
  change: (manifest: CellManifest) => CellManifest | void | Promise<CellManifest | void>,
  options: UpdateManifestOptions = {},
): Promise<CellManifest> {
  const paths = cellPaths(cellDir);
  await assertCellDir(cellDir);
  return withFileLock(
    `${paths.manifest}.lock`,
    async () => {
      // Temp files of writers killed mid-update: under the lock none of them is in flight.
      await removeStaleTemps(cellDir, ['cell.json', 'cell.json.lock'], { maxAgeMs: 60_000 });
      // A seed-format manifest's defaults are written out with the first update.
      const { manifest: current } = await readManifestFile(paths.manifest);
      if (options.expectedRevision !== undefined && current.revision !== options.expectedRevision) {
        throw new CellError(
          'CELL_CONFLICT',
          `${paths.manifest}: revision is ${current.revision}, expected ${options.expectedRevision}; someone else updated it first`,
        );
      }
      const draft = structuredClone(current);
      const returned = await change(draft);
      const next = returned ?? draft;
      if (next.uuid !== current.uuid)
        throw new CellError(
          'CELL_INVALID',
          `${paths.manifest}: uuid: may not change (${current.uuid} → ${String(next.uuid)})`,
        );
      const now = options.now?.() ?? new Date();
      const candidate = { ...next, revision: current.revision + 1, updated_at: now.toISOString() };
      const parsed = CellManifestSchema.safeParse(candidate);
      if (!parsed.success) {
        throw new CellError(
          'CELL_INVALID',
          `${paths.manifest}: update rejected: ${formatIssues(parsed.error)}`,
        );
      }
      const from = current.status;
      const to = parsed.data.status;
      if (from !== to) {
        assertTransition(from, to, paths.manifest);
        // Check before writing that the event can be appended inside the cell.
        await ensureCellSubdir(cellDir, ['logs'], { create: true });
        const events = await lstat(paths.events).catch(() => undefined);
        if (events && !events.isFile()) {
          throw new CellError(
            'CELL_UNSAFE_PATH',
            `${paths.events}: expected a regular file to log the move from ${from} to ${to}; nothing written`,
          );
        }
      }
      await writeJsonAtomic(paths.manifest, parsed.data);
      if (from !== to && to !== 'provisioning') {
        await appendEvent(
          paths.events,
          {
            ts: now.toISOString(),
            event: TRANSITION_EVENTS[to],
            from,
            ...(options.reason ? { reason: options.reason } : {}),
            // One of four lifecycle kinds: TypeScript does not discriminate a union this long
            // against a union-typed kind by itself.
          } as CellEventInput,
          // Reached from the cell without following a link at any component.
          { beneath: cellDir },
        );
      }
      return parsed.data;
    },
    { timeoutMs: options.lockTimeoutMs ?? 5000 },
  );
}
