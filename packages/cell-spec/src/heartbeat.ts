import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readlinkSync,
  readSync,
  realpathSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { AgentNameSchema, assertAgentName, CellUuidSchema } from './agent-name.js';
import { parseJsonWith, removeStaleTemps } from './atomic.js';
import { readFileBeneath, writeFileAtomicBeneath } from './beneath.js';
import { assertCellDir, ensureCellSubdir } from './cell-dir.js';
import { CellError } from './errors.js';
import { formatIssues } from './format-issues.js';
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
  /**
   * The model provider the agent is using now (e.g. `anthropic`). Passive evidence only: the
   * daemon counts it towards that provider's health, never as authority to do anything.
   */
  provider: z.string().min(1).max(64).optional(),
  /** Provider errors the agent saw since its previous heartbeat (≤ 1 000 000). */
  provider_errors: z.number().int().nonnegative().max(1_000_000).optional(),
  /** The last provider error the agent saw, as it saw it (≤ 500 characters), e.g. `HTTP 529 overloaded`. */
  last_error: z.string().max(500).optional(),
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
 * `timestamp` defaults to now, `pid` to this process. The name is checked before anything
 * touches the disk; `.lazarus/heartbeats/` is created if missing, and refused if it (or
 * `.lazarus`) is a symbolic link or a file, so a heartbeat is never written outside the
 * cell. Temp files of a writer killed mid-write are cleaned up.
 * @throws {CellError} CELL_BAD_NAME; CELL_INVALID naming the field; CELL_TOO_LARGE over
 *   {@link HEARTBEAT_MAX_BYTES}; CELL_NOT_FOUND / CELL_NOT_A_CELL / CELL_UNSAFE_PATH for a bad
 *   cell directory; CELL_IO.
 * @example
 * await writeHeartbeat(cellDir, { agent: 'forge', cell_uuid: uuid, cycle: 12, status: 'working' });
 */
export async function writeHeartbeat(
  cellDir: string,
  heartbeat: HeartbeatInput,
  options: WriteHeartbeatOptions = {},
): Promise<Heartbeat> {
  const agent = assertAgentName(heartbeat.agent, `${cellPaths(cellDir).heartbeats}: agent`);
  const path = cellPaths(cellDir).heartbeat(agent);
  const parsed = HeartbeatSchema.safeParse({
    ...heartbeat,
    pid: heartbeat.pid ?? process.pid,
    timestamp: heartbeat.timestamp ?? Date.now() / 1000,
  });
  if (!parsed.success)
    throw new CellError(
      'CELL_INVALID',
      `${path}: heartbeat rejected: ${formatIssues(parsed.error)}`,
    );
  const text = `${JSON.stringify(parsed.data, null, 2)}\n`;
  const bytes = Buffer.byteLength(text);
  if (bytes > HEARTBEAT_MAX_BYTES)
    throw new CellError(
      'CELL_TOO_LARGE',
      `${path}: heartbeat of ${bytes} bytes exceeds the limit of ${HEARTBEAT_MAX_BYTES} bytes`,
    );
  const dir = await ensureCellSubdir(cellDir, ['.lazarus', 'heartbeats'], { create: true });
  // Through the directory opened beneath the cell: a link swapped in since the check is not followed.
  await writeFileAtomicBeneath(cellDir, `.lazarus/heartbeats/${basename(path)}`, text, {
    fsync: options.fsync ?? false,
  });
  await removeStaleTemps(dir, [basename(path)]);
  return parsed.data;
}

/**
 * Reads an agent's heartbeat. Refuses a symlink (at the file or at `.lazarus`/`heartbeats`),
 * anything that is not a regular file, a file over 64 KiB and invalid JSON, each with an error
 * naming the file and field.
 * @throws {CellError} CELL_NOT_FOUND (no heartbeat yet), CELL_UNSAFE_PATH, CELL_TOO_LARGE,
 *   CELL_INVALID, CELL_BAD_NAME, CELL_NOT_A_CELL.
 * @example
 * const beat = await readHeartbeat(cellDir, 'forge');
 * const ageS = Date.now() / 1000 - beat.timestamp;
 */
export async function readHeartbeat(cellDir: string, agent: string): Promise<Heartbeat> {
  // cellPaths(cellDir).heartbeat(agent), without building every other path of the cell (this
  // runs for every heartbeat of a fleet).
  const path = join(cellDir, '.lazarus', 'heartbeats', `${assertAgentName(agent)}.json`);
  const fast = readHeartbeatFast(cellDir, path);
  if (fast !== undefined) return parseJsonWith(HeartbeatSchema, fast, path);
  // Another read of this cell is checking it (a fleet's first reads all start at once): once its
  // directories passed, the fast path serves this read too, instead of a full walk per agent.
  const checking = cellChecks.get(cellDir);
  if (checking !== undefined && (await checking)) {
    const after = readHeartbeatFast(cellDir, path);
    if (after !== undefined) return parseJsonWith(HeartbeatSchema, after, path);
  }
  if (cellChecks.has(cellDir)) return readHeartbeatChecked(cellDir, path, () => undefined);
  let settle: (passed: boolean) => void = () => undefined;
  const check = new Promise<boolean>((resolve) => (settle = resolve));
  cellChecks.set(cellDir, check);
  const done = (passed: boolean) => {
    settle(passed);
    if (cellChecks.get(cellDir) === check) cellChecks.delete(cellDir);
  };
  try {
    return await readHeartbeatChecked(cellDir, path, () => done(true));
  } finally {
    done(false);
  }
}

/**
 * {@link readHeartbeat} when it can answer without waiting: the heartbeat of a cell that passed
 * the full checks before, read in a few system calls with every guarantee of the full read (see
 * `readHeartbeatFast`). `undefined` when it cannot (a cell not checked yet, no file, a link, a
 * file over the limit, another platform): then call {@link readHeartbeat}, which says what is
 * wrong. For a caller reading thousands of heartbeats a second (a probe scheduler).
 * @throws {CellError} CELL_INVALID for a file that is read but is not a valid heartbeat; CELL_BAD_NAME.
 * @example
 * const beat = readHeartbeatSync(cellDir, 'forge') ?? (await readHeartbeat(cellDir, 'forge'));
 */
export function readHeartbeatSync(cellDir: string, agent: string): Heartbeat | undefined {
  const path = join(cellDir, '.lazarus', 'heartbeats', `${assertAgentName(agent)}.json`);
  const fast = readHeartbeatFast(cellDir, path);
  return fast === undefined ? undefined : parseJsonWith(HeartbeatSchema, fast, path);
}

/**
 * The full path: every check, each failure named (see {@link readHeartbeat}). `cellPassed` is
 * called once the cell and its heartbeats directory passed (the cell is then remembered).
 */
async function readHeartbeatChecked(
  cellDir: string,
  path: string,
  cellPassed: () => void,
): Promise<Heartbeat> {
  await assertCellDir(cellDir);
  await ensureCellSubdir(cellDir, ['.lazarus', 'heartbeats']).catch((error: unknown) => {
    // No heartbeats directory yet: the agent has not written one.
    if ((error as CellError).code === 'CELL_NOT_FOUND')
      throw new CellError('CELL_NOT_FOUND', `${path}: no heartbeat yet`, { cause: error });
    throw error;
  });
  // The cell's checks passed: later reads of it may take the fast path (which proves, for each
  // file it opens, that no link was followed on the way).
  rememberCell(cellDir);
  cellPassed();
  const text = await readFileBeneath(cellDir, `.lazarus/heartbeats/${basename(path)}`, {
    maxBytes: HEARTBEAT_MAX_BYTES,
  });
  return parseJsonWith(HeartbeatSchema, text.toString('utf8'), path);
}

/** Full checks of a cell in progress (true when it passed), awaited by reads of the same cell. */
const cellChecks = new Map<string, Promise<boolean>>();

/** Real paths of cell directories that passed the full checks once (bounded). */
const realCellDirs = new Map<string, string>();
const REAL_CELL_DIRS_MAX = 100_000;
/** Off where `/proc/self/fd` cannot tell the path of an open file (not Linux). */
let fastPathAvailable = process.platform === 'linux';

function rememberCell(cellDir: string): void {
  if (!fastPathAvailable || realCellDirs.has(cellDir)) return;
  try {
    if (realCellDirs.size >= REAL_CELL_DIRS_MAX) realCellDirs.clear();
    realCellDirs.set(cellDir, realpathSync(cellDir));
  } catch {
    // Gone meanwhile: the next read takes the full path again.
  }
}

const FAST_READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * The common case in a few system calls, without the thread pool: open the heartbeat with
 * `O_NOFOLLOW`, then ask the kernel where the open file really is (`/proc/self/fd/N`). When that
 * is `<real cell dir>/.lazarus/heartbeats/<agent>.json` for a cell that passed the full checks
 * before, no link was followed anywhere on the way, at the instant of the open (no window between
 * a check and the open). It is a regular file within the size limit: its text. Anything else
 * (missing, a link, another place, too large, an error): `undefined`, and the caller runs the full
 * checks, which report exactly what is wrong.
 */
function readHeartbeatFast(cellDir: string, path: string): string | undefined {
  const real = fastPathAvailable ? realCellDirs.get(cellDir) : undefined;
  if (real === undefined) return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(path, FAST_READ_FLAGS);
    let where: string;
    try {
      where = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      fastPathAvailable = false;
      return undefined;
    }
    if (where !== join(real, '.lazarus', 'heartbeats', basename(path))) return undefined;
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.size > HEARTBEAT_MAX_BYTES) return undefined;
    const buffer = Buffer.allocUnsafe(stat.size + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, length);
      if (read === 0) break;
      length += read;
      // Grew past its size while read (a writer that does not rename): the full path decides.
      if (length > stat.size) return undefined;
    }
    return buffer.toString('utf8', 0, length);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
