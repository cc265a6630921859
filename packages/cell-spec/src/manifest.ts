import { lstat } from 'node:fs/promises';
import { z } from 'zod';
import { AgentNameSchema, CellUuidSchema } from './agent-name.js';
import { readJsonFile, removeStaleTemps, writeJsonAtomic } from './atomic.js';
import { assertCellDir, ensureCellSubdir } from './cell-dir.js';
import { CellError } from './errors.js';
import { appendEvent } from './events.js';
import { formatIssues } from './format-issues.js';
import { IsolationLevelSchema } from './isolation.js';
import { assertTransition, CellStatusSchema, TRANSITION_EVENTS } from './lifecycle.js';
import { withFileLock } from './lock.js';
import { cellPaths } from './paths.js';
import { IsoTimestampSchema } from './timestamp.js';

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

/**
 * Reads and validates a cell's `cell.json`.
 * @param cellDir the cell directory (a real directory: a symbolic link or a file is refused).
 * @throws {CellError} CELL_NOT_FOUND, CELL_NOT_A_CELL (the cell dir is a file), CELL_INVALID
 *   (naming the file and every bad field), CELL_UNSAFE_PATH (a link), CELL_TOO_LARGE.
 * @example
 * const manifest = await readManifest('/var/missions/3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b');
 */
export async function readManifest(cellDir: string): Promise<CellManifest> {
  await assertCellDir(cellDir);
  return readJsonFile(cellPaths(cellDir).manifest, CellManifestSchema, {
    maxBytes: MANIFEST_MAX_BYTES,
  });
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
      const current = await readJsonFile(paths.manifest, CellManifestSchema, {
        maxBytes: MANIFEST_MAX_BYTES,
      });
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
          },
          {},
        );
      }
      return parsed.data;
    },
    { timeoutMs: options.lockTimeoutMs ?? 5000 },
  );
}
