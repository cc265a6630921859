/**
 * The provider health matrix: for every `[providers.<name>]`, `healthy | degraded | dead |
 * unknown`, since when, and the evidence. It owns asking the active sources (the status URL's
 * JSON, the exec probe) every `interval_s`, and folding in the passive evidence agents put in
 * their heartbeats (`provider`, `provider_errors`, `last_error`). Heartbeats are untrusted: a
 * report counts only for the agent's own primary or fallback provider, only while fresh, only
 * one per agent; reports make a provider dead only when at least {@link MIN_DEAD_REPORTERS}
 * distinct agents report outage errors within the window (one agent alone: degraded at most, so
 * it cannot hold its peers' revivals hostage); and where an active source answers, reports can
 * make a provider degraded at worst, never dead. It tells listeners of a change; it never
 * restarts, switches or waits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readHeartbeat } from '@pit/cell-spec';
import { classifyProviderError, type ProviderHealth, type ProviderStatus } from '@pit/policy';
import type { Logger } from './logger.js';
import type { ProviderConfig } from './provider-config.js';

/** One row of the matrix. */
export interface ProviderEntry {
  provider: string;
  status: ProviderStatus;
  /** ISO-8601: since when it has this status. */
  since: string;
  /** What the status rests on, one line per source (at most 8 lines). */
  evidence: string[];
  /** ISO-8601: when an active source last answered. */
  checked_at?: string;
}

/** One agent as the tracker reads it: where its heartbeat is and which providers it may report on. */
export interface ProviderAgent {
  key: string;
  name: string;
  cellDir?: string;
  /** Its primary and fallbacks: the only providers its reports count for. */
  providers: readonly string[];
  /** The provider its config selects now (a report naming no provider is about this one). */
  current: string;
  /** When its current process started (ms): an older heartbeat is not evidence. */
  startedAt?: number;
}

/** A change of one provider's status. */
export interface ProviderChange {
  provider: string;
  from: ProviderStatus;
  to: ProviderStatus;
  entry: ProviderEntry;
}

/** What {@link createProviderTracker} takes. */
export interface ProviderTrackerOptions {
  providers: () => Readonly<Record<string, ProviderConfig>>;
  agents: () => Iterable<ProviderAgent>;
  logger: Logger;
  now: () => number;
  onChange: (change: ProviderChange) => void;
  /** Called after each round (the switch-back check). */
  afterTick?: () => void;
}

/** See the module header. */
export interface ProviderTracker {
  /** The matrix, sorted by provider. */
  matrix(): ProviderEntry[];
  /** One provider's status and since, as policy takes it. */
  health(provider: string): ProviderHealth | undefined;
  /** Asks the sources that are due, reads the agents' reports, recomputes every status. */
  tick(): Promise<void>;
  /**
   * Asks `provider`'s active sources now, whatever their schedule (an agent just died: the
   * matrix must not lag behind), at most once per 100 ms — but always when the last answer was
   * asked before `diedAt` (the death must not be judged by a status older than itself) — then
   * recomputes.
   */
  refresh(provider: string, diedAt?: number): Promise<void>;
  /** Ticks every `everyMs` until stopped. */
  start(everyMs: number): void;
  stop(): void;
}

const SEVERITY: Record<ProviderStatus, number> = { unknown: -1, healthy: 0, degraded: 1, dead: 2 };
const worst = (statuses: ProviderStatus[]): ProviderStatus | undefined =>
  statuses.reduce<ProviderStatus | undefined>(
    (found, status) => (found === undefined || SEVERITY[status] > SEVERITY[found] ? status : found),
    undefined,
  );

interface SourceResult {
  status: ProviderStatus | undefined;
  detail: string;
}

interface Report {
  agent: string;
  at: number;
  kind: 'ok' | 'outage' | 'rate_limit' | 'other';
  detail: string;
}

interface ProviderRecord {
  entry: ProviderEntry;
  nextActiveAt: number;
  /** When the active sources were last asked (ms). */
  lastActiveAt: number;
  active: { status_url?: SourceResult; exec?: SourceResult };
  reports: Map<string, Report>;
}

/**
 * The fewest distinct agents whose outage reports make a provider dead by passive evidence alone,
 * whatever `passive_dead_agents` says (config check refuses less; this holds for any caller).
 */
export const MIN_DEAD_REPORTERS = 2;

/** A refresh asks a provider's sources again only when its last answer is at least this old (ms). */
const REFRESH_GAP_MS = 100;

/** Creates the tracker (see the module header). */
export function createProviderTracker(options: ProviderTrackerOptions): ProviderTracker {
  const records = new Map<string, ProviderRecord>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const recordOf = (provider: string): ProviderRecord => {
    let record = records.get(provider);
    if (!record) {
      record = {
        entry: {
          provider,
          status: 'unknown',
          since: new Date(options.now()).toISOString(),
          evidence: [],
        },
        nextActiveAt: 0,
        lastActiveAt: -Infinity,
        active: {},
        reports: new Map(),
      };
      records.set(provider, record);
    }
    return record;
  };

  const tick = async (): Promise<void> => {
    const configs = options.providers();
    for (const name of [...records.keys()]) if (!(name in configs)) records.delete(name);
    await askActiveSources(options, configs, recordOf);
    await readReports(options, configs, recordOf);
    for (const [name, config] of Object.entries(configs)) settle(options, recordOf(name), config);
    options.afterTick?.();
  };

  return {
    matrix: () =>
      [...records.values()]
        .map((record) => ({ ...record.entry, evidence: [...record.entry.evidence] }))
        .sort((a, b) => a.provider.localeCompare(b.provider)),
    health: (provider) => {
      const entry = records.get(provider)?.entry;
      return entry ? { status: entry.status, since: Date.parse(entry.since) } : undefined;
    },
    async refresh(provider, diedAt) {
      // After the round in flight (it may have asked before the agent saw the error).
      await running;
      const record = records.get(provider);
      const stale =
        record !== undefined &&
        (options.now() - record.lastActiveAt >= REFRESH_GAP_MS ||
          (diedAt !== undefined && record.lastActiveAt < diedAt));
      if (record && stale) record.nextActiveAt = 0;
      return this.tick();
    },
    tick: () => {
      // One tick at a time: a slow status page must not pile up requests.
      running ??= tick().finally(() => (running = undefined));
      return running;
    },
    start(everyMs) {
      const loop = () => {
        timer = setTimeout(() => {
          void this.tick()
            .catch((error: unknown) =>
              options.logger.warn('provider health round failed', { error: String(error) }),
            )
            .finally(() => {
              if (timer !== undefined) loop();
            });
        }, everyMs);
        timer.unref();
      };
      void this.tick().finally(loop);
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** Asks the status URL and exec probe of every provider whose interval is up. */
async function askActiveSources(
  options: ProviderTrackerOptions,
  configs: Readonly<Record<string, ProviderConfig>>,
  recordOf: (provider: string) => ProviderRecord,
): Promise<void> {
  const now = options.now();
  await Promise.all(
    Object.entries(configs).map(async ([name, config]) => {
      const record = recordOf(name);
      if (now < record.nextActiveAt) return;
      record.nextActiveAt = now + config.interval_s * 1000;
      record.lastActiveAt = now;
      const [url, exec] = await Promise.all([
        config.status_url ? askStatusUrl(config.status_url, config.timeout_s) : undefined,
        config.exec ? runExecProbe(config.exec, config.timeout_s) : undefined,
      ]);
      record.active = { ...(url ? { status_url: url } : {}), ...(exec ? { exec } : {}) };
      if (url?.status !== undefined || exec?.status !== undefined)
        record.entry.checked_at = new Date(options.now()).toISOString();
    }),
  );
}

/** Folds the sources into a status, and tells of a change. */
function settle(
  options: ProviderTrackerOptions,
  record: ProviderRecord,
  config: ProviderConfig,
): void {
  const now = options.now();
  const evidence: string[] = [];
  const activeStatuses: ProviderStatus[] = [];
  for (const [source, result] of Object.entries(record.active)) {
    evidence.push(`${source}: ${result.detail}`);
    if (result.status !== undefined) activeStatuses.push(result.status);
  }
  const passive = config.passive ? passiveStatus(record, config, now, evidence) : undefined;
  const active = worst(activeStatuses);
  let status: ProviderStatus;
  if (active === undefined) status = passive ?? 'unknown';
  else if (passive === undefined || SEVERITY[passive] <= SEVERITY[active]) status = active;
  // Reports can worsen what an active source says only up to degraded (they are evidence, not authority).
  else status = worst([active, passive === 'dead' ? 'degraded' : passive]) ?? active;
  const entry = record.entry;
  entry.evidence = evidence.slice(0, 8);
  if (status === entry.status) return;
  const from = entry.status;
  entry.status = status;
  entry.since = new Date(now).toISOString();
  options.logger.info('provider health changed', {
    provider: entry.provider,
    from,
    to: status,
    evidence: entry.evidence,
  });
  options.onChange({ provider: entry.provider, from, to: status, entry: { ...entry } });
}

/** The status the agents' fresh reports give, with one evidence line; undefined when none. */
function passiveStatus(
  record: ProviderRecord,
  config: ProviderConfig,
  now: number,
  evidence: string[],
): ProviderStatus | undefined {
  const window = config.passive_window_s * 1000;
  const fresh = [...record.reports.values()].filter((report) => now - report.at <= window);
  if (fresh.length === 0) return undefined;
  const count = (kind: Report['kind']) => fresh.filter((report) => report.kind === kind);
  const outages = count('outage');
  const limited = count('rate_limit');
  const example = (outages[0] ?? limited[0])?.detail;
  evidence.push(
    `agents: ${outages.length} report outage errors, ${limited.length} rate limits, ${count('ok').length} no errors${example ? ` (e.g. ${example})` : ''}`,
  );
  // Distinct agents (the reports are one per agent, keyed by cell and name): one alone never makes it dead.
  if (outages.length >= Math.max(MIN_DEAD_REPORTERS, config.passive_dead_agents)) return 'dead';
  if (outages.length > 0 || limited.length > 0) return 'degraded';
  return count('ok').length > 0 ? 'healthy' : undefined;
}

/** Reads each agent's heartbeat once and files its report under the provider it names. */
async function readReports(
  options: ProviderTrackerOptions,
  configs: Readonly<Record<string, ProviderConfig>>,
  recordOf: (provider: string) => ProviderRecord,
): Promise<void> {
  const seen = new Set<string>();
  for (const agent of options.agents()) {
    if (agent.cellDir === undefined) continue;
    const beat = await readHeartbeat(agent.cellDir, agent.name).catch(() => undefined);
    const at = beat ? beat.timestamp * 1000 : 0;
    if (!beat || (agent.startedAt !== undefined && at < agent.startedAt)) continue;
    const provider = beat.provider ?? agent.current;
    // A report about a provider the agent does not use is not evidence (an agent cannot smear others).
    if (!agent.providers.includes(provider) || !configs[provider]?.passive) continue;
    const errors = beat.provider_errors ?? 0;
    const klass = errors > 0 ? classifyProviderError(beat.last_error) : undefined;
    const kind: Report['kind'] =
      klass === undefined ? 'ok' : klass === 'outage' || klass === 'rate_limit' ? klass : 'other';
    const detail = `${agent.name}: ${(beat.last_error ?? `${errors} errors`).slice(0, 120)}`;
    // One report per agent: the newest, filed under the provider it names now.
    for (const other of agent.providers)
      if (other !== provider) recordOf(other).reports.delete(agent.key);
    recordOf(provider).reports.set(agent.key, {
      agent: agent.name,
      at: Math.min(at, options.now()),
      kind,
      detail,
    });
    seen.add(agent.key);
  }
  for (const name of Object.keys(configs))
    for (const key of recordOf(name).reports.keys())
      if (!seen.has(key)) recordOf(name).reports.delete(key);
}

const INDICATORS: Record<string, ProviderStatus> = {
  none: 'healthy',
  minor: 'degraded',
  major: 'dead',
  critical: 'dead',
};
const WORDS: Record<string, ProviderStatus> = {
  healthy: 'healthy',
  ok: 'healthy',
  up: 'healthy',
  operational: 'healthy',
  degraded: 'degraded',
  dead: 'dead',
  down: 'dead',
  outage: 'dead',
};

/**
 * Maps a status document: Statuspage's `{status: {indicator}}` or a top-level `status` word.
 * Anything else says nothing (undefined).
 */
export function statusFromDocument(document: unknown): SourceResult {
  const status =
    typeof document === 'object' && document !== null
      ? (document as { status?: unknown }).status
      : undefined;
  if (typeof status === 'object' && status !== null) {
    const indicator = (status as { indicator?: unknown }).indicator;
    if (typeof indicator === 'string' && indicator in INDICATORS)
      return { status: INDICATORS[indicator], detail: `status.indicator ${indicator}` };
  }
  if (typeof status === 'string' && status.toLowerCase() in WORDS)
    return { status: WORDS[status.toLowerCase()], detail: `status ${status}` };
  return { status: undefined, detail: 'no status.indicator or status field in the answer' };
}

/** The largest status document read. */
const MAX_DOCUMENT_BYTES = 64 * 1024;

async function askStatusUrl(url: string, timeoutS: number): Promise<SourceResult> {
  try {
    const response = await fetch(url, {
      signal: AbortSignal.timeout(timeoutS * 1000),
      headers: { accept: 'application/json' },
      redirect: 'error',
    });
    const text = await response.text();
    if (!response.ok) return { status: undefined, detail: `HTTP ${response.status}` };
    if (text.length > MAX_DOCUMENT_BYTES)
      return { status: undefined, detail: `answer larger than ${MAX_DOCUMENT_BYTES} bytes` };
    return statusFromDocument(JSON.parse(text));
  } catch (error) {
    return {
      status: undefined,
      detail: `not answered: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}

/**
 * Runs the exec probe: exit 0 healthy, another exit dead; not done within `timeoutS`: the whole
 * process group is killed (a script's children too) and the source says nothing. It settles on
 * the probe's exit, not on its output closing (its output is not read: a child left holding it
 * must not hold the round).
 */
function runExecProbe(argv: readonly string[], timeoutS: number): Promise<SourceResult> {
  const [command, ...args] = argv as [string, ...string[]];
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      // Its own process group, so that a timeout kills what it started too.
      child = spawn(command, args, { stdio: 'ignore', detached: true });
    } catch (error) {
      return resolve({ status: undefined, detail: `could not run: ${String(error)}` });
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, timeoutS * 1000);
    const settle = (result: SourceResult) => {
      clearTimeout(timer);
      resolve(result);
    };
    child.once('error', (error) =>
      settle({ status: undefined, detail: `could not run: ${error.message}` }),
    );
    child.once('exit', (code, signal) => {
      if (timedOut) {
        // What it started dies with it (it may still hold the group after the leader is gone).
        killGroup(child);
        return settle({ status: undefined, detail: `timed out after ${timeoutS} s (killed)` });
      }
      if (code === 0) return settle({ status: 'healthy', detail: 'exit 0' });
      if (code !== null) return settle({ status: 'dead', detail: `exit ${code}` });
      settle({ status: undefined, detail: `killed by ${signal ?? 'a signal'}` });
    });
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.pid <= 1) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
