import { z } from 'zod';
import { AgentNameSchema, CellUuidSchema } from './agent-name.js';
import { readJsonFile, writeJsonAtomic } from './atomic.js';
import { CellError } from './errors.js';
import { formatIssues } from './format-issues.js';
import { IsolationLevelSchema } from './isolation.js';
import { CellStatusSchema } from './lifecycle.js';
import { withFileLock } from './lock.js';
import { cellPaths } from './paths.js';

/** ISO-8601 timestamp in UTC (`2026-11-22T17:43:00.000Z`). */
export const IsoTimestampSchema = z.iso.datetime({ offset: false, message: 'must be an ISO-8601 UTC timestamp (…Z)' });

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
      if (seen.has(agent.name)) context.addIssue({ code: 'custom', path: ['agents', index, 'name'], message: `duplicate agent name ${agent.name}` });
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
 * @param cellDir the cell directory.
 * @throws {CellError} CELL_NOT_FOUND, CELL_INVALID (naming the field), CELL_UNSAFE_PATH, CELL_TOO_LARGE.
 */
export async function readManifest(cellDir: string): Promise<CellManifest> {
  return readJsonFile(cellPaths(cellDir).manifest, CellManifestSchema, { maxBytes: MANIFEST_MAX_BYTES });
}

/** Options of {@link updateManifest}. */
export interface UpdateManifestOptions {
  /** Refuse with CELL_CONFLICT unless the manifest is still at this revision (compare-and-swap). */
  expectedRevision?: number;
  /** How long to wait for another writer. @default 5000 (ms) */
  lockTimeoutMs?: number;
  /** Clock, for tests. @default () => new Date() */
  now?: () => Date;
}

/**
 * Reads the manifest, applies `change`, validates and writes it atomically, under a lock
 * (`cell.json.lock`) so that two processes updating at once both survive, in some order.
 * `change` may mutate its argument or return a new manifest. The revision is incremented.
 * @throws {CellError} CELL_CONFLICT when `expectedRevision` no longer holds; CELL_INVALID
 *   when the result breaks the schema (nothing is written); CELL_LOCKED; CELL_IO.
 * @example
 * await updateManifest(dir, (m) => { m.issue = 'https://…/issues/7'; });
 */
export async function updateManifest(
  cellDir: string,
  change: (manifest: CellManifest) => CellManifest | void | Promise<CellManifest | void>,
  options: UpdateManifestOptions = {},
): Promise<CellManifest> {
  const paths = cellPaths(cellDir);
  return withFileLock(
    `${paths.manifest}.lock`,
    async () => {
      const current = await readManifest(cellDir);
      if (options.expectedRevision !== undefined && current.revision !== options.expectedRevision) {
        throw new CellError('CELL_CONFLICT', `${paths.manifest}: revision is ${current.revision}, expected ${options.expectedRevision}; someone else updated it first`);
      }
      const draft = structuredClone(current);
      const returned = await change(draft);
      const next = returned ?? draft;
      if (next.uuid !== current.uuid) throw new CellError('CELL_INVALID', `${paths.manifest}: uuid: may not change (${current.uuid} → ${next.uuid})`);
      const candidate = { ...next, revision: current.revision + 1, updated_at: (options.now?.() ?? new Date()).toISOString() };
      const parsed = CellManifestSchema.safeParse(candidate);
      if (!parsed.success) {
        throw new CellError('CELL_INVALID', `${paths.manifest}: update rejected: ${formatIssues(parsed.error)}`);
      }
      await writeJsonAtomic(paths.manifest, parsed.data);
      return parsed.data;
    },
    { timeoutMs: options.lockTimeoutMs ?? 5000 },
  );
}

