/**
 * Shared harness of the fault-injection suite: real `pit daemon` processes (the daemon's own
 * run-daemon fixture, in its own process group), real test agents tagged with a marker in their
 * argv so that live processes per agent can be counted from /proc, a seeded PRNG. Waits, temp
 * dirs, process groups and the test agent come from @pit/test-kit.
 */
import { type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { provisionCell, readEvents, type AnyCellEvent, type EventLogEntry } from '@pit/cell-spec';
import {
  cleanup as cleanupScratch,
  isGone,
  killReaped,
  reapLater,
  spawnTsx,
  tempDir,
  testAgentPath,
  waitFor,
} from '@pit/test-kit';

/** The daemon's run-daemon fixture (exported by @pit/daemon as `./test/run-daemon`): argv[2] is the config; prints `READY <url> <pid>`. */
export const RUN_DAEMON = createRequire(import.meta.url).resolve('@pit/daemon/test/run-daemon');
export const TOKEN = 'faults-token-0123456789abcdef-0123456789abcdef';
export const MARKER_FLAG = '--fault-marker';

const markers = new Set<string>();

/** Registers an agent marker: processes carrying it are SIGKILLed in {@link cleanup}. */
export function trackMarker(marker: string): void {
  markers.add(marker);
}

/** Kills every process carrying one of this run's markers and every registered group (test-kit's `killReaped`: bounded wait for each to die). */
export async function killAll(): Promise<void> {
  for (const marker of markers)
    for (const pids of (await liveAgents(marker)).values()) for (const pid of pids) reapLater(pid);
  markers.clear();
  await killReaped();
}

/** {@link killAll}, then test-kit's `cleanup` (removes the temp dirs). Call from afterEach. */
export async function cleanup(): Promise<void> {
  await killAll();
  await cleanupScratch();
}

/** A fixed pause, in ms: for pacing what the tests inject (random kill points, flip rates) and as a bound. */
export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** mulberry32: a small seeded PRNG, so a failing run is reproduced by its seed. */
export function prng(seed: number): {
  next: () => number;
  int: (min: number, max: number) => number;
  pick: <T>(items: readonly T[]) => T;
} {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  return { next, int, pick: (items) => items[int(0, items.length - 1)]! };
}

export interface FleetCell {
  dir: string;
  uuid: string;
  /** The agents its manifest lists. */
  agents: string[];
}

export interface Fleet {
  base: string;
  root: string;
  /** The first cell (the only one unless `cells` > 1). */
  cellDir: string;
  uuid: string;
  /** Every cell, in order; agents are split over them in contiguous chunks. */
  cells: FleetCell[];
  stateDir: string;
  configPath: string;
  marker: string;
  lines: string[];
}

export interface FleetOptions {
  agents: string[];
  /** Extra TOML appended after the common sections (policy overrides, …). */
  extra?: string;
  /** Extra TOML lines per agent in its `[agents.<name>]` table (e.g. argv, config_files). */
  agentExtra?: Record<string, string>;
  /** A replacement argv (TOML array text) per agent; default: the test agent with its marker. */
  argv?: Record<string, string>;
  /** An argv (TOML array text) built from the agent's name and its tag (`<marker>:<name>`, to pass after {@link MARKER_FLAG}); `argv` wins. */
  argvOf?: (name: string, tag: string) => string;
  /** How many cells the agents are split over (contiguous chunks, as even as possible). @default 1 */
  cells?: number;
  /** Probe each agent's heartbeat file (agents that write none need false). @default true */
  heartbeat?: boolean;
  /** `daemon.log_level`. @default 'debug' */
  logLevel?: string;
  heartbeatStaleS?: number;
  /** `cells.poll_interval_s` (also how often a healthy agent's config files are snapshotted). @default 0.2 */
  pollIntervalS?: number;
  /** `probes.interval_s` of every agent. @default the poll interval */
  probeIntervalS?: number;
}

/** A private base dir with one cell (or `cells` of them) and a pit.toml (mode 0600) whose agents run the test agent (or `argv`/`argvOf`), each tagged with a marker. */
export async function makeFleet(options: FleetOptions): Promise<Fleet> {
  const base = await tempDir('pit-faults-');
  const root = join(base, 'missions');
  const count = Math.max(1, Math.min(options.cells ?? 1, options.agents.length));
  const cells: FleetCell[] = [];
  for (let index = 0; index < count; index++) {
    const agents = options.agents.slice(
      Math.floor((index * options.agents.length) / count),
      Math.floor(((index + 1) * options.agents.length) / count),
    );
    const { dir, manifest } = await provisionCell(root, {
      mission: count === 1 ? 'fault injection' : `fault injection ${index + 1}/${count}`,
      created_by: 'faults',
      agents: agents.map((name) => ({ name, role: 'write' })),
    });
    cells.push({ dir, uuid: manifest.uuid, agents });
  }
  const marker = `faults-${process.pid}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
  markers.add(marker);
  const lines = [
    '[daemon]',
    'state_dir = "state"',
    `log_level = "${options.logLevel ?? 'debug'}"`,
    '[daemon.http]',
    'listen = "127.0.0.1:0"',
    'token_env = "PIT_FAULTS_TOKEN"',
    '[cells]',
    'root = "missions"',
    `heartbeat_stale_s = ${options.heartbeatStaleS ?? 15}`,
    `poll_interval_s = ${options.pollIntervalS ?? 0.2}`,
    'resurrect_after_s = 0',
    '[checkpoints]',
    'interval_s = 0',
    '[bus]',
    'enabled = false',
    options.extra ?? '',
    ...options.agents.flatMap((name) => [
      `[agents.${name}]`,
      `argv = ${options.argv?.[name] ?? options.argvOf?.(name, `${marker}:${name}`) ?? `["${process.execPath}", "${testAgentPath}", "${MARKER_FLAG}", "${marker}:${name}"]`}`,
      'startup_grace_s = 10',
      'stop_grace_s = 2',
      options.agentExtra?.[name] ?? '',
      `[agents.${name}.probes]`,
      'failure_threshold = 1',
      ...(options.heartbeat === false ? ['heartbeat = false'] : []),
      ...(options.probeIntervalS === undefined ? [] : [`interval_s = ${options.probeIntervalS}`]),
    ]),
  ];
  const configPath = join(base, 'pit.toml');
  await fs.writeFile(configPath, lines.join('\n'), { mode: 0o600 });
  return {
    base,
    root,
    cellDir: cells[0]!.dir,
    uuid: cells[0]!.uuid,
    cells,
    stateDir: join(base, 'state'),
    configPath,
    marker,
    lines,
  };
}

export type DaemonProcess = ChildProcess & { output: () => string; url: string };

/**
 * Starts `pit daemon` (run-daemon fixture) in its own process group and waits until it serves.
 * `wrap` runs it through a command that execs it in place (`ip netns exec NS`).
 */
export async function startDaemon(
  configPath: string,
  timeoutMs = 60_000,
  wrap?: string[],
): Promise<DaemonProcess> {
  const child = spawnTsx(RUN_DAEMON, [configPath], {
    env: { ...process.env, PIT_FAULTS_TOKEN: TOKEN },
    ...(wrap ? { wrap } : {}),
  });
  const output = child.output;
  const ready = await waitFor(
    () =>
      /^(READY|FAILED) .*$/m.exec(output())?.[0] ??
      (child.exitCode !== null ? `FAILED exited ${child.exitCode}` : undefined),
    timeoutMs,
    'the daemon to start',
  );
  if (ready.startsWith('FAILED'))
    throw new Error(`daemon failed to start: ${ready}\n${output().slice(-4000)}`);
  return Object.assign(child, { url: ready.split(' ')[1]! });
}

export const exitOf = (child: ChildProcess) =>
  new Promise<number | null>((resolve) =>
    child.exitCode !== null || child.signalCode !== null
      ? resolve(child.exitCode)
      : child.once('exit', (code) => resolve(code)),
  );

/** SIGKILLs the daemon's process group (its agents live in their own groups) and waits for its exit. */
export async function killDaemon(child: ChildProcess): Promise<void> {
  const exited = exitOf(child);
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
  await Promise.race([
    exited,
    delay(10_000).then(() => Promise.reject(new Error('daemon did not die after SIGKILL'))),
  ]);
}

/** Stops the daemon with SIGTERM (agents keep running) and waits for its exit. */
export async function stopDaemon(child: ChildProcess): Promise<void> {
  const exited = exitOf(child);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

/** Live (not zombie) processes per agent name whose argv carries `marker`, from /proc. */
export async function liveAgents(marker: string): Promise<Map<string, number[]>> {
  const result = new Map<string, number[]>();
  const entries = (await fs.readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
  // Read in parallel batches: a fleet of a thousand agents is scanned in well under a second.
  const found: Array<[string, number]> = [];
  for (let start = 0; start < entries.length; start += 64) {
    await Promise.all(
      entries.slice(start, start + 64).map(async (entry) => {
        const cmdline = await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
        const argv = cmdline.split('\0');
        const index = argv.indexOf(MARKER_FLAG);
        if (index === -1) return;
        const tag = argv[index + 1] ?? '';
        if (!tag.startsWith(`${marker}:`)) return;
        if (await isGone(Number(entry))) return;
        found.push([tag.slice(marker.length + 1), Number(entry)]);
      }),
    );
  }
  for (const [name, pid] of found.sort((a, b) => a[1] - b[1]))
    result.set(name, [...(result.get(name) ?? []), pid]);
  return result;
}

/** Every entry of a cell's events.jsonl (ok and malformed), or [] when the file is absent. */
export async function eventEntries(cellDir: string): Promise<EventLogEntry[]> {
  const entries: EventLogEntry[] = [];
  try {
    for await (const entry of readEvents(join(cellDir, 'logs', 'events.jsonl')))
      entries.push(entry);
  } catch (error) {
    if (
      (error as { code?: string }).code === 'CELL_NOT_FOUND' ||
      (error as Error).message.includes('ENOENT')
    )
      return entries;
    throw error;
  }
  return entries;
}

/** The well-formed events of a cell. */
export async function cellEvents(cellDir: string): Promise<AnyCellEvent[]> {
  return (await eventEntries(cellDir)).flatMap((entry) => (entry.ok ? [entry.event] : []));
}

export interface AgentStatusView {
  key: string;
  agent: string;
  health: string;
  pid?: number;
  restarts?: number;
  pending_approval?: string;
  last_decision?: { action?: string; rule?: string } | undefined;
}
export interface StatusView {
  agents: AgentStatusView[];
  approvals: Array<{ id: string; agent?: string }>;
  problems: string[];
}

export async function getStatus(url: string): Promise<StatusView> {
  const response = await fetch(`${url}/api/status`, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`/api/status: ${response.status}`);
  return (await response.json()) as StatusView;
}

/**
 * Waits until the daemon at `url` reports `agent` healthy with a pid (other than `not`) and that
 * pid is its only live process (counted by `marker`); resolves with the pid.
 */
export function healthyOnce(
  url: string,
  marker: string,
  agent: string,
  timeoutMs: number,
  what: string,
  not?: number,
): Promise<number> {
  return waitFor(
    async () => {
      const status = (await getStatus(url)).agents.find((item) => item.agent === agent);
      const live = (await liveAgents(marker)).get(agent) ?? [];
      return status?.health === 'healthy' &&
        status.pid !== undefined &&
        status.pid !== not &&
        live.length === 1 &&
        live[0] === status.pid
        ? status.pid
        : undefined;
    },
    timeoutMs,
    what,
  );
}
