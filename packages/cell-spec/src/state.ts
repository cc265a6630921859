import { z } from 'zod';
import { AgentNameSchema } from './agent-name.js';
import { parseJsonWith } from './atomic.js';
import { readFileBeneath, writeFileAtomicBeneath } from './beneath.js';
import { assertCellDir, ensureCellSubdir } from './cell-dir.js';
import { CellError, PitError } from './errors.js';
import { formatIssues } from './format-issues.js';
import { IsoTimestampSchema } from './timestamp.js';
import { cellPaths } from './paths.js';

/** The daemon's view of one agent. */
export const AgentStateSchema = z.strictObject({
  health: z.enum(['unknown', 'healthy', 'degraded', 'dead']),
  since: IsoTimestampSchema.optional(),
  first_dead_at: IsoTimestampSchema.optional(),
  last_healthy_at: IsoTimestampSchema.optional(),
  revive_attempts: z.number().int().nonnegative().default(0),
  /** Start times of recent restarts (for restart intensity). */
  restarts: z.array(IsoTimestampSchema).default([]),
  backoff_until: IsoTimestampSchema.optional(),
  pending_approval: z.string().optional(),
  /** The process the daemon started or adopted, with its start time (clock ticks since boot) to detect pid reuse. */
  pid: z.number().int().positive().optional(),
  pid_start_time: z.number().int().nonnegative().optional(),
  /**
   * The random mark (`PIT_SPAWN`, 32 lower-case hex characters) the daemon put in the environment
   * of the process it last started, recorded before the start: with the start time, how a daemon
   * tells that process from a child that copied its environment. Kept in daemon-owned state only.
   */
  spawn_nonce: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .optional(),
  /**
   * The mark the agent's next start will carry, recorded with this start's record (ahead of
   * time), so that a restart can fork before it writes anything: a daemon killed between that
   * fork and the record of its pid finds the process by this mark. Kept in daemon-owned state only.
   */
  next_spawn_nonce: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .optional(),
  substituted_by: AgentNameSchema.optional(),
  last_decision: z
    .strictObject({ action: z.string(), reason: z.string(), at: IsoTimestampSchema })
    .optional(),
  /**
   * The operator stopped the agent (`pit stop`): it is not started, revived or counted as dead
   * until `pit start`, across daemon restarts.
   */
  stopped: z
    .strictObject({ at: IsoTimestampSchema, by: z.string().min(1), reason: z.string().optional() })
    .optional(),
  /**
   * A start or restart the operator asked for while no daemon ran (`pit start|restart`): the next
   * sweep or daemon start carries it out and clears it.
   */
  requested: z
    .strictObject({
      action: z.enum(['start', 'restart']),
      at: IsoTimestampSchema,
      by: z.string().min(1),
    })
    .optional(),
});
export type AgentState = z.infer<typeof AgentStateSchema>;

/**
 * The daemon's records of a set of agents (one cell's, or those outside cells), written by the
 * daemon only, atomically, in its own state directory. A `.lazarus/state.json` inside a cell is
 * what older daemons wrote: agent-writable, read once as a hint when migrating.
 */
export const CellStateSchema = z.strictObject({
  version: z.literal(1),
  updated_at: IsoTimestampSchema,
  agents: z.record(AgentNameSchema, AgentStateSchema),
});
export type CellState = z.infer<typeof CellStateSchema>;

/** The largest `state.json` accepted. */
export const CELL_STATE_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Reads a cell's `.lazarus/state.json` (where older daemons kept their records; agents can write
 * it, so what it says is a hint, never authority); an absent file (or absent `.lazarus/`) is an
 * empty state.
 * @throws {CellError} CELL_INVALID naming the field, CELL_UNSAFE_PATH (a link on the way),
 *   CELL_TOO_LARGE, CELL_NOT_FOUND / CELL_NOT_A_CELL for a bad cell directory, CELL_IO.
 */
export async function readCellState(cellDir: string): Promise<CellState> {
  const empty: CellState = { version: 1, updated_at: new Date(0).toISOString(), agents: {} };
  await assertCellDir(cellDir);
  try {
    await ensureCellSubdir(cellDir, ['.lazarus']);
    const text = await readFileBeneath(cellDir, '.lazarus/state.json', {
      maxBytes: CELL_STATE_MAX_BYTES,
    });
    return parseJsonWith(CellStateSchema, text.toString('utf8'), cellPaths(cellDir).state);
  } catch (error) {
    if (PitError.is(error) && error.code === 'CELL_NOT_FOUND') return empty;
    throw error;
  }
}

/**
 * Writes a cell's `.lazarus/state.json` atomically (temp, fsync, rename, fsync dir). The daemon
 * no longer does (its records live in its state directory); kept for tools and tests.
 * @throws {CellError} CELL_INVALID naming the field (nothing written), CELL_UNSAFE_PATH,
 *   CELL_NOT_FOUND / CELL_NOT_A_CELL for a bad cell directory, CELL_IO.
 */
export async function writeCellState(cellDir: string, state: CellState): Promise<void> {
  const path = cellPaths(cellDir).state;
  const parsed = CellStateSchema.safeParse(state);
  if (!parsed.success)
    throw new CellError('CELL_INVALID', `${path}: state rejected: ${formatIssues(parsed.error)}`);
  await ensureCellSubdir(cellDir, ['.lazarus'], { create: true });
  await writeFileAtomicBeneath(
    cellDir,
    '.lazarus/state.json',
    `${JSON.stringify(parsed.data, null, 2)}\n`,
  );
}
