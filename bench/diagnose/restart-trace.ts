/**
 * Diagnosis, not a benchmark: where one restart's time goes, call by call. Runs the real `pit
 * daemon` (the restart-latency bench's config for fast restarts, bench/lib/fast-restart-toml.ts)
 * with one agent under bench/lib/trace-preload.mjs, SIGKILLs the agent KILLS times (each
 * replacement up ≥ 1 s), and
 * prints for each kill every file-system call (with its path) that the daemon and its agent
 * launcher made between the launcher's `exit` event and its spawn() of the replacement. It found
 * the agent launcher's ~10 ms move into the agent's cgroup ([sandbox] cgroup_favordynmods).
 * Usage: node --conditions=@pit/source --import tsx bench/diagnose/restart-trace.ts [KILLS]
 * (PIT_BENCH_CPU_PROF=DIR: the daemon also writes a V8 CPU profile, 100 µs samples, into DIR.)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { cgroupMount, restoreCgroupMount } from '../lib/cgroup-mount.js';
import { fastRestartToml } from '../lib/fast-restart-toml.js';
import { startPitDaemon, writeConfig } from '../lib/pit.js';
import { reapAll } from '../lib/proc.js';

const KILLS = Number(process.argv[2] ?? 6);
const TRACE_PRELOAD = fileURLToPath(new URL('../lib/trace-preload.mjs', import.meta.url));
const base = mkdtempSync(join(tmpdir(), 'pit-restart-trace-'));
const dir = join(base, 'pit');
mkdirSync(dir);
const stamps = join(base, 'stamps');
const trace = join(base, 'trace.jsonl');
const profileDir = process.env.PIT_BENCH_CPU_PROF;

interface TraceEntry {
  kind: 'spawn' | 'exit' | 'fs';
  name?: string;
  path?: string;
  t: number;
  dur?: number;
  by: number;
  command?: string;
}

/** The pid of the running agent (its argv names the stamps file), or 0. */
const agentPid = (): number => {
  try {
    return Number(execFileSync('pgrep', ['-f', stamps], { encoding: 'utf8' }).split('\n')[0]);
  } catch {
    return 0;
  }
};

// The config sets favordynmods on the host's cgroup2 mount: put back after the run.
const mountBefore = await cgroupMount();
const configPath = writeConfig(join(dir, 'pit.toml'), fastRestartToml(dir, stamps));
const daemon = await startPitDaemon({
  configPath,
  cwd: dir,
  nodeOptions: [
    '--import',
    TRACE_PRELOAD,
    ...(profileDir
      ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--cpu-prof-interval=100']
      : []),
  ],
  env: { ...process.env, PIT_BENCH_TRACE: trace },
});
const kills: number[] = [];
try {
  for (let waited = 0; agentPid() === 0 && waited < 100; waited += 1) await sleep(100);
  await sleep(1000);
  for (let round = 0; round < KILLS; round += 1) {
    const pid = agentPid();
    if (pid === 0) throw new Error('the agent is not running');
    kills.push(performance.timeOrigin + performance.now());
    process.kill(pid, 'SIGKILL');
    for (let waited = 0; waited < 200; waited += 1) {
      const now = agentPid();
      if (now !== 0 && now !== pid) break;
      await sleep(25);
    }
    await sleep(1000);
  }
} finally {
  await daemon.stop();
  reapAll();
  await restoreCgroupMount(mountBefore);
}
const entries = readFileSync(trace, 'utf8')
  .split('\n')
  .flatMap((line) => (line.trim() ? [JSON.parse(line) as TraceEntry] : []))
  .sort((a, b) => a.t - b.t);
for (const kill of kills) {
  const exit = entries.find((entry) => entry.kind === 'exit' && entry.t >= kill);
  const spawned =
    exit &&
    entries.find(
      (entry) => entry.kind === 'spawn' && entry.t >= exit.t && entry.command === 'node',
    );
  if (!exit || !spawned) continue;
  console.log(
    `kill → exit event ${(exit.t - kill).toFixed(2)} ms (pid ${exit.by}); exit → spawn() ${(spawned.t - exit.t).toFixed(2)} ms (pid ${spawned.by}); spawn() ${spawned.dur?.toFixed(2)} ms`,
  );
  for (const entry of entries)
    if (entry.kind === 'fs' && entry.t >= exit.t && entry.t < spawned.t)
      console.log(
        `  +${(entry.t - exit.t).toFixed(2)} ms  pid ${entry.by}  ${entry.name} ${entry.dur?.toFixed(2)} ms  ${entry.path?.split('\n')[0]?.slice(0, 100) ?? ''}`,
      );
}
rmSync(base, { recursive: true, force: true });
