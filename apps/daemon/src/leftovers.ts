/**
 * Leftovers: processes that carry an agent's marks (this daemon's `PIT_INSTANCE`, the agent's
 * cell and name, and a `PIT_SPAWN` nonce) but belong to no start of it that is still running —
 * what an agent forked, including children that left its process group and session with
 * `setsid`, and that outlived it. Owns finding them (`/proc/*\/environ`: children inherit the
 * environment) and SIGKILLing them, at most once per {@link REAP_INTERVAL_MS} (less often when
 * a scan is slow: a host with thousands of processes), after an agent
 * exits or starts and after agents are taken up. Touches only agents of the fleet that the Pit
 * manages, and never one being taken up or started; a process whose nonce is that of the
 * agent's live process (or of a start in flight) is the agent's and is left alone.
 */
import {
  markedKey,
  readProcessStartTime,
  scanMarkedProcesses,
  signalProcess,
  type MarksMemo,
} from './proc.js';
import type { Slot } from './slot.js';
import type { SupervisorContext } from './supervisor-context.js';

/** A scan of `/proc` for leftovers runs at most this often (ms). */
export const REAP_INTERVAL_MS = 1_000;
/**
 * A slow scan spaces the next ones out: the wait after a scan is this many times its duration
 * (at least {@link REAP_INTERVAL_MS}, at most {@link REAP_INTERVAL_MAX_MS}), so that a host with
 * thousands of processes spends at most about a twentieth of its time reading `/proc` for leftovers.
 */
const REAP_WAIT_PER_SCAN_MS = 20;
/** The longest wait between two scans asked for (ms). */
const REAP_INTERVAL_MAX_MS = 10_000;
/** The first scan after a request waits this long, so that one scan covers a burst (ms). */
const REAP_DELAY_MS = 50;
/** The nonce that stands for "none" (a process an older daemon started). */
const NO_NONCE = '';

interface Reaper {
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  again: boolean;
  lastAt: number;
  /** The least wait after the last scan (ms): {@link REAP_INTERVAL_MS}, more after a slow scan. */
  interval: number;
  /** What the scans read of each process, kept between them (see {@link scanMarkedProcesses}). */
  memo: MarksMemo;
}

const reapers = new WeakMap<SupervisorContext, Reaper>();
/** Agents whose process is being adopted or started: their marked processes are not judged. */
const busy = new WeakMap<Slot, number>();

/** Runs `work` with `slot` marked busy (a take-up or a start): no leftover of it is judged meanwhile. */
export async function whileBusy<T>(slot: Slot, work: () => Promise<T>): Promise<T> {
  busy.set(slot, (busy.get(slot) ?? 0) + 1);
  try {
    return await work();
  } finally {
    const left = (busy.get(slot) ?? 1) - 1;
    if (left === 0) busy.delete(slot);
    else busy.set(slot, left);
  }
}

/** Asks for a scan for leftovers soon (coalesced; at most one per {@link REAP_INTERVAL_MS}). */
export function reapLeftoversSoon(context: SupervisorContext): void {
  let reaper = reapers.get(context);
  if (!reaper)
    reapers.set(
      context,
      (reaper = {
        timer: undefined,
        running: undefined,
        again: false,
        lastAt: 0,
        interval: REAP_INTERVAL_MS,
        memo: new Map(),
      }),
    );
  if (context.stopped || context.dryRun) return;
  if (reaper.running) {
    reaper.again = true;
    return;
  }
  if (reaper.timer) return;
  const wait = Math.max(REAP_DELAY_MS, reaper.lastAt + reaper.interval - Date.now());
  const scheduled = reaper;
  scheduled.timer = setTimeout(() => {
    scheduled.timer = undefined;
    void runReap(context, scheduled);
  }, wait);
  scheduled.timer.unref();
}

/** Scans for leftovers now and waits for the scan (a one-shot sweep's end). @returns how many were killed. */
export async function reapLeftovers(context: SupervisorContext): Promise<number> {
  if (context.stopped || context.dryRun) return 0;
  return killLeftovers(context);
}

async function runReap(context: SupervisorContext, reaper: Reaper): Promise<void> {
  if (context.stopped) return;
  reaper.lastAt = Date.now();
  const started = performance.now();
  reaper.running = killLeftovers(context, reaper.memo)
    .catch((error: unknown) => {
      context.logger.error('cannot look for leftover processes', { error: String(error) });
    })
    .then(() => undefined);
  await reaper.running;
  reaper.running = undefined;
  reaper.interval = Math.min(
    REAP_INTERVAL_MAX_MS,
    Math.max(REAP_INTERVAL_MS, (performance.now() - started) * REAP_WAIT_PER_SCAN_MS),
  );
  if (reaper.again) {
    reaper.again = false;
    reapLeftoversSoon(context);
  }
}

/** The nonces of each managed agent's legitimate processes, by {@link markedKey}; `undefined`: do not judge. */
function legitimateNonces(context: SupervisorContext): Map<string, Set<string> | undefined> {
  const legitimate = new Map<string, Set<string> | undefined>();
  for (const slot of context.fleet.slots.values()) {
    if (slot.supervision.mode !== 'managed') continue;
    const key = markedKey(slot.cell?.uuid, slot.name);
    if (busy.has(slot)) {
      legitimate.set(key, undefined);
      continue;
    }
    const nonces = new Set<string>();
    const running = slot.process && !slot.process.exit ? slot.process : undefined;
    if (running) nonces.add(running.nonce ?? NO_NONCE);
    legitimate.set(key, nonces);
  }
  return legitimate;
}

async function killLeftovers(context: SupervisorContext, memo?: MarksMemo): Promise<number> {
  const legitimate = legitimateNonces(context);
  if (legitimate.size === 0) return 0;
  const marked = await scanMarkedProcesses(context.instance, { memo });
  // Judged again after the scan: a start or an exit may have happened while /proc was read.
  const now = legitimateNonces(context);
  let killed = 0;
  for (const found of marked) {
    const key = markedKey(found.cell, found.agent);
    const before = legitimate.get(key);
    const after = now.get(key);
    const nonce = found.nonce ?? NO_NONCE;
    if (!before || !after || before.has(nonce) || after.has(nonce)) continue;
    // The pid may have been reused since the scan: signal only the process that was found.
    if ((await readProcessStartTime(found.pid).catch(() => undefined)) !== found.startTime)
      continue;
    if (found.pid <= 1 || !signalProcess(found.pid, 'SIGKILL')) continue;
    killed += 1;
    context.logger.warn('killed a leftover process of an agent', {
      agent: found.cell ? `${found.cell}/${found.agent}` : `host/${found.agent}`,
      pid: found.pid,
      reason:
        found.nonce === undefined
          ? 'carries the agent marks of an older daemon and is not the agent'
          : 'carries the marks of a start of the agent that is no longer running',
    });
  }
  return killed;
}
