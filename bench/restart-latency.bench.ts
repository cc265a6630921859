/**
 * Restart latency, side by side: a tiny supervised Node program (bench/fixtures/stamp.cjs, which
 * records its own start) is killed with SIGKILL 30 times (BENCH_SMOKE=1: 5) under each of
 * - a bare Node parent that respawns its child on 'exit' (the ceiling for a Node supervisor),
 * - the Pit: the real `pit daemon` (CLI from source), the program as an agent outside cells,
 *   configured as an operator who wants fast restarts would (see the notes),
 * - supervisord (`supervisord -c FILE`, nodaemon), and
 * - PM2 (`pm2-runtime`, PM2_HOME in a temp dir),
 * all running at once, killed round-robin (one kill at a time, each child left up ≥ 1.5 s
 * before its kill so that no supervisor counts a crash loop).
 * Latency = the new child's start − the kill. "Start" is the child's `performance.timeOrigin`
 * (the instant its process began); "script running" (Node's start-up added) is reported too.
 * Each is a ratio to the bare respawn. Targets: the Pit ≤ 1.2× bare (p50, to the process
 * start), and faster than supervisord and PM2. A peer that is not installed
 * (bench/setup/install-peers.sh) is reported as such, not dropped.
 * Then, separately (not part of the comparison), "where the time goes": the bare parent and the
 * Pit run again under a tracing preload (bench/lib/trace-preload.mjs) that timestamps each
 * child's 'exit' event, every file-system call and each spawn() inside the supervisor.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { cgroupMount, restoreCgroupMount } from './lib/cgroup-mount.js';
import { fastRestartToml as pitToml } from './lib/fast-restart-toml.js';
import { PIT_MODE_NOTE, startPitDaemon, writeConfig } from './lib/pit.js';
import { cpuMs, memoryMb, reapAll, reapLater, stopChild } from './lib/proc.js';
import { emitResult, machineNote, progress, smoke, type BenchRow } from './lib/report.js';
import { percentile, round, summary } from './lib/stats.js';

const KILLS = smoke ? 5 : 30;
const TRACED_KILLS = smoke ? 3 : 10;
/** Each supervisor's child runs at least this long before it is killed (supervisord's startsecs and PM2's min_uptime are 1 s). */
const MIN_UPTIME_MS = 1500;
const RESTART_TIMEOUT_MS = 30_000;
const STAMP = fileURLToPath(new URL('./fixtures/stamp.cjs', import.meta.url));
const BARE = fileURLToPath(new URL('./fixtures/bare-respawn.mjs', import.meta.url));
const SPAWN_COST = fileURLToPath(new URL('./fixtures/spawn-cost.mjs', import.meta.url));
const TRACE_PRELOAD = fileURLToPath(new URL('./lib/trace-preload.mjs', import.meta.url));
const PM2_DIR = fileURLToPath(new URL('./setup/.cache/pm2/node_modules/pm2/', import.meta.url));
const log = progress('restart-latency');
const nowUs = () => performance.timeOrigin + performance.now();

/** What the child wrote when it started (wall-clock ms since the epoch, µs resolution). */
interface Stamp {
  pid: number;
  origin: number;
  ready: number;
}

/** A supervisor under test: it keeps `node stamp.cjs <file>` running. */
interface Peer {
  name: string;
  /** Why it did not run, when it did not. */
  unavailable?: string;
  file: string;
  /** The supervisor's own process. */
  child?: ChildProcess;
  stamps: Stamp[];
  kills: number[];
  origin: number[];
  ready: number[];
  failures: string[];
  /** The supervisor's CPU time over the rounds (ms), when it could be read. */
  cpuMs?: number;
  /** The supervisor's resident memory after the rounds (MB). */
  rssMb?: number;
  stop(): Promise<void>;
}

function readStamps(file: string): Stamp[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return line.trim() ? [JSON.parse(line) as Stamp] : [];
      } catch {
        return [];
      }
    });
}

/** Waits for stamp number `count` (polling the file every 5 ms: the stamp carries its own time). */
async function waitForStamp(
  peer: Peer,
  count: number,
  timeoutMs: number,
): Promise<Stamp | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const stamps = readStamps(peer.file);
    if (stamps.length >= count) {
      peer.stamps = stamps;
      return stamps[count - 1];
    }
    if (peer.child && (peer.child.exitCode !== null || peer.child.signalCode !== null))
      return undefined;
    await sleep(5);
  }
  return undefined;
}

function findInPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  return undefined;
}

const base = mkdtempSync(join(tmpdir(), 'pit-bench-restart-'));
// The Pit's config below sets favordynmods on the host's cgroup2 mount: put back after the run.
const cgroupMountBefore = await cgroupMount();
const started: Peer[] = [];
const newPeer = (name: string, id: string): Peer => {
  const peer: Peer = {
    name,
    file: join(base, `${id}.stamps`),
    stamps: [],
    kills: [],
    origin: [],
    ready: [],
    failures: [],
    stop: async () => undefined,
  };
  started.push(peer);
  return peer;
};

function startBare(id: string, trace?: string): Peer {
  const peer = newPeer('bare respawn', id);
  peer.child = spawn(
    process.execPath,
    [...(trace ? ['--import', TRACE_PRELOAD] : []), BARE, process.execPath, STAMP, peer.file],
    {
      detached: true,
      stdio: 'ignore',
      env: trace ? { ...process.env, PIT_BENCH_TRACE: trace } : process.env,
    },
  );
  reapLater(peer.child.pid);
  peer.stop = () => stopChild(peer.child!);
  return peer;
}

async function startPit(id: string, trace?: string): Promise<Peer> {
  const peer = newPeer('the Pit', id);
  const dir = join(base, id);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const configPath = writeConfig(join(dir, 'pit.toml'), pitToml(dir, peer.file));
  try {
    const daemon = await startPitDaemon({
      configPath,
      cwd: dir,
      ...(trace
        ? {
            nodeOptions: ['--import', TRACE_PRELOAD],
            env: { ...process.env, PIT_BENCH_TRACE: trace },
          }
        : {}),
    });
    peer.child = daemon.child;
    peer.stop = () => daemon.stop();
  } catch (error) {
    peer.unavailable = `pit daemon failed to start: ${(error as Error).message.split('\n')[0]}`;
  }
  return peer;
}

async function startSupervisord(id: string): Promise<Peer> {
  const peer = newPeer('supervisord', id);
  const binary = findInPath('supervisord');
  if (!binary) {
    peer.unavailable =
      'supervisord not installed (bench/setup/install-peers.sh: apt-get install -y supervisor)';
    return peer;
  }
  const dir = join(base, id);
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'supervisord.conf');
  writeFileSync(
    config,
    [
      '[supervisord]',
      'nodaemon=true',
      `logfile=${join(dir, 'supervisord.log')}`,
      `pidfile=${join(dir, 'supervisord.pid')}`,
      `childlogdir=${dir}`,
      ...(process.getuid?.() === 0 ? ['user=root'] : []),
      '[program:stamp]',
      `command=${process.execPath} ${STAMP} ${peer.file}`,
      'autostart=true',
      'autorestart=true',
      'startsecs=1',
      'startretries=1000',
      'stopasgroup=true',
      'killasgroup=true',
      `stdout_logfile=${join(dir, 'stamp.log')}`,
      'redirect_stderr=true',
      '',
    ].join('\n'),
  );
  const version = await new Promise<string>((resolve) => {
    const probe = spawn(binary, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    probe.stdout.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    probe.on('close', () => resolve(text.trim()));
  });
  peer.name = `supervisord ${version}`;
  peer.child = spawn(binary, ['-c', config], { detached: true, stdio: 'ignore' });
  reapLater(peer.child.pid);
  peer.stop = () => stopChild(peer.child!, 10_000);
  return peer;
}

async function startPm2(id: string): Promise<Peer> {
  const peer = newPeer('PM2', id);
  const runtime = join(PM2_DIR, 'bin', 'pm2-runtime');
  if (!existsSync(runtime)) {
    peer.unavailable =
      'PM2 not installed (bench/setup/install-peers.sh: npm i pm2 into bench/setup/.cache)';
    return peer;
  }
  const dir = join(base, id);
  const home = join(dir, 'home');
  mkdirSync(home, { recursive: true });
  const ecosystem = join(dir, 'ecosystem.config.cjs');
  const app = {
    name: 'stamp',
    script: STAMP,
    args: [peer.file],
    env: { STAMP_FILE: peer.file },
    exec_mode: 'fork',
    instances: 1,
    autorestart: true,
    restart_delay: 0,
    min_uptime: 1000,
    max_restarts: 1000,
    out_file: join(dir, 'stamp.log'),
    error_file: join(dir, 'stamp.log'),
  };
  writeFileSync(ecosystem, `module.exports = { apps: [${JSON.stringify(app)}] };\n`);
  const { version } = JSON.parse(readFileSync(join(PM2_DIR, 'package.json'), 'utf8')) as {
    version: string;
  };
  peer.name = `PM2 ${version}`;
  // PM2_HOME is set before any pm2 code runs; pm2-runtime keeps its God daemon in this process.
  peer.child = spawn(process.execPath, [runtime, ecosystem], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, PM2_HOME: home },
  });
  reapLater(peer.child.pid);
  peer.stop = () => stopChild(peer.child!, 10_000);
  return peer;
}

/** spawn() of /bin/true from a Node parent holding `extraMb` more memory (fork copies the parent's page tables). */
async function spawnCost(extraMb: number): Promise<{ rssMb: number; spawnP50Ms: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [SPAWN_COST, String(Math.max(0, Math.round(extraMb))), '20'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('close', () => {
      try {
        resolve(JSON.parse(output) as { rssMb: number; spawnP50Ms: number });
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  });
}

/** Kills each running peer's child `kills` times, round-robin, one kill at a time. */
async function measure(peers: Peer[], kills: number, label: string): Promise<void> {
  for (const peer of peers.filter((candidate) => !candidate.unavailable)) {
    const first = await waitForStamp(peer, 1, 120_000);
    if (!first) peer.unavailable = 'its child never started';
    else log(`${label}: ${peer.name}: child ${first.pid} running`);
  }
  const active = peers.filter((peer) => !peer.unavailable);
  const lastStart = new Map<Peer, number>(active.map((peer) => [peer, Date.now()]));
  const cpuAtStart = new Map(active.map((peer) => [peer, cpuMs(peer.child!.pid!)]));
  for (let round_ = 0; round_ < kills; round_ += 1) {
    for (const peer of active) {
      if (peer.failures.length > 2) continue;
      const wait = MIN_UPTIME_MS - (Date.now() - lastStart.get(peer)!);
      if (wait > 0) await sleep(wait);
      const current = peer.stamps.at(-1)!;
      const killAt = nowUs();
      try {
        process.kill(current.pid, 'SIGKILL');
      } catch (error) {
        peer.failures.push(`kill ${current.pid}: ${(error as Error).message}`);
        continue;
      }
      const next = await waitForStamp(peer, peer.stamps.length + 1, RESTART_TIMEOUT_MS);
      lastStart.set(peer, Date.now());
      if (!next || next.pid === current.pid) {
        peer.failures.push(`no restart within ${RESTART_TIMEOUT_MS} ms after kill ${round_ + 1}`);
        continue;
      }
      peer.kills.push(killAt);
      peer.origin.push(next.origin - killAt);
      peer.ready.push(next.ready - killAt);
    }
    log(
      `${label}: round ${round_ + 1}/${kills}: ${active.map((peer) => `${peer.name} ${peer.origin.at(-1)?.toFixed(1) ?? '—'} ms`).join(', ')}`,
    );
  }
  for (const peer of active) {
    const before = cpuAtStart.get(peer);
    const after = cpuMs(peer.child!.pid!);
    if (before !== undefined && after !== undefined) peer.cpuMs = after - before;
    peer.rssMb = memoryMb(peer.child!.pid!)?.rss;
  }
}

interface TraceEntry {
  kind: 'spawn' | 'exit' | 'fs';
  name?: string;
  t: number;
  dur?: number;
  pid?: number;
  command?: string;
}

/** Splits each traced restart of `peer` into its stages, from the supervisor's own trace. */
function breakdown(
  peer: Peer,
  traceFile: string,
): { stages: Record<string, number[]>; calls: Map<string, number[]>; restarts: number } {
  const trace = existsSync(traceFile)
    ? readFileSync(traceFile, 'utf8')
        .split('\n')
        .flatMap((line) => (line.trim() ? [JSON.parse(line) as TraceEntry] : []))
        .sort((a, b) => a.t - b.t)
    : [];
  const stages: Record<string, number[]> = {
    'kill → exit event in JS': [],
    'exit event → spawn() called': [],
    'file-system calls in between (count)': [],
    'time inside those calls (ms, sync + awaited)': [],
    'spawn() call (synchronous fork + exec)': [],
    'spawn() called → child process start': [],
  };
  const calls = new Map<string, number[]>();
  let restarts = 0;
  peer.kills.forEach((kill, index) => {
    const start = kill + peer.origin[index]!;
    const exit = trace.find((entry) => entry.kind === 'exit' && entry.t >= kill);
    const spawned =
      exit &&
      trace.find(
        (entry) => entry.kind === 'spawn' && entry.t >= exit.t && entry.command === 'node',
      );
    if (!exit || !spawned) return;
    const between = trace.filter(
      (entry) => entry.kind === 'fs' && entry.t >= exit.t && entry.t < spawned.t,
    );
    restarts += 1;
    for (const entry of between)
      calls.set(entry.name!, [...(calls.get(entry.name!) ?? []), entry.dur ?? 0]);
    stages['kill → exit event in JS']!.push(exit.t - kill);
    stages['exit event → spawn() called']!.push(spawned.t - exit.t);
    stages['file-system calls in between (count)']!.push(between.length);
    stages['time inside those calls (ms, sync + awaited)']!.push(
      between.reduce((sum, entry) => sum + (entry.dur ?? 0), 0),
    );
    stages['spawn() call (synchronous fork + exec)']!.push(spawned.dur ?? Number.NaN);
    stages['spawn() called → child process start']!.push(start - spawned.t);
  });
  return { stages, calls, restarts };
}

try {
  // 1. The comparison: every supervisor at once, no instrumentation.
  const bare = startBare('bare');
  const pit = await startPit('pit');
  const supervisord = await startSupervisord('supervisord');
  const pm2 = await startPm2('pm2');
  const peers = [bare, pit, supervisord, pm2];
  await measure(peers, KILLS, 'comparison');
  for (const peer of peers) await peer.stop().catch(() => undefined);

  // 2. Where the time goes: the bare parent and the Pit again, each alone, traced.
  const bareTrace = join(base, 'bare.trace.jsonl');
  const pitTrace = join(base, 'pit.trace.jsonl');
  const tracedBare = startBare('bare-traced', bareTrace);
  await measure([tracedBare], TRACED_KILLS, 'traced');
  await tracedBare.stop();
  const tracedPit = await startPit('pit-traced', pitTrace);
  await measure([tracedPit], TRACED_KILLS, 'traced');
  await tracedPit.stop();
  // Calibration: spawn() from a small parent and from one as large as the Pit's daemon.
  const small = await spawnCost(0);
  const large = await spawnCost((pit.rssMb ?? small.rssMb) - small.rssMb);
  log(
    `spawn() of /bin/true: ${small.spawnP50Ms.toFixed(2)} ms from a ${Math.round(small.rssMb)} MB parent, ${large.spawnP50Ms.toFixed(2)} ms from a ${Math.round(large.rssMb)} MB one`,
  );

  const bareStart = percentile(bare.origin, 50);
  const bareStart95 = percentile(bare.origin, 95);
  const bareReady = percentile(bare.ready, 50);
  const pitStart = percentile(pit.origin, 50);
  const rows: BenchRow[] = [];
  for (const peer of peers) {
    if (peer.unavailable) {
      rows.push({
        metric: `${peer.name}: restart latency`,
        value: `not run: ${peer.unavailable}`,
        unit: '',
        target: peer === pit ? '≤ 1.2× bare' : 'runs',
        ok: false,
      });
      continue;
    }
    const start = summary(peer.origin);
    const ready = summary(peer.ready);
    const complete = peer.origin.length === KILLS;
    const ratio = start.p50 / bareStart;
    rows.push({
      metric: `${peer.name}: kill → child process start, p50 / p95 / max (${peer.origin.length}/${KILLS} restarts)`,
      value: `${start.p50} / ${start.p95} / ${start.max}`,
      unit: 'ms',
    });
    rows.push({
      metric: `${peer.name}: kill → child script running, p50 / p95 / max`,
      value: `${ready.p50} / ${ready.p95} / ${ready.max}`,
      unit: 'ms',
    });
    if (peer !== bare) {
      const target =
        peer === pit ? '≤ 1.2× bare (p50, process start)' : 'slower than the Pit (p50)';
      const ok = complete && (peer === pit ? ratio <= 1.2 : start.p50 > pitStart);
      rows.push({
        metric: `${peer.name}: × bare respawn, process start p50 (p95; script running p50)`,
        value: `${round(ratio, 2)}× (${round(start.p95 / bareStart95, 2)}×; ${round(ready.p50 / bareReady, 2)}×)`,
        unit: '',
        target,
        ok,
      });
    }
    if (peer.rssMb !== undefined)
      rows.push({
        metric: `${peer.name}: supervisor RSS (its process; PM2's God and supervisord's own)`,
        value: Math.round(peer.rssMb),
        unit: 'MB',
      });
    if (peer.cpuMs !== undefined)
      rows.push({
        metric: `${peer.name}: supervisor CPU per restart (/proc, 10 ms ticks)`,
        value: round(peer.cpuMs / Math.max(1, peer.origin.length), 1),
        unit: 'ms',
      });
    if (peer.failures.length)
      rows.push({
        metric: `${peer.name}: failures`,
        value: peer.failures.join('; '),
        unit: '',
        target: 'none',
        ok: false,
      });
  }
  const { stages: bareStages } = breakdown(tracedBare, bareTrace);
  const { stages: pitStages, calls, restarts } = breakdown(tracedPit, pitTrace);
  for (const stage of Object.keys(pitStages)) {
    const value = (stages: Record<string, number[]>) =>
      stages[stage]!.length
        ? String(round(percentile(stages[stage]!, 50), stage.includes('count') ? 0 : 2))
        : 'no data';
    rows.push({
      metric: `where the time goes (traced, p50 of ${pitStages[stage]!.length}): ${stage}, the Pit vs bare`,
      value: `${value(pitStages)} vs ${value(bareStages)}`,
      unit: stage.includes('count') ? 'calls' : 'ms',
    });
  }
  rows.push({
    metric: `where the time goes: spawn() of /bin/true from a Node parent of ${Math.round(small.rssMb)} MB vs ${Math.round(large.rssMb)} MB RSS (the Pit's size; fork copies page tables)`,
    value: `${round(small.spawnP50Ms, 2)} vs ${round(large.spawnP50Ms, 2)}`,
    unit: 'ms',
  });
  if (restarts > 0) {
    const perRestart = [...calls.entries()].map(
      ([name, durations]) =>
        `${name} ×${round(durations.length / restarts, 1)} (p50 ${round(percentile(durations, 50), 2)} ms)`,
    );
    rows.push({
      metric:
        "where the time goes: the Pit's file-system calls between the exit event and spawn(), per restart",
      value: perRestart.join(', '),
      unit: '',
    });
  }
  const notes = [
    `Machine: ${machineNote()}. The machine is shared with other engineers' test runs: numbers are noisy.`,
    'All supervisors ran at once; kills were round-robin, one at a time, each child up ≥ 1.5 s before its kill. Latency = the new child\'s performance.timeOrigin (its process start) − the kill (both wall clock, µs resolution); "script running" adds Node\'s own start-up.',
    `The Pit: \`pit daemon\`, ${PIT_MODE_NOTE}; the program as an agent outside cells, configured for fast restarts: cells.resurrect_after_s = 0 (default 120 s), [policy.defaults] backoff initial = 0 (default 10 s × 2), rollback_before_restart = false, restart_intensity 1000 per 15 min, fleet brake off, [daemon] standing_restarts = true (default false: right after each start the daemon leaves the agent launcher an order to start the agent again the moment it exits, because its policy would restart it at once; the daemon then decides the death as always and keeps that process as its restart), [sandbox] cgroup_favordynmods = true (default false: the daemon remounts the host's cgroup2 file system with favordynmods, so that the agent launcher's move into the agent's cgroup for each fork does not wait for an RCU grace period, about 10 ms here; the option was put back as it was after the run, and every supervisor in the comparison ran under it); logs to stderr (a pipe). It forks agents through its agent launcher (apps/daemon/src/launcher-program.mjs, a small child of the daemon, so that a fork does not copy the daemon's page tables); an exit reaches the daemon from the launcher's child \`exit\` event, not a poll (only adopted processes are polled).`,
    'supervisord: nodaemon, autorestart, startsecs=1. PM2: pm2-runtime (its God daemon in the foreground), fork mode, restart_delay 0, min_uptime 1 s, PM2_HOME in a temp dir.',
    `"Where the time goes": afterwards, the bare parent and the Pit each ran alone under bench/lib/trace-preload.mjs (${TRACED_KILLS} kills each), which timestamps the 'exit' event, every fs call and spawn() inside the supervisor (for the Pit, inside the daemon and its agent launcher: the 'exit' event and spawn() are then the launcher's, and the time between them includes both messages and the daemon's decision); not part of the comparison.`,
  ].join(' ');
  emitResult({
    title: `restart latency: the Pit vs bare respawn, supervisord, PM2 (${KILLS} SIGKILLs each${smoke ? ', smoke' : ''})`,
    rows,
    notes,
  });
} finally {
  for (const peer of started) await peer.stop().catch(() => undefined);
  reapAll();
  rmSync(base, { recursive: true, force: true });
  await restoreCgroupMount(cgroupMountBefore);
}
