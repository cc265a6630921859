/**
 * The daemon's side of the agent launcher (launcher-program.mjs, a small long-lived child that
 * forks agents so that the daemon's own size stays out of every restart's fork). Owns the
 * launcher's life: starting it, noticing when it dies or is stopped (an agent running as the
 * daemon's user can SIGSTOP its parent: a stopped launcher reaps and forks nothing, so it is
 * killed and replaced; agents it started are then watched
 * through `/proc`, a start it had not answered is found again by the agent's PIT_INSTANCE marks
 * or made directly, and a new launcher is started with a backoff), and falling back to spawning
 * from the daemon (agent-spawn.ts) whenever no launcher is ready, with a log line. Never decides
 * what runs or when: the executor does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  logError,
  spawnDirect,
  startError,
  type SpawnRequest,
  type Spawned,
  type SpawnedExit,
  type StandingRequest,
  headerAtNow,
} from './agent-spawn.js';
import { parseProcessStat } from '@pit/probes';
import { pollExit } from './exit-poll.js';
import { silentLogger, type Logger } from './logger.js';
import {
  findMarkedProcesses,
  markedKey,
  readProcessStat,
  readProcessStatSync,
  SPAWN_ENV,
} from './proc.js';

/** Creates agent processes (through the launcher, or directly). */
export interface AgentSpawner {
  /**
   * Creates one agent process.
   * @throws {DaemonError} DAEMON_SPAWN_FAILED when its log cannot be opened or its command not started.
   */
  spawn(request: SpawnRequest): Promise<Spawned>;
  /**
   * Leaves a standing order with the launcher: the moment the agent `pid` (which it started, and
   * which runs) exits, `request` is started at once; that exit then carries the new process
   * (`SpawnedExit.respawned`). Only one order per agent; a new one replaces it.
   * @returns `false` when no ready launcher started `pid` (nothing was ordered).
   */
  stand(pid: number, request: StandingRequest): boolean;
  /**
   * Withdraws the standing order for `pid`, if any. Resolves once the launcher has withdrawn it,
   * or has carried it out (the exit that used it then came first), or is gone.
   */
  cancel(pid: number): Promise<void>;
  /** The launcher's pid while one is ready, else `undefined` (agents are then spawned directly). */
  launcherPid(): number | undefined;
  /** Stops the launcher (agents keep running; their exits are no longer watched) and reaps it. */
  close(): Promise<void>;
}

/** Options of {@link createLauncher}. */
export interface LauncherOptions {
  logger?: Logger;
  /** The PIT_INSTANCE mark in every agent's environment: how a start whose answer was lost is found. */
  instance: string;
  /** How often an agent whose launcher died is checked in `/proc` (ms). */
  pollMs: number;
  /** The launcher program. @default launcher-program.mjs beside this module */
  program?: string;
  /** First delay before a launcher that died is replaced; it doubles while launchers keep dying young. @default 0 (ms) */
  restartDelayMs?: number;
}

/** The launcher program, beside this module in src/ and in dist/ (tsup copies it). */
export const LAUNCHER_PROGRAM = fileURLToPath(new URL('./launcher-program.mjs', import.meta.url));

/** A launcher that lived this long (ms) resets the restart backoff. */
const STABLE_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;
/** How long close() waits for the launcher to exit before SIGKILL (ms). */
const CLOSE_GRACE_MS = 2000;
/** A start the launcher has not answered after this long (ms) has the launcher's state checked. */
const ANSWER_CHECK_MS = 250;
/**
 * How long after a launcher was started (ms) a start waits for it to be ready rather than spawn
 * from the daemon: the daemon's first starts come right after the launcher's own, which takes a
 * Node start-up (tens of ms; more on a loaded host).
 */
const READY_WAIT_MS = 2000;

interface Refable {
  ref(): void;
  unref(): void;
}

/** Keeps the event loop alive while `launcher` owes an answer or watches an agent. */
const holdLoop = (launcher: Launcher) => {
  const stdout = launcher.child.stdout as unknown as Refable;
  if (launcher.pending.size + launcher.children.size > 0) stdout.ref();
  else stdout.unref();
};

interface Pending {
  request: SpawnRequest;
  resolve(spawned: Spawned): void;
  reject(error: unknown): void;
}

/** A standing order left with the launcher for a running agent (see {@link AgentSpawner.stand}). */
interface Standing {
  id: number;
  request: StandingRequest;
  /** Settles its start once carried out (like a spawn's answer). */
  resolve(spawned: Spawned): void;
  reject(error: unknown): void;
  spawned: Promise<Spawned>;
  /** Resolves once the launcher no longer holds it (cancelled, carried out, or gone). */
  settled: Promise<void>;
  settle(): void;
}

interface Child {
  startTime: number;
  polled: boolean;
  resolve(exit: SpawnedExit): void;
}

interface Launcher {
  child: ChildProcess;
  pid: number | undefined;
  ready: boolean;
  /** Its own start time: whatever it started began no earlier. */
  startTime: number | undefined;
  startedAt: number;
  pending: Map<number, Pending>;
  children: Map<number, Child>;
  /** Standing orders, by the pid of the agent each is for. */
  standing: Map<number, Standing>;
  dead: boolean;
  gone: Promise<void>;
  /** Resolves once it is ready or dead. */
  settled: Promise<void>;
  /** Checks in `/proc` that it is not stopped, every `pollMs` while it lives. */
  watch: NodeJS.Timeout | undefined;
}

type Answer =
  | { type: 'ready' }
  | { type: 'spawned'; id: number; pid: number; stat?: string }
  | { type: 'failed'; id: number; stage: 'log' | 'spawn'; path?: string; message: string }
  | {
      type: 'exit';
      pid: number;
      code: number | null;
      signal: NodeJS.Signals | null;
      respawn?: number;
    }
  | { type: 'cancelled'; pid: number; id: number }
  | { type: 'fatal'; message: string };

/** What the spawner's functions share: its options and the launcher it is using. */
interface LauncherState {
  options: LauncherOptions;
  logger: Logger;
  program: string;
  timers: Set<NodeJS.Timeout>;
  current: Launcher | undefined;
  closed: boolean;
  nextId: number;
  restartDelay: number;
  restartTimer: NodeJS.Timeout | undefined;
  direct: 'noted' | undefined;
}

/**
 * Starts the agent launcher and returns the spawner that uses it (or spawns directly while it
 * is not ready).
 */
export function createLauncher(options: LauncherOptions): AgentSpawner {
  const state: LauncherState = {
    options,
    logger: options.logger ?? silentLogger,
    program: options.program ?? LAUNCHER_PROGRAM,
    timers: new Set<NodeJS.Timeout>(),
    current: undefined,
    closed: false,
    nextId: 1,
    restartDelay: options.restartDelayMs ?? 0,
    restartTimer: undefined,
    direct: undefined,
  };
  launch(state);
  return {
    spawn: (request) => spawnAgent(state, request),
    stand: (pid, request) => standOrder(state, pid, request),
    cancel: (pid) => cancelOrder(state, pid),
    launcherPid: () => {
      const { current } = state;
      return current?.ready && !current.dead ? current.pid : undefined;
    },
    close: () => closeLauncher(state),
  };
}

/** Starts a launcher process and makes it the current one (schedules a retry when it cannot start). */
function launch(state: LauncherState): void {
  state.restartTimer = undefined;
  if (state.closed) return;
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [state.program], {
      cwd: '/',
      env: {},
      stdio: ['pipe', 'pipe', 'ignore'],
    });
  } catch (error) {
    state.logger.warn('agent launcher cannot start; spawning agents directly', {
      error: String(error),
    });
    return scheduleRestart(state);
  }
  if (!child.stdin || !child.stdout) {
    // Out of descriptors (EMFILE): Node reports it as an 'error' event, with no pipes made.
    child.once('error', (error) =>
      state.logger.warn('agent launcher cannot start; spawning agents directly', {
        error: error.message,
      }),
    );
    return scheduleRestart(state);
  }
  let markGone!: () => void;
  let markSettled!: () => void;
  const launcher: Launcher = {
    child,
    pid: child.pid,
    ready: false,
    startTime: undefined,
    startedAt: Date.now(),
    pending: new Map(),
    children: new Map(),
    standing: new Map(),
    dead: false,
    gone: new Promise((resolve) => (markGone = resolve)),
    settled: new Promise((resolve) => (markSettled = resolve)),
    watch: undefined,
  };
  void launcher.gone.then(markSettled);
  state.current = launcher;
  // Its own start time, read while it certainly exists: whatever it starts begins no earlier.
  if (child.pid !== undefined) launcher.startTime = readProcessStatSync(child.pid)?.startTime;
  // It keeps the daemon's process alive only while it owes an answer or watches an agent, as an
  // agent spawned directly would (see holdLoop).
  child.unref();
  (child.stdin as unknown as Refable).unref();
  (child.stdout as unknown as Refable).unref();
  child.stdin!.on('error', () => undefined);
  createInterface({ input: child.stdout! }).on('line', (line) => {
    onLine(state, launcher, line);
    if (launcher.ready) markSettled();
  });
  child.once('error', (error) => {
    died(state, launcher, error.message);
    markGone();
  });
  // 'close': it exited and its stdout is drained, so every answer it wrote has been read.
  child.once('close', (code, signal) => {
    died(state, launcher, `exited (${signal ? `signal ${signal}` : `code ${code}`})`);
    markGone();
  });
  launcher.watch = setInterval(() => void killIfStopped(state, launcher), state.options.pollMs);
  launcher.watch.unref();
}

/** Starts a new launcher after the current backoff, which then doubles (at most 30 s). */
function scheduleRestart(state: LauncherState): void {
  if (state.closed || state.restartTimer) return;
  state.restartTimer = setTimeout(() => launch(state), state.restartDelay);
  state.restartTimer.unref();
  state.restartDelay = Math.min(MAX_RESTART_DELAY_MS, Math.max(250, state.restartDelay * 2));
}

/** Handles one line the launcher wrote. */
function onLine(state: LauncherState, launcher: Launcher, line: string): void {
  const { logger } = state;
  let answer: Answer;
  try {
    answer = JSON.parse(line) as Answer;
  } catch {
    logger.warn('agent launcher wrote a line that is not JSON', { line: line.slice(0, 200) });
    return;
  }
  if (answer.type === 'ready') {
    launcher.ready = true;
    state.direct = undefined;
    logger.info('agent launcher ready', { pid: launcher.pid });
  } else if (answer.type === 'spawned') onSpawned(launcher, answer);
  else if (answer.type === 'failed') {
    const pending = launcher.pending.get(answer.id);
    launcher.pending.delete(answer.id);
    holdLoop(launcher);
    pending?.reject(
      answer.stage === 'log'
        ? logError(pending.request, answer.message, undefined, answer.path)
        : startError(pending.request, answer.message),
    );
  } else if (answer.type === 'exit') onExit(launcher, answer);
  else if (answer.type === 'cancelled') {
    const order = launcher.standing.get(answer.pid);
    if (order?.id !== answer.id) return;
    launcher.standing.delete(answer.pid);
    order.settle();
  } else if (answer.type === 'fatal') {
    logger.error('agent launcher failed', { message: answer.message });
  }
}

/** An agent the launcher started exited: its watcher is told, with the start its standing order made. */
function onExit(launcher: Launcher, answer: Extract<Answer, { type: 'exit' }>): void {
  const child = launcher.children.get(answer.pid);
  launcher.children.delete(answer.pid);
  const order = launcher.standing.get(answer.pid);
  let respawned: SpawnedExit['respawned'];
  if (order) {
    launcher.standing.delete(answer.pid);
    order.settle();
    if (answer.respawn === order.id) {
      // Now a start like any other: answered by 'spawned' or 'failed', recovered if the launcher dies.
      const { headerAt, cgroupKill: _kill, ...rest } = order.request;
      launcher.pending.set(order.id, {
        ...order,
        request: { ...rest, header: headerAtNow(headerAt) },
      });
      respawned = { request: order.request, spawned: order.spawned };
    }
  }
  holdLoop(launcher);
  child?.resolve({
    code: answer.code,
    signal: answer.signal,
    how: 'waited',
    ...(respawned ? { respawned } : {}),
  });
}

/** The launcher forked an agent: resolves its pending start and watches its exit. */
function onSpawned(launcher: Launcher, answer: Extract<Answer, { type: 'spawned' }>): void {
  const pending = launcher.pending.get(answer.id);
  launcher.pending.delete(answer.id);
  holdLoop(launcher);
  if (!pending) return;
  const stat = answer.stat === undefined ? undefined : parseProcessStat(answer.stat);
  if (!stat) {
    pending.reject(startError(pending.request, 'the process vanished before it could be recorded'));
    return;
  }
  let resolveExit!: (exit: SpawnedExit) => void;
  const exited = new Promise<SpawnedExit>((resolve) => (resolveExit = resolve));
  const child: Child = { startTime: stat.startTime, polled: false, resolve: resolveExit };
  launcher.children.set(answer.pid, child);
  holdLoop(launcher);
  pending.resolve({ pid: answer.pid, stat, exited, via: 'launcher', polled: () => child.polled });
}

/** The launcher is gone: its starts are recovered, its agents polled, and a new one scheduled. */
function died(state: LauncherState, launcher: Launcher, how: string): void {
  if (launcher.dead) return;
  launcher.dead = true;
  clearInterval(launcher.watch);
  if (state.current === launcher) state.current = undefined;
  for (const pending of launcher.pending.values()) void recover(state, launcher, pending);
  launcher.pending.clear();
  // Its standing orders die with it (never carried out: their agents' exits are polled now).
  for (const order of launcher.standing.values()) order.settle();
  launcher.standing.clear();
  if (state.closed) return;
  state.logger.warn('agent launcher died; starting a new one', {
    pid: launcher.pid,
    how,
    agents: launcher.children.size,
  });
  // Its agents run on (orphans now): their exits can only be polled.
  for (const [pid, child] of launcher.children) {
    child.polled = true;
    void pollExit({
      pid,
      startTime: child.startTime,
      intervalMs: state.options.pollMs,
      timers: state.timers,
    }).then(child.resolve);
  }
  launcher.children.clear();
  if (Date.now() - launcher.startedAt >= STABLE_MS)
    state.restartDelay = state.options.restartDelayMs ?? 0;
  scheduleRestart(state);
}

/**
 * Kills the launcher when `/proc` says it is stopped (`T`: SIGSTOP, SIGTSTP; `t`: a tracer): it
 * would neither answer starts nor reap its agents, whose exits would then never be reported.
 * Its 'close' then recovers its starts and agents (see {@link died}) and a new one is started.
 */
async function killIfStopped(state: LauncherState, launcher: Launcher): Promise<void> {
  if (launcher.dead || launcher.pid === undefined) return;
  // A read that failed (EMFILE: the daemon out of descriptors) is no answer: the next check asks again.
  const stat = await readProcessStat(launcher.pid).catch(() => undefined);
  if (launcher.dead || !stat || (stat.state !== 'T' && stat.state !== 't')) return;
  if (launcher.startTime !== undefined && stat.startTime !== launcher.startTime) return;
  state.logger.warn('agent launcher is stopped; killing it and starting a new one', {
    pid: launcher.pid,
    state: stat.state,
    cause:
      'a process running as the daemon’s user sent it SIGSTOP (an agent at level 1 can: its parent is the launcher)',
  });
  launcher.child.kill('SIGKILL');
}

/** A start the launcher took but never answered: it may have forked the agent, or not. */
async function recover(state: LauncherState, launcher: Launcher, pending: Pending): Promise<void> {
  try {
    await recoverStart(state, launcher, pending);
  } catch (error) {
    // /proc unreadable (EMFILE): whether the dead launcher forked it is unknown. Not started a
    // second time now; the start fails and the agent is judged again (a copy it did fork carries
    // a nonce no running start has: the leftover sweep kills it).
    pending.reject(
      startError(
        pending.request,
        `its agent launcher died before answering and /proc could not be read (${String(error)}): not started again now`,
      ),
    );
  }
}

/** {@link recover}: the agent found by its marks (started by the dead launcher), else spawned directly. */
async function recoverStart(
  state: LauncherState,
  launcher: Launcher,
  pending: Pending,
): Promise<void> {
  const { request } = pending;
  const nonce = request.env[SPAWN_ENV];
  const found = (
    await findMarkedProcesses(state.options.instance, nonce === undefined ? {} : { nonce })
  ).get(markedKey(request.cell, request.agent));
  if (found && launcher.startTime !== undefined && found.startTime >= launcher.startTime) {
    const stat = await readProcessStat(found.pid);
    if (stat && stat.startTime === found.startTime) {
      state.logger.warn('found the agent a dead launcher had started', {
        agent: request.agent,
        pid: found.pid,
      });
      const exited = pollExit({
        pid: found.pid,
        startTime: found.startTime,
        intervalMs: state.options.pollMs,
        timers: state.timers,
      });
      pending.resolve({ pid: found.pid, stat, exited, via: 'launcher', polled: () => true });
      return;
    }
  }
  spawnDirect(request).then(pending.resolve, pending.reject);
}

/**
 * {@link AgentSpawner.spawn}: through the ready launcher, else directly (noted once in the log).
 * A launcher started less than {@link READY_WAIT_MS} ago is waited for until then.
 */
async function spawnAgent(state: LauncherState, request: SpawnRequest): Promise<Spawned> {
  const starting = state.current;
  const waitMs = starting ? READY_WAIT_MS - (Date.now() - starting.startedAt) : 0;
  if (starting && !state.closed && !starting.ready && !starting.dead && waitMs > 0) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      starting.settled,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs))),
    ]);
    clearTimeout(timer);
  }
  return spawnNow(state, request);
}

/** Through the ready launcher, else directly (noted once in the log). */
function spawnNow(state: LauncherState, request: SpawnRequest): Promise<Spawned> {
  const launcher = state.current;
  if (state.closed || !launcher?.ready || launcher.dead) {
    if (!state.closed && state.direct === undefined) {
      state.direct = 'noted';
      state.logger.warn('agent launcher not ready; spawning agents from the daemon', {
        agent: request.agent,
      });
    }
    return spawnDirect(request);
  }
  const id = state.nextId++;
  return new Promise<Spawned>((resolve, reject) => {
    launcher.pending.set(id, { request, resolve, reject });
    holdLoop(launcher);
    launcher.child.stdin!.write(`${JSON.stringify({ type: 'spawn', id, ...request })}\n`);
    // Not answered soon: is it stopped? (Else the periodic check would find it within pollMs.)
    const check = setTimeout(() => {
      if (launcher.pending.has(id)) void killIfStopped(state, launcher);
    }, ANSWER_CHECK_MS);
    check.unref();
  });
}

/** {@link AgentSpawner.stand}. */
function standOrder(state: LauncherState, pid: number, request: StandingRequest): boolean {
  const launcher = state.current;
  if (state.closed || !launcher?.ready || launcher.dead || !launcher.children.has(pid))
    return false;
  launcher.standing.get(pid)?.settle();
  const id = state.nextId++;
  let settle!: () => void;
  const settled = new Promise<void>((resolve) => (settle = resolve));
  let resolve!: (spawned: Spawned) => void;
  let reject!: (error: unknown) => void;
  const spawned = new Promise<Spawned>((yes, no) => ((resolve = yes), (reject = no)));
  // Nobody awaits it unless the order is carried out.
  spawned.catch(() => undefined);
  launcher.standing.set(pid, { id, request, resolve, reject, spawned, settled, settle });
  launcher.child.stdin!.write(
    `${JSON.stringify({ type: 'stand', pid, request: { ...request, id } })}\n`,
  );
  return true;
}

/** {@link AgentSpawner.cancel}. */
function cancelOrder(state: LauncherState, pid: number): Promise<void> {
  const launcher = state.current;
  const order = launcher?.standing.get(pid);
  if (!launcher || !order) return Promise.resolve();
  launcher.child.stdin!.write(`${JSON.stringify({ type: 'cancel', pid })}\n`);
  return order.settled;
}

/** {@link AgentSpawner.close}. */
async function closeLauncher(state: LauncherState): Promise<void> {
  state.closed = true;
  if (state.restartTimer) clearTimeout(state.restartTimer);
  for (const timer of state.timers) clearInterval(timer);
  state.timers.clear();
  const launcher = state.current;
  if (!launcher || launcher.dead) return;
  // End of input: it answers what it was asked, then exits (its agents keep running).
  launcher.child.stdin!.end();
  const timer = setTimeout(() => launcher.child.kill('SIGKILL'), CLOSE_GRACE_MS);
  await launcher.gone;
  clearTimeout(timer);
}
