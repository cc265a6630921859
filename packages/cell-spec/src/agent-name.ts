import { z } from 'zod';
import { CellError } from './errors.js';

/** Agent names become file names: lower-case identifiers, 1–64 characters. */
export const AGENT_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * An agent name (`^[a-z0-9][a-z0-9._-]{0,63}$`); anything else is refused before it touches the disk.
 * The pattern alone keeps names safe as file names: no `/`, no leading `.` (so never `.` or `..`),
 * and it is exactly what the published JSON Schema checks, so every language agrees.
 */
export const AgentNameSchema = z
  .string()
  .regex(AGENT_NAME_PATTERN, { message: `must match ${AGENT_NAME_PATTERN.source}` });
export type AgentName = z.infer<typeof AgentNameSchema>;

/** A version-4 UUID in lower case: the name of a cell's directory. */
export const CellUuidSchema = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, {
    message: 'must be a lower-case version-4 UUID',
  });

/**
 * Returns `name` if it is a valid agent name.
 * @throws {CellError} CELL_BAD_NAME when it is not.
 */
export function assertAgentName(name: unknown, where = 'agent name'): string {
  const parsed = AgentNameSchema.safeParse(name);
  if (!parsed.success) {
    throw new CellError(
      'CELL_BAD_NAME',
      `${where}: ${JSON.stringify(name)} must match ${AGENT_NAME_PATTERN.source}`,
    );
  }
  return parsed.data;
}

/**
 * Returns `uuid` if it is a version-4 UUID.
 * @throws {CellError} CELL_BAD_NAME when it is not.
 */
export function assertCellUuid(uuid: unknown, where = 'cell uuid'): string {
  const parsed = CellUuidSchema.safeParse(uuid);
  if (!parsed.success)
    throw new CellError(
      'CELL_BAD_NAME',
      `${where}: ${JSON.stringify(uuid)} must be a lower-case version-4 UUID`,
    );
  return parsed.data;
}
