import { z } from 'zod';
import { AgentNameSchema } from './agent-name.js';
import { readJsonFile, writeJsonAtomic } from './atomic.js';
import { IsoTimestampSchema } from './manifest.js';
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
  substituted_by: AgentNameSchema.optional(),
  last_decision: z.strictObject({ action: z.string(), reason: z.string(), at: IsoTimestampSchema }).optional(),
});
export type AgentState = z.infer<typeof AgentStateSchema>;

/** `.lazarus/state.json`: written by the daemon only, atomically. */
export const CellStateSchema = z.strictObject({
  version: z.literal(1),
  updated_at: IsoTimestampSchema,
  agents: z.record(AgentNameSchema, AgentStateSchema),
});
export type CellState = z.infer<typeof CellStateSchema>;

/**
 * Reads `.lazarus/state.json`; an absent file is an empty state.
 * @throws {CellError} CELL_INVALID, CELL_UNSAFE_PATH, CELL_TOO_LARGE, CELL_IO.
 */
export async function readCellState(cellDir: string): Promise<CellState> {
  try {
    return await readJsonFile(cellPaths(cellDir).state, CellStateSchema, { maxBytes: 16 * 1024 * 1024 });
  } catch (error) {
    if ((error as { code?: string }).code === 'CELL_NOT_FOUND') return { version: 1, updated_at: new Date(0).toISOString(), agents: {} };
    throw error;
  }
}

/** Writes `.lazarus/state.json` atomically (temp, fsync, rename, fsync dir). @throws {CellError} CELL_INVALID, CELL_IO. */
export async function writeCellState(cellDir: string, state: CellState): Promise<void> {
  const value = CellStateSchema.parse(state);
  await writeJsonAtomic(cellPaths(cellDir).state, value);
}
