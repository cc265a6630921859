/**
 * Which cell a CELL argument names (`pit bus tail`, `pit checkpoint`, `pit cell
 * freeze|resume|archive|join|leave`): its uuid, or a unique prefix of it as `pit status` prints
 * it (the first 8 characters). An unknown or ambiguous prefix is refused with the candidates,
 * never guessed. It reads the names in the cells root and nothing else.
 */
import { promises as fs } from 'node:fs';
import { CellUuidSchema } from '@pit/cell-spec';
import { RefusedError, UsageError } from './errors.js';

/** The shortest prefix taken: fewer characters name a cell by accident. */
const MIN_PREFIX = 4;

/**
 * The uuid of the cell `ref` names under `cellsRoot`; `where` names the argument in errors.
 * A full uuid is returned as it is (the command reports a cell that does not exist).
 * @throws {UsageError} CLI_USAGE when `ref` is neither a uuid nor a prefix of one, or names several cells.
 * @throws {RefusedError} CLI_REFUSED when no cell's uuid starts with `ref`.
 * @example
 * await resolveCellUuid('/var/lib/pit/missions', '3f2a9c1e', 'CELL'); // '3f2a9c1e-…'
 */
export async function resolveCellUuid(
  cellsRoot: string,
  ref: string,
  where: string,
): Promise<string> {
  if (CellUuidSchema.safeParse(ref).success) return ref;
  if (!/^[0-9a-f-]+$/.test(ref) || ref.length < MIN_PREFIX || ref.length > 36)
    throw new UsageError(
      `${where}: ${JSON.stringify(ref)} must be a cell uuid or a unique prefix of one (at least ${MIN_PREFIX} lower-case hex characters, as \`pit status\` prints it)`,
    );
  const names = await fs.readdir(cellsRoot).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  const matches = names
    .filter((name) => name.startsWith(ref) && CellUuidSchema.safeParse(name).success)
    .sort();
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0)
    throw new RefusedError(`${where}: no cell under ${cellsRoot} has a uuid starting with ${ref}`);
  throw new UsageError(
    `${where}: ${ref} is the start of ${matches.length} cells' uuids; give more of it: ${matches.join(', ')}`,
  );
}
