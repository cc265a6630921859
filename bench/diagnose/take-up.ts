/**
 * Diagnosis, not a benchmark: how long one real `pit daemon` takes to take up COUNT agents seen
 * for the first time (fleet-sync.ts: each gets a slot and its first start), the path a host
 * taking over a dead host's agents runs. The agents are `sleep` processes outside cells (nothing
 * to probe but the process). Reported: the time from spawning the daemon until it says it
 * supervises, until the last `agent_started` event is in its log, the span between the first and
 * the last start, the daemon's CPU, and the load average. A daemon with no agents is measured
 * first, for the start-up cost every daemon pays.
 * Usage: node --conditions=@pit/source --import tsx bench/diagnose/take-up.ts [COUNTS] [ROUNDS]
 * (COUNTS comma-separated, default 1000; ROUNDS per count, default 1.) PIT_BENCH_CPU_PROF=DIR: each
 * daemon writes a V8 CPU profile there when it stops.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuMs } from '../lib/proc.js';
import { startPitDaemon, writeConfig, PIT_MODE_NOTE } from '../lib/pit.js';
import { sleepFleetToml } from '../lib/sleep-fleet.js';

const COUNTS = (process.argv[2] ?? '1000').split(',').map(Number);
const ROUNDS = Number(process.argv[3] ?? 1);
const say = (line: string) => process.stderr.write(`[take-up] ${line}\n`);
const load = () =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');

/** A `sleep` duration no other process on the machine has: this run's agents, found in /proc. */
const token = `86399.${process.pid}`;

/** Pids of this run's agents still alive (a daemon that failed leaves them: killed by pid). */
function leftovers(): number[] {
  return readdirSync('/proc').flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      return argv[0]?.endsWith('sleep') && argv[1] === token ? [Number(entry)] : [];
    } catch {
      return [];
    }
  });
}

/** The `ts` of every `agent_started` event in the daemon's own log (agents outside cells). */
function startTimes(base: string): number[] {
  const path = join(base, 'state', 'logs', 'events.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .flatMap((line) => {
      if (!line.includes('"agent_started"')) return [];
      return [Date.parse((JSON.parse(line) as { ts: string }).ts)];
    });
}

async function measure(count: number): Promise<string> {
  const base = mkdtempSync(join(tmpdir(), 'pit-take-up-'));
  const loadBefore = load();
  const configPath = writeConfig(
    join(base, 'pit.toml'),
    sleepFleetToml({ work: base, count, token }),
  );
  const spawnedAt = Date.now();
  const profile = process.env.PIT_BENCH_CPU_PROF;
  const daemon = await startPitDaemon({
    configPath,
    cwd: base,
    readyTimeoutMs: 300_000,
    ...(profile ? { nodeOptions: ['--cpu-prof', `--cpu-prof-dir=${profile}`] } : {}),
  });
  try {
    const readyMs = Date.now() - spawnedAt;
    let starts = startTimes(base);
    // Bounded: every agent started, or give up after 5 minutes.
    for (const deadline = Date.now() + 300_000; starts.length < count;) {
      if (Date.now() > deadline) throw new Error(`${starts.length} of ${count} agents started`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      starts = startTimes(base);
    }
    const allMs = Math.max(...starts, spawnedAt) - spawnedAt;
    const spanMs = count > 0 ? Math.max(...starts) - Math.min(...starts) : 0;
    const cpu = cpuMs(daemon.pid) ?? 0;
    return `${count} agents: supervising after ${readyMs} ms, last agent_started ${allMs} ms after spawn (first→last start ${spanMs} ms${count > 1 ? `, ${((count / Math.max(spanMs, 1)) * 1000).toFixed(0)} starts/s` : ''}); daemon CPU ${cpu} ms; load ${loadBefore} → ${load()}`;
  } finally {
    await daemon.stop(60_000);
    for (const pid of leftovers()) process.kill(pid, 'SIGKILL');
    rmSync(base, { recursive: true, force: true });
  }
}

say(`pit: ${PIT_MODE_NOTE}`);
const rows: string[] = [];
for (const count of [0, ...COUNTS])
  for (let round = 0; round < (count === 0 ? 1 : ROUNDS); round += 1) {
    const row = await measure(count);
    say(row);
    rows.push(row);
  }
process.stdout.write(`${rows.join('\n')}\n`);
