/**
 * The state store: the only code that reads and writes the daemon's state. It owns each agent's
 * record (`AgentState` with a revision: compare-and-set per agent), the fleet's restart history
 * and every agent's recent healthy periods. The file backend keeps a cell's records in
 * `<state_dir>/cells/<uuid>/state.json` (agents outside cells in `<state_dir>/host-state.json`)
 * and history in `<state_dir>/history.json`, written atomically (temp file, fsync, rename),
 * coalesced per file, retried with backoff when a write fails (a full disk), never losing a
 * record that was saved. Nothing is written inside a cell: a cell's `.lazarus/state.json`, where
 * older daemons kept the records and which its agents can write, is read only as a migration hint
 * (legacy-state.ts) while the daemon's own file does not exist yet. It decides nothing about
 * agents; callers say what to save and when. A backend over a shared key-value store (one key per
 * agent, its revision the store's) implements the same interface.
 */
import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { z } from 'zod';
import {
  CELL_STATE_MAX_BYTES,
  PitError,
  readFileSafe,
  writeFileAtomic,
  readJsonFile,
  writeJsonAtomic,
  CellStateSchema,
  AgentStateSchema,
  type AgentState,
  type CellState,
} from '@pit/cell-spec';
import type { HealthyPeriod } from '@pit/policy';
import type { Logger } from './logger.js';
import { hash53 } from './hash53.js';
import { HOST } from './slot.js';
import { readLegacyHint } from './legacy-state.js';

/**
 * The largest history.json read (bytes): the daemon's own file, up to five healthy periods per
 * agent, which passes the 1 MiB default limit of a read at about 3,000 agents.
 */
const HISTORY_MAX_BYTES = 64 * 1024 * 1024;
/** Which record: the agent's key, its name, and its scope (its cell's directory, or `host`). */
export interface AgentRecordRef {
  key: string;
  name: string;
  scope: string;
}

/** The outcome of {@link StateStore.compareAndSet}. */
export type CompareAndSetResult = { ok: true; revision: number } | { ok: false; revision: number };

/** The daemon's state, behind one interface (see the module header). */
export interface StateStore {
  /** The saved records of one scope, by agent name; a damaged file is kept aside, logged, and reads as empty; rejects on an I/O error (EMFILE, EIO…). */
  loadScope(scope: string): Promise<Record<string, AgentState>>;
  /** Holds `state` as the agent's live record (no write); the record's revision starts at 0. */
  attach(ref: AgentRecordRef, state: AgentState): void;
  /** Stops holding the agent's record (no longer supervised); what was written stays on disk. */
  detach(key: string): void;
  /** Saves the agent's record as it is now: written with its scope's other records, retried until it lands. Never rejects. */
  save(key: string): Promise<void>;
  /** Saves `state` only if the record is still at `revision` (an owner that lost a race acts on nothing). */
  compareAndSet(key: string, state: AgentState, revision: number): Promise<CompareAndSetResult>;
  /** The record's revision: 0 when attached, +1 per save. */
  revision(key: string): number;
  /** When the record was last written whole (ms; the start of that write); 0 if never. */
  persistedAt(key: string): number;
  /** The agent's recent healthy periods, mutable by the caller (persisted in history). */
  healthyPeriods(key: string): HealthyPeriod[];
  /**
   * Opens a healthy period from `from`: the agent's periods become a new array of the last `keep`
   * (as long as it needs to be: an array grown by `push` keeps room for 17, 136 bytes per agent),
   * returned; the caller drops the one it held.
   */
  openHealthyPeriod(key: string, from: number, keep: number): HealthyPeriod[];
  /** Records a restart of the fleet (for the fleet brake). */
  recordRestart(at: number): void;
  /** Recent restarts of the fleet (ms; the last 24 hours once history was written). */
  fleetRestarts(): readonly number[];
  /** Healthy periods or restarts changed: history is written within {@link HISTORY_WRITE_MS}. */
  historyChanged(): void;
  /** Writes every held record and history now, and waits for every write in flight. */
  flush(): Promise<void>;
  /** Waits for the writes already asked for, and writes history if it changed (a sweep's end). */
  settle(): Promise<void>;
  /** No more timers (retries, history); explicit saves and flushes still write. */
  close(): void;
  /** Damaged files this store kept aside and started afresh (for `pit status` problems), oldest first. */
  problems(): readonly string[];
}

/** history.json is written at most this often while it keeps changing (ms). */
export const HISTORY_WRITE_MS = 2_000;
/** A failed state write is retried after this long, doubling up to {@link PERSIST_RETRY_MAX_MS} (ms). */
const PERSIST_RETRY_MS = 500;
const PERSIST_RETRY_MAX_MS = 8_000;
const HISTORY_DAY_MS = 24 * 3600_000;

const HistorySchema = z.strictObject({
  version: z.literal(1),
  agents: z.record(
    z.string(),
    z.strictObject({
      healthy: z.array(z.strictObject({ from: z.number(), to: z.number().optional() })),
    }),
  ),
  fleet_restarts: z.array(z.number()),
});
type History = z.infer<typeof HistorySchema>;

/** A held record: its ref's fields in it (not a ref object per agent), its state and bookkeeping. */
interface HeldRecord extends AgentRecordRef {
  state: AgentState;
  revision: number;
  persistedAt: number;
  /** The hash of `state`'s JSON when it was last checked against the schema (NaN: not yet; see checkState). */
  checkedHash: number;
}

/** Options of {@link openFileStateStore}. */
export interface FileStateStoreOptions {
  stateDir: string;
  logger: Logger;
  /** Clock (ms since epoch). */
  now: () => number;
}

/** Opens the file backend over `stateDir` (and the cells' own state files). */
export async function openFileStateStore(options: FileStateStoreOptions): Promise<StateStore> {
  const { stateDir, logger, now } = options;
  const historyPath = join(stateDir, 'history.json');
  const hostPath = join(stateDir, 'host-state.json');
  const problems: string[] = [];
  const report = (problem: string) => {
    if (problems.includes(problem)) return;
    problems.push(problem);
    if (problems.length > 50) problems.shift();
  };
  const history = await readHistory({ historyPath, stateDir, logger, now, report });
  // A record let go (detached, or replaced) is kept for its scope's file by the writer.
  const table = createRecordTable((record) => writer.released(record));
  const healthy = new Map<string, HealthyPeriod[]>();
  let closed = false;

  const { pathOf, readOwn } = ownFiles({ stateDir, hostPath, logger, now, report });

  const historyWriter = createHistoryWriter({ historyPath, history, healthy, logger, now });
  const writer = createScopeWriter({
    logger,
    now,
    readScope: async (scope) => (await readOwn(scope)) ?? emptyState(),
    members: (scope) => table.members(scope),
    write: async (scope, state, held) => {
      const path = pathOf(scope);
      if (scope !== HOST) await fs.mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
      const written = checkState(state, held);
      await writeFileAtomic(path, stateText(state, written));
      return written;
    },
    landed: () => historyWriter.schedule(closed),
    closed: () => closed,
  });

  const held = (key: string): HeldRecord | undefined => table.get(key);
  const store: StateStore = {
    async loadScope(scope) {
      const own = await readOwn(scope);
      if (own || scope === HOST) return (own ?? emptyState()).agents;
      // No record of this cell yet: an older daemon's file in the cell, if any, is a hint.
      return readLegacyHint(scope, logger);
    },
    attach: (ref, state) => table.attach(ref, state),
    detach: (key) => table.detach(key),
    save(key) {
      const record = held(key);
      if (!record) return Promise.resolve();
      record.revision += 1;
      return writer.write(record.scope);
    },
    async compareAndSet(key, state, revision) {
      const record = held(key);
      if (!record || record.revision !== revision)
        return { ok: false, revision: record?.revision ?? -1 };
      record.state = state;
      record.checkedHash = Number.NaN;
      await store.save(key);
      return { ok: true, revision: record.revision };
    },
    revision: (key) => held(key)?.revision ?? -1,
    persistedAt: (key) => held(key)?.persistedAt ?? 0,
    ...historyMethods({ history, healthy, writer: historyWriter }),
    async flush() {
      await Promise.all(table.scopes().map((scope) => writer.write(scope)));
      await store.settle();
    },
    async settle() {
      await writer.settled();
      await historyWriter.flush();
    },
    close() {
      closed = true;
      writer.close();
      historyWriter.cancel();
    },
    problems: () => [...problems],
  };
  return store;
}

/** The daemon's own state files: where each scope's lives, and reading one (`undefined`: none yet). */
function ownFiles(options: {
  stateDir: string;
  hostPath: string;
  logger: Logger;
  now: () => number;
  report: (problem: string) => void;
}) {
  const { stateDir, hostPath, logger, now, report } = options;
  const pathOf = (scope: string) => (scope === HOST ? hostPath : agentStatePath(stateDir, scope));
  const readOwn = (scope: string): Promise<CellState | undefined> =>
    readJsonFile(pathOf(scope), CellStateSchema, { maxBytes: CELL_STATE_MAX_BYTES }).catch(
      (error: unknown) =>
        PitError.is(error) && error.code === 'CELL_NOT_FOUND'
          ? undefined
          : damagedScope({
              path: pathOf(scope),
              keepIn: join(stateDir, 'damaged'),
              error,
              logger,
              now,
              report,
            }),
    );
  return { pathOf, readOwn };
}

/** The store's history side: healthy periods per agent, the fleet's restarts. */
function historyMethods(parts: {
  history: History;
  healthy: Map<string, HealthyPeriod[]>;
  writer: { dirty: boolean };
}): Pick<
  StateStore,
  'healthyPeriods' | 'openHealthyPeriod' | 'recordRestart' | 'fleetRestarts' | 'historyChanged'
> {
  const { history, healthy, writer } = parts;
  const healthyPeriods = (key: string): HealthyPeriod[] => {
    let periods = healthy.get(key);
    if (periods) return periods;
    // Moved, not copied: history.agents keeps only the agents nobody asked for (written as read).
    periods = history.agents[key]?.healthy ?? [];
    delete history.agents[key];
    healthy.set(key, periods);
    return periods;
  };
  return {
    healthyPeriods,
    openHealthyPeriod(key, from, keep) {
      const periods = [...healthyPeriods(key), { from }].slice(-keep);
      healthy.set(key, periods);
      writer.dirty = true;
      return periods;
    },
    recordRestart(at) {
      history.fleet_restarts.push(at);
      writer.dirty = true;
    },
    fleetRestarts: () => history.fleet_restarts,
    historyChanged() {
      writer.dirty = true;
    },
  };
}

/** The records held, by agent key and by scope. */
function createRecordTable(onRelease: (record: HeldRecord) => void) {
  const records = new Map<string, HeldRecord>();
  const scopes = new Map<string, Set<HeldRecord>>();
  const table = {
    get: (key: string) => records.get(key),
    members: (scope: string) => [...(scopes.get(scope) ?? [])],
    scopes: () => [...scopes.keys()],
    attach(ref: AgentRecordRef, state: AgentState) {
      table.detach(ref.key);
      const record: HeldRecord = {
        key: ref.key,
        name: ref.name,
        scope: ref.scope,
        state,
        revision: 0,
        persistedAt: 0,
        checkedHash: Number.NaN,
      };
      records.set(ref.key, record);
      let members = scopes.get(ref.scope);
      if (!members) scopes.set(ref.scope, (members = new Set()));
      members.add(record);
    },
    detach(key: string) {
      const record = records.get(key);
      if (!record) return;
      records.delete(key);
      const members = scopes.get(record.scope);
      members?.delete(record);
      if (members?.size === 0) scopes.delete(record.scope);
      onRelease(record);
    },
  };
  return table;
}

/**
 * A scope's file could not be read: missing is empty; damaged (not JSON, not the schema) is
 * logged and its bytes kept in `<state_dir>/damaged/` so nothing in it is lost, and the scope starts
 * empty; an unsafe path is logged and read as empty; an I/O error (EMFILE, EIO…) is thrown, so
 * that nothing is started or written on a guess (the caller tries again later).
 */
async function damagedScope(options: {
  path: string;
  /** Where the damaged bytes are kept: a daemon-owned directory, never inside a cell. */
  keepIn: string;
  error: unknown;
  logger: Logger;
  now: () => number;
  report: (problem: string) => void;
}): Promise<CellState> {
  const { path, error, logger } = options;
  if (PitError.is(error) && error.code === 'CELL_NOT_FOUND') return emptyState();
  const message = error instanceof Error ? error.message : String(error);
  if (PitError.is(error) && error.code === 'CELL_INVALID') {
    const kept = await keepDamaged(options);
    logger.error('damaged state file: its agents start from an empty record', {
      file: path,
      error: message,
      ...(kept ? { kept_as: kept } : {}),
    });
    options.report(
      `${path}: damaged (${message.replace(`${path}: `, '')}); ${kept ? `kept as ${kept}; ` : ''}its agents started from an empty record`,
    );
    return emptyState();
  }
  // An I/O failure (EMFILE, EIO, EACCES…) says nothing about the records: starting the agents
  // from an empty record would start a second copy of each, and a write would drop their records.
  if (!PitError.is(error) || error.code === 'CELL_IO') throw error;
  logger.error('cannot read state file: its agents start from an empty record', {
    file: path,
    error: message,
  });
  return emptyState();
}

/**
 * Reads `history.json` (healthy periods, the fleet's restarts). Missing is empty; damaged is kept
 * aside in `<state_dir>/damaged/`, logged and reported like a state file, and history starts afresh
 * (it only tunes the fleet brake and flapping); unreadable is logged and reported.
 */
async function readHistory(options: {
  historyPath: string;
  stateDir: string;
  logger: Logger;
  now: () => number;
  report: (problem: string) => void;
}): Promise<History> {
  const { historyPath, logger } = options;
  try {
    return await readJsonFile(historyPath, HistorySchema, { maxBytes: HISTORY_MAX_BYTES });
  } catch (error) {
    const empty: History = { version: 1, agents: {}, fleet_restarts: [] };
    if (PitError.is(error) && error.code === 'CELL_NOT_FOUND') return empty;
    const message = error instanceof Error ? error.message : String(error);
    const kept =
      PitError.is(error) && error.code === 'CELL_INVALID'
        ? await keepDamaged({
            path: historyPath,
            keepIn: join(options.stateDir, 'damaged'),
            now: options.now,
          })
        : undefined;
    logger.error('cannot read history: restart history starts afresh', {
      file: historyPath,
      error: message,
      ...(kept ? { kept_as: kept } : {}),
    });
    options.report(
      `${historyPath}: ${message.replace(`${historyPath}: `, '')}; ${kept ? `kept as ${kept}; ` : ''}restart history started afresh`,
    );
    return empty;
  }
}

/**
 * Copies a damaged state file's bytes into the daemon's own directory. Nothing in the cell is
 * renamed or written: an agent could have swapped a directory of the path for a link meanwhile.
 */
async function keepDamaged(options: {
  path: string;
  keepIn: string;
  now: () => number;
}): Promise<string | undefined> {
  try {
    const bytes = await readFileSafe(options.path, { maxBytes: CELL_STATE_MAX_BYTES });
    const name = `${createHash('sha256').update(options.path).digest('hex').slice(0, 16)}-${basename(options.path)}.corrupt-${options.now()}`;
    await fs.mkdir(options.keepIn, { recursive: true });
    const kept = join(options.keepIn, name);
    await writeFileAtomic(kept, bytes);
    return kept;
  } catch {
    return undefined;
  }
}

/**
 * Where the file backend keeps the records of the cell at `cellDir`:
 * `<stateDir>/cells/<uuid>/state.json` (the cell directory's name is its uuid).
 */
export function agentStatePath(stateDir: string, cellDir: string): string {
  const name = basename(cellDir);
  const safe = /^[0-9a-f][0-9a-f-]{0,63}$/.test(name)
    ? name
    : createHash('sha256').update(cellDir).digest('hex').slice(0, 32);
  return join(stateDir, 'cells', safe, 'state.json');
}

/**
 * The records the daemon keeps for the cell at `cellDir` (for readers such as `pit status`);
 * an absent file is an empty state.
 * @throws {PitError} CELL_INVALID when the file is damaged, CELL_UNSAFE_PATH, CELL_IO.
 */
export async function readAgentStates(stateDir: string, cellDir: string): Promise<CellState> {
  return readJsonFile(agentStatePath(stateDir, cellDir), CellStateSchema, {
    maxBytes: CELL_STATE_MAX_BYTES,
  }).catch((error: unknown) => {
    if (PitError.is(error) && error.code === 'CELL_NOT_FOUND') return emptyState();
    throw error;
  });
}

/**
 * Changes one agent's record in the file backend while no daemon runs (the caller holds the
 * state directory's lock: `pit stop|start|restart|reset` with no daemon). `scope` is the agent's
 * cell directory, or {@link HOST}. The file is written atomically; a damaged one is refused,
 * never overwritten.
 * @throws {PitError} CELL_INVALID when the file is damaged, CELL_UNSAFE_PATH, CELL_IO.
 */
export async function updateAgentRecord(options: {
  stateDir: string;
  scope: string;
  name: string;
  update: (state: AgentState) => AgentState;
  now?: number;
}): Promise<AgentState> {
  const { stateDir, scope, name } = options;
  const path = scope === HOST ? join(stateDir, 'host-state.json') : agentStatePath(stateDir, scope);
  const current = await readJsonFile(path, CellStateSchema, {
    maxBytes: CELL_STATE_MAX_BYTES,
  }).catch((error: unknown) => {
    if (PitError.is(error) && error.code === 'CELL_NOT_FOUND') return emptyState();
    throw error;
  });
  const before = current.agents[name] ?? AgentStateSchema.parse({ health: 'unknown' });
  const after = options.update(structuredClone(before));
  const next: CellState = {
    version: 1,
    updated_at: new Date(options.now ?? Date.now()).toISOString(),
    agents: { ...current.agents, [name]: after },
  };
  await fs.mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
  await writeJsonAtomic(path, CellStateSchema.parse(next));
  return after;
}

/** The state of a scope with no agents recorded. */
export function emptyState(): CellState {
  return { version: 1, updated_at: new Date(0).toISOString(), agents: {} };
}

interface ScopeWriterOptions {
  logger: Logger;
  now: () => number;
  readScope(scope: string): Promise<CellState>;
  members(scope: string): HeldRecord[];
  /** Writes the scope's file (`held`: the held records it carries); resolves with each record as written (its JSON). */
  write(scope: string, state: CellState, held: readonly HeldRecord[]): Promise<Map<string, string>>;
  landed(): void;
  closed(): boolean;
}

/** Resolves in the next turn of the event loop (after its I/O callbacks). */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The least time between the end of one write of a file and the start of the next (ms). Saves
 * keep coming while many agents start (each start saves its record), and without a gap the
 * writer rewrote the whole file back to back; with it, each write carries the saves of ~20 ms.
 */
const WRITE_GAP_MS = 20;

/**
 * Writes a scope's file: one write at a time per file, and a write that has not started yet
 * already covers every later change (it writes every member's record as it is when it runs; it
 * starts a turn of the event loop after it was asked for, so that saves asked for together are one).
 * A failed write is retried on a timer (one per scope) until it lands.
 */
function createScopeWriter(options: ScopeWriterOptions) {
  const { logger, now } = options;
  const writes = new Map<string, Promise<void>>();
  const queued = new Map<string, Promise<void>>();
  const retries = new Map<string, { timer?: NodeJS.Timeout; delay: number }>();
  const unheld = createUnheldRecords(options.readScope);

  const endedAt = new Map<string, number>();
  const afterGap = (scope: string): Promise<void> | undefined => {
    const wait = (endedAt.get(scope) ?? -Infinity) + WRITE_GAP_MS - performance.now();
    return wait > 0 ? new Promise((resolve) => setTimeout(resolve, wait)) : undefined;
  };

  const writeNow = async (scope: string) => {
    queued.delete(scope);
    const startedAt = now();
    const group = options.members(scope);
    const others = await unheld.take(scope);
    const state: CellState = {
      version: 1,
      updated_at: new Date(startedAt).toISOString(),
      agents: others.agents,
    };
    for (const member of group) state.agents[member.name] = member.state;
    const written = await options.write(scope, state, group);
    const heldNow = new Set(options.members(scope).map((member) => member.name));
    unheld.landed(scope, notHeld(state, group, heldNow, written), heldNow, others.letGo);
    // Only a write that landed counts: a healthy agent whose write failed is written again.
    for (const member of group) member.persistedAt = startedAt;
    const retry = retries.get(scope);
    if (retry) {
      clearTimeout(retry.timer);
      retries.delete(scope);
      logger.info('state persisted again', { target: scope });
    }
    options.landed();
  };

  const failed = (scope: string, error: unknown) => {
    const retry = retries.get(scope) ?? { delay: PERSIST_RETRY_MS / 2 };
    retry.delay = Math.min(retry.delay * 2, PERSIST_RETRY_MAX_MS);
    const agent = options.members(scope)[0]?.key ?? scope;
    logger.error('cannot persist state', { agent, error: String(error), retry_in_ms: retry.delay });
    if (!retry.timer && !options.closed()) {
      retry.timer = setTimeout(() => {
        retry.timer = undefined;
        if (!options.closed() && options.members(scope).length > 0) void write(scope);
      }, retry.delay);
      retry.timer.unref();
    }
    retries.set(scope, retry);
  };

  const write = (scope: string): Promise<void> => {
    const pending = queued.get(scope);
    if (pending) return pending;
    const previous = writes.get(scope);
    // Started one turn of the event loop later: the saves asked for in this turn (a decision,
    // then the start it leads to) are one write, not two in a row. Right after another write
    // of the file, WRITE_GAP_MS after it.
    const settled = (previous ? previous.then(() => afterGap(scope)) : Promise.resolve())
      .then(nextTurn)
      .then(() => writeNow(scope))
      .catch((error: unknown) => failed(scope, error))
      .finally(() => endedAt.set(scope, performance.now()));
    queued.set(scope, settled);
    writes.set(scope, settled);
    return settled;
  };

  return {
    write,
    /** A held record was let go (detached, or replaced by another): its last state is kept for the file. */
    released: (record: HeldRecord) => unheld.note(record),
    settled: () => Promise.all([...writes.values()]).then(() => undefined),
    close() {
      for (const retry of retries.values()) clearTimeout(retry.timer);
    },
  };
}

/**
 * What a write carried of the agents not held now: copies (a record held when the write started
 * is parsed again from its JSON as written, not the live record a later change would alter; any
 * other was a copy already).
 */
function notHeld(
  state: CellState,
  group: HeldRecord[],
  heldNow: ReadonlySet<string>,
  written: Map<string, string>,
): CellState['agents'] {
  const live = new Set<AgentState>(group.map((member) => member.state));
  const agents: CellState['agents'] = {};
  for (const [name, record] of Object.entries(state.agents)) {
    if (heldNow.has(name)) continue;
    const json = live.has(record) ? written.get(name) : undefined;
    agents[name] = json === undefined ? record : (JSON.parse(json) as AgentState);
  }
  return agents;
}

/**
 * The file's text, from the records' JSON already made: one agent per line (a file of thousands
 * of agents stays readable with grep, and is not serialized a second time, pretty, at each save).
 */
function stateText(state: CellState, written: Map<string, string>): string {
  const lines = [...written].map(([name, json]) => `${JSON.stringify(name)}: ${json}`);
  const head = `{"version": ${state.version}, "updated_at": ${JSON.stringify(state.updated_at)}, "agents": {`;
  return lines.length === 0 ? `${head}}}\n` : `${head}\n${lines.join(',\n')}\n}}\n`;
}

/**
 * The hash of each record's JSON when it was last checked against the schema, by record object,
 * for the records no agent holds (a held record keeps its own: {@link HeldRecord.checkedHash}).
 */
const checkedHash = new WeakMap<object, number>();

/**
 * Checks a state about to be written against the schema its readers use, as `CellStateSchema`
 * would, and returns each record's JSON as written. A record whose JSON hashes as it did when it
 * was last checked is not checked again: a scope's file is rewritten whole at every save, and
 * checking 3,000 unchanged records each time was about a fifth of the daemon's CPU while it took
 * up a host's agents (only a hash is kept per record, not its JSON: in the held record that holds
 * it, else in {@link checkedHash}).
 * @throws {Error} naming the record and field, when the daemon built an invalid record.
 */
function checkState(state: CellState, held: readonly HeldRecord[]): Map<string, string> {
  CellStateSchema.parse({ ...state, agents: {} });
  const holders = new Map<AgentState, HeldRecord>();
  for (const record of held) holders.set(record.state, record);
  const written = new Map<string, string>();
  for (const [name, record] of Object.entries(state.agents)) {
    const json = JSON.stringify(record);
    written.set(name, json);
    const hash = hash53(json);
    const holder = holders.get(record);
    if ((holder === undefined ? checkedHash.get(record) : holder.checkedHash) === hash) continue;
    CellStateSchema.shape.agents.parse({ [name]: record });
    if (holder === undefined) checkedHash.set(record, hash);
    else holder.checkedHash = hash;
  }
  return written;
}

/**
 * The records of a scope's file that belong to no held agent: as the writer last wrote them
 * (the file is the daemon's own and nothing else writes it while the daemon runs, the CLI
 * changes a record only with no daemon, so only a scope's first write reads it), and a copy of
 * each record let go since. A held agent's record is written from its live state every time:
 * no copy of it is kept (11,000 agents would be 11,000 copies).
 */
function createUnheldRecords(readScope: (scope: string) => Promise<CellState>) {
  const written = new Map<string, CellState['agents']>();
  const released = new Map<string, Map<string, AgentState>>();
  return {
    note(record: HeldRecord): void {
      let records = released.get(record.scope);
      if (!records) released.set(record.scope, (records = new Map()));
      records.set(record.name, structuredClone(record.state));
    },
    /** What a write of `scope` carries besides its held agents, and the let-go records it takes. */
    async take(scope: string) {
      const existing = written.get(scope) ?? (await readScope(scope)).agents;
      const letGo = new Map(released.get(scope));
      return { agents: { ...existing, ...Object.fromEntries(letGo) }, letGo };
    },
    /**
     * A write landed: the records of agents not held now are kept as written; the let-go records
     * it carried are forgotten, unless one was let go again meanwhile (newer, for the next write).
     */
    landed(
      scope: string,
      agents: CellState['agents'],
      heldNow: ReadonlySet<string>,
      taken: Map<string, AgentState>,
    ): void {
      written.set(
        scope,
        Object.fromEntries(Object.entries(agents).filter(([name]) => !heldNow.has(name))),
      );
      const pending = released.get(scope);
      if (!pending) return;
      for (const [name, record] of taken) if (pending.get(name) === record) pending.delete(name);
      if (pending.size === 0) released.delete(scope);
    },
  };
}

interface HistoryWriterOptions {
  historyPath: string;
  history: History;
  healthy: Map<string, HealthyPeriod[]>;
  logger: Logger;
  now: () => number;
}

/**
 * history.json (every agent's healthy periods, the fleet's restarts) is one file for the whole
 * fleet: written one at a time, at most every HISTORY_WRITE_MS while it keeps changing (a storm of
 * 1,000 deaths is one or two writes, not 1,000 concurrent ones), and at once on flush. A daemon
 * SIGKILLed loses at most that much of it; the restarts that the intensity and backoff rules count
 * are in each agent's record, written with its state.
 */
function createHistoryWriter(options: HistoryWriterOptions) {
  const { history, logger, now } = options;
  let chain: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let lastWrite = 0;
  const writer = {
    dirty: false,
    flush(): Promise<void> {
      writer.cancel();
      chain = chain
        .then(async () => {
          if (!writer.dirty) return;
          writer.dirty = false;
          lastWrite = Date.now();
          // Built for the write only: the periods live in `healthy` (one array per agent).
          const agents: History['agents'] = { ...history.agents };
          for (const [key, periods] of options.healthy)
            agents[key] = { healthy: periods.slice(-5) };
          history.fleet_restarts = history.fleet_restarts
            .filter((at) => now() - at < HISTORY_DAY_MS)
            .slice(-500);
          await writeJsonAtomic(options.historyPath, { ...history, agents });
        })
        .catch((error: unknown) => {
          writer.dirty = true;
          logger.error('cannot persist history', { error: String(error) });
        });
      return chain;
    },
    schedule(closed: boolean) {
      if (!writer.dirty || timer || closed) return;
      timer = setTimeout(
        () => void writer.flush(),
        Math.max(0, lastWrite + HISTORY_WRITE_MS - Date.now()),
      );
      timer.unref();
    },
    cancel() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
  return writer;
}
