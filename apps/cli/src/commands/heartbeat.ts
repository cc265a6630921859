import { join } from 'node:path';
import {
  assertCellUuid,
  readManifest,
  writeHeartbeat,
  readHeartbeat,
  PitError,
} from '@pit/cell-spec';
import { UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import type { CellsContext } from './cells.js';

/**
 * `pit heartbeat --cell UUID --agent NAME [--status S] [--cycle N] [--pid P]`: writes an agent's
 * heartbeat for shell agents. Without `--cycle` the previous cycle is advanced by one.
 */
export async function heartbeat(
  context: CellsContext,
  options: {
    cell: string;
    agent: string;
    status?: string;
    cycle?: string;
    pid?: string;
    model?: string;
  },
): Promise<number> {
  const dir = join(context.cellsRoot, assertCellUuid(options.cell, '--cell'));
  const manifest = await readManifest(dir);
  if (!manifest.agents.some((agent) => agent.name === options.agent)) {
    throw new UsageError(
      `--agent ${options.agent}: not an agent of cell ${manifest.uuid} (agents: ${manifest.agents.map((a) => a.name).join(', ') || 'none'})`,
    );
  }
  let cycle: number;
  if (options.cycle !== undefined) {
    cycle = Number(options.cycle);
    if (!Number.isInteger(cycle) || cycle < 0)
      throw new UsageError(`--cycle ${JSON.stringify(options.cycle)}: expected a whole number ≥ 0`);
  } else {
    const previous = await readHeartbeat(dir, options.agent).catch((error: unknown) => {
      if (PitError.is(error) && error.code === 'CELL_NOT_FOUND') return undefined;
      throw error;
    });
    cycle = previous ? previous.cycle + 1 : 0;
  }
  // A shell agent's pid is its parent's (the shell that calls `pit heartbeat`), not this short-lived process.
  const pid = options.pid !== undefined ? Number(options.pid) : process.ppid;
  if (!Number.isInteger(pid) || pid <= 0)
    throw new UsageError(`--pid ${JSON.stringify(options.pid)}: expected a process id`);
  const written = await writeHeartbeat(dir, {
    agent: options.agent,
    cell_uuid: manifest.uuid,
    cycle,
    pid,
    status: options.status ?? 'ok',
    ...(options.model ? { model: options.model } : {}),
  });
  context.output.out(
    `heartbeat ${options.agent}@${manifest.uuid}: cycle ${written.cycle}, pid ${written.pid}, status ${written.status}`,
  );
  return EXIT.ok;
}
