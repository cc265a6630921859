import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { AgentNameSchema, CellUuidSchema } from './agent-name.js';
import { readJsonFile, writeJsonAtomic } from './atomic.js';
import { cellPaths } from './paths.js';

/**
 * `.lazarus/heartbeats/<agent>.json`, written atomically by the agent (any language).
 * Extra fields from newer harnesses are kept.
 */
export const HeartbeatSchema = z.looseObject({
  agent: AgentNameSchema,
  pid: z.number().int().positive(),
  /** Unix time in seconds (float). */
  timestamp: z.number().positive(),
  /** A counter the agent advances each work cycle; a fresh heartbeat whose cycle stands still means stuck. */
  cycle: z.number().int().nonnegative(),
  model: z.string().optional(),
  status: z.string().min(1),
  cell_uuid: CellUuidSchema,
});
export type Heartbeat = z.infer<typeof HeartbeatSchema>;

/** What {@link writeHeartbeat} takes: `timestamp` defaults to now, `pid` to this process. */
export interface HeartbeatInput {
  agent: string;
  cell_uuid: string;
  cycle: number;
  status: string;
  model?: string;
  timestamp?: number;
  pid?: number;
  [field: string]: unknown;
}

/** The largest heartbeat file read. */
export const HEARTBEAT_MAX_BYTES = 64 * 1024;

/** Options of {@link writeHeartbeat}. */
export interface WriteHeartbeatOptions {
  /** fsync the file and directory. Heartbeats are frequent and disposable. @default false */
  fsync?: boolean;
}

/**
 * Writes an agent's heartbeat atomically (temp + rename), for agents written in TypeScript.
 * `timestamp` defaults to now, `pid` to this process.
 * @throws {CellError} CELL_INVALID for a bad heartbeat; CELL_BAD_NAME; CELL_IO.
 * @example
 * await writeHeartbeat(cellDir, { agent: 'forge', cell_uuid: uuid, cycle: 12, status: 'working' });
 */
export async function writeHeartbeat(
  cellDir: string,
  heartbeat: HeartbeatInput,
  options: WriteHeartbeatOptions = {},
): Promise<Heartbeat> {
  const paths = cellPaths(cellDir);
  const path = paths.heartbeat(heartbeat.agent);
  const value = HeartbeatSchema.parse({ pid: process.pid, timestamp: Date.now() / 1000, ...heartbeat });
  await fs.mkdir(paths.heartbeats, { recursive: true });
  await writeJsonAtomic(path, value, { fsync: options.fsync ?? false });
  return value;
}

/**
 * Reads an agent's heartbeat. Refuses a symlink, anything that is not a regular file, a file
 * over 64 KiB and invalid JSON, each with an error naming the file and field.
 * @throws {CellError} CELL_NOT_FOUND (no heartbeat yet), CELL_UNSAFE_PATH, CELL_TOO_LARGE, CELL_INVALID, CELL_BAD_NAME.
 */
export async function readHeartbeat(cellDir: string, agent: string): Promise<Heartbeat> {
  return readJsonFile(cellPaths(cellDir).heartbeat(agent), HeartbeatSchema, { maxBytes: HEARTBEAT_MAX_BYTES });
}
