/**
 * Membership: which agents the operator has let into which cells. A cell's `cell.json` is
 * written by its agents as much as by the operator, so it names candidates only; an agent is
 * supervised in a cell when its manifest lists it **and** the operator granted it: in the config
 * (`[agents.<name>] cell = "<uuid>"` or `cells = [...]`) or in `<state_dir>/members.json`, the
 * daemon-owned record written by `pit cell create` (the cell's first agents), `pit cell join` /
 * `leave`, the daemon's substitutions, a cluster takeover (the grants the cell had on the host
 * that is gone, as that host's daemon recorded them: cluster/cell-store.ts), and once, at the first start of a daemon that has no such
 * file, for every cell that exists then (the migration). This module owns that file (reading,
 * the one-time migration, grants and withdrawals) and the rule; it never reads or writes a cell.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  AgentNameSchema,
  cellPaths,
  CellUuidSchema,
  type CellEventInput,
  PitError,
  readJsonFile,
  withFileLock,
  writeJsonAtomic,
  type Logger,
} from '@pit/cell-spec';
import type { PitConfig } from './config-schema.js';
import type { Refusal } from './discovery.js';
import { DaemonError } from './errors.js';

/** How a grant came about. */
export const GRANT_SOURCES = ['create', 'join', 'substitute', 'migration', 'takeover'] as const;

/** One agent's grant in one cell. */
export const GrantSchema = z.strictObject({
  /** ISO-8601 UTC. */
  granted_at: z.string(),
  by: z.enum(GRANT_SOURCES),
});

/** `<state_dir>/members.json`. */
export const MembersFileSchema = z.strictObject({
  version: z.literal(1),
  /** When the cells that existed at the first start were recorded (absent: none were). */
  migrated_at: z.string().optional(),
  /** Cell uuid → agent name → grant. */
  cells: z.record(CellUuidSchema, z.record(AgentNameSchema, GrantSchema)),
});

/** The parsed members file. */
export type MembersFile = z.output<typeof MembersFileSchema>;

/** How a grant came about (one of {@link GRANT_SOURCES}). */
export type GrantSource = (typeof GRANT_SOURCES)[number];

/** What the membership rule reads of the members file: who may run in which cell, and how (not since when). */
export interface MemberGrants {
  /** Cell uuid → agent name → how it was granted. */
  cells: Record<string, Record<string, { by: GrantSource }>>;
}

/** One frozen grant per source, shared by every grant {@link grantsOf} keeps. */
const GRANTS_BY = Object.fromEntries(
  GRANT_SOURCES.map((by) => [by, Object.freeze({ by })]),
) as Record<GrantSource, Readonly<{ by: GrantSource }>>;

/**
 * The grants of a members file without their times: what discovery keeps between reads (one
 * shared object per source, not a grant object and a time string per agent).
 */
export function grantsOf(members: MembersFile): MemberGrants {
  const cells: MemberGrants['cells'] = {};
  for (const [cell, agents] of Object.entries(members.cells)) {
    const grants: Record<string, { by: GrantSource }> = {};
    for (const [agent, grant] of Object.entries(agents)) grants[agent] = GRANTS_BY[grant.by];
    cells[cell] = grants;
  }
  return { cells };
}

/** What one read of the members file gave. */
export interface MembersRead {
  members: MembersFile;
  /** `false` when the file does not exist yet (the migration has not run). */
  exists: boolean;
  /** Set when the file could not be used: it then grants nothing and is never migrated over. */
  problem?: string;
}

const EMPTY: MembersFile = { version: 1, cells: {} };

/**
 * The largest members file read (bytes). The file is the daemon's own (no agent can write it), so
 * the limit only guards against nonsense: a grant is about 100 bytes, and 10,000 agents in cells
 * already take 1 MiB, the default limit of a read (which refused it: every cell agent was then
 * un-supervised at the next discovery pass).
 */
export const MEMBERS_MAX_BYTES = 64 * 1024 * 1024;

/** Where the members file lives. */
export const membersPath = (stateDir: string): string => join(stateDir, 'members.json');

/**
 * Reads the members file. A missing file is `exists: false`; a damaged one grants nothing and is
 * reported (and, existing, is never replaced by a migration).
 */
export async function readMembers(stateDir: string): Promise<MembersRead> {
  const path = membersPath(stateDir);
  try {
    return {
      members: await readJsonFile(path, MembersFileSchema, { maxBytes: MEMBERS_MAX_BYTES }),
      exists: true,
    };
  } catch (error) {
    if (PitError.is(error) && error.code === 'CELL_NOT_FOUND')
      return { members: EMPTY, exists: false };
    return {
      members: EMPTY,
      exists: true,
      problem: `${error instanceof Error ? error.message : String(error)} (no cell membership is granted from it until it is repaired)`,
    };
  }
}

/** A change to the members file, given the current content; return it changed. */
export type MembersChange = (members: MembersFile) => MembersFile;

/**
 * Reads, changes and writes the members file atomically, holding `members.json.lock` (the
 * daemon and the CLI both write it; a lock left by a dead process is broken). When the file does not exist yet,
 * `migrate` (if given) runs first, so that the first writer — a daemon's first start or the
 * operator's first `pit cell create`/`join` — records the cells that exist at that moment.
 * @throws {DaemonError} DAEMON_IO when the file is damaged (it is left as it is for the operator to repair).
 * @throws {CellError} CELL_LOCKED (retryable) when another writer holds the lock for over 10 s.
 */
export async function updateMembers(
  stateDir: string,
  change: MembersChange,
  migrate?: MembersChange,
): Promise<MembersFile> {
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  // The daemon (substitutions) and the CLI (`pit cell join|leave`) both write it: the read, the
  // change and the write happen under one lock, so neither loses the other's change.
  return withFileLock(
    `${membersPath(stateDir)}.lock`,
    async () => {
      const read = await readMembers(stateDir);
      if (read.problem) throw new DaemonError('DAEMON_IO', read.problem);
      const base = !read.exists && migrate ? migrate(read.members) : read.members;
      const next = change(base);
      await writeJsonAtomic(membersPath(stateDir), next, { mode: 0o600 });
      return next;
    },
    { timeoutMs: MEMBERS_LOCK_TIMEOUT_MS },
  );
}

/** How long an update of the members file waits for another writer's lock (ms). */
const MEMBERS_LOCK_TIMEOUT_MS = 10_000;

/** Adds grants of `agents` in `cell` (existing grants are kept as they are). */
export function grant(
  cell: string,
  agents: string[],
  by: (typeof GRANT_SOURCES)[number],
  now: Date,
): MembersChange {
  return (members) => {
    const cellGrants = { ...members.cells[cell] };
    for (const agent of agents) cellGrants[agent] ??= { granted_at: now.toISOString(), by };
    return { ...members, cells: { ...members.cells, [cell]: cellGrants } };
  };
}

/** Withdraws `agent`'s grant in `cell`. */
export function withdraw(cell: string, agent: string): MembersChange {
  return (members) => {
    const cellGrants = { ...members.cells[cell] };
    delete cellGrants[agent];
    const cells = { ...members.cells, [cell]: cellGrants };
    if (Object.keys(cellGrants).length === 0) delete cells[cell];
    return { ...members, cells };
  };
}

/** The migration: every agent the given cells' manifests list, granted once. */
export function migration(
  cells: Array<{ uuid: string; agents: string[] }>,
  now: Date,
): MembersChange {
  return (members) => {
    let next: MembersFile = { ...members, migrated_at: now.toISOString() };
    for (const cell of cells) next = grant(cell.uuid, cell.agents, 'migration', now)(next);
    return next;
  };
}

/** Why an agent listed in a cell's manifest may run there, or `undefined` when it may not. */
export function grantOf(
  config: PitConfig,
  members: MemberGrants,
  cell: string,
  agent: string,
): 'config' | GrantSource | undefined {
  const agentConfig = config.agents[agent];
  if (agentConfig?.cell === 'none') return undefined;
  if (agentConfig?.cell === cell || agentConfig?.cells.includes(cell)) return 'config';
  // Pinned to another cell: only that cell.
  if (agentConfig?.cell !== undefined) return undefined;
  return members.cells[cell]?.[agent]?.by;
}

/**
 * The members as the daemon reads them every discovery pass, migrating once: when the file does
 * not exist, every agent of `cells` (the cells found now) is recorded, and each cell is logged as
 * a notice. Never throws: a file that cannot be used grants nothing and comes back as a problem.
 */
export async function loadMembers(options: {
  stateDir: string;
  cells: Array<{ uuid: string; agents: string[] }>;
  now: Date;
  logger: Logger;
}): Promise<MembersRead> {
  const read = await readMembers(options.stateDir);
  if (read.exists) return read;
  try {
    const members = await updateMembers(
      options.stateDir,
      (current) => current,
      migration(options.cells, options.now),
    );
    for (const cell of options.cells)
      options.logger.warn(
        'membership: existing cell recorded once; from now on only the config, pit cell create and pit cell join grant agents',
        { cell: cell.uuid, agents: cell.agents, file: membersPath(options.stateDir) },
      );
    return { members, exists: true };
  } catch (error) {
    return {
      members: EMPTY,
      exists: false,
      problem: `${membersPath(options.stateDir)}: cannot record the existing cells (${error instanceof Error ? error.message : String(error)}); no cell membership is granted until it can`,
    };
  }
}

/**
 * Reports what a manifest asked for and the daemon refused (discovery.ts's refusals): a
 * `manifest_refused` event in the cell's log and a warning, once per cell, agent and field for
 * as long as this daemon runs (the status keeps listing them as problems on every pass).
 */
export function createRefusalReporter(options: {
  logger: Logger;
  append: (eventsPath: string, input: CellEventInput, key: string) => Promise<void>;
}): (refused: Refusal[]) => void {
  const reported = new Set<string>();
  return (refused) => {
    for (const refusal of refused) {
      const id = `${refusal.cell.uuid}/${refusal.agent}/${refusal.field}`;
      if (reported.has(id)) continue;
      reported.add(id);
      options.logger.warn('cell manifest refused', {
        cell: refusal.cell.uuid,
        agent: refusal.agent,
        field: refusal.field,
        reason: refusal.reason,
      });
      void options.append(
        cellPaths(refusal.cell.dir).events,
        {
          event: 'manifest_refused',
          agent: refusal.agent,
          field: refusal.field,
          reason: refusal.reason,
        },
        `${refusal.cell.uuid}/${refusal.agent}`,
      );
    }
  };
}
