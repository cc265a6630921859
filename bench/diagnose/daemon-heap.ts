/**
 * Diagnosis, not a benchmark: the detection-at-scale fleet (CELLS × 100 heartbeat agents in cells
 * + GATEWAYS HTTP gateways outside cells), the real `pit daemon` supervising it until every agent
 * is healthy, then its RSS and (with a DIR) a V8 heap snapshot written into DIR.
 * Usage: node --conditions=@pit/source --import tsx bench/diagnose/daemon-heap.ts CELLS GATEWAYS [DIR]
 * (PIT_BENCH_MEMORY=FILE: the daemon also logs process.memoryUsage() and V8's heap spaces to FILE;
 * PIT_BENCH_ALLOC_PROF=FILE: see memory-preload.mjs; PIT_BENCH_NODE_FLAGS: node/V8 flags for the daemon; PIT_BENCH_SWEEP_PROF=DIR: then
 * `pit sweep --once` over the same fleet, its CPU profile in DIR; PIT_BENCH_STEADY_MS: the steady
 * phase, default 20 s.)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startLineChild } from '../lib/line-child.js';
import { agentsByHealth } from '../lib/metrics.js';
import { pitArgv, startPitDaemon, writeConfig, type PitDaemon } from '../lib/pit.js';
import { watchOnlyConfig } from '../lib/watch-only-config.js';
import { memoryMb, reapAll, sampleProcess } from '../lib/proc.js';

const CELLS = Number(process.argv[2] ?? 3);
const GATEWAYS = Number(process.argv[3] ?? 50);
const SNAPSHOT_DIR = process.argv[4];
const STALE_S = 90;
const base = mkdtempSync(join(tmpdir(), 'pit-heap-'));
const root = join(base, 'missions');
const say = (line: string) => process.stderr.write(`[daemon-heap] ${line}\n`);
const fleet = startLineChild(fileURLToPath(new URL('../lib/heartbeat-fleet.ts', import.meta.url)));
const gateways = startLineChild(
  fileURLToPath(new URL('../lib/gateway-fleet.ts', import.meta.url)),
  [String(GATEWAYS)],
);
let daemon: PitDaemon | undefined;
try {
  const { ports } = await gateways.next<{ ports: number[] }>();
  await fleet.call({ cmd: 'provision', root, cells: CELLS, perCell: 100 });
  await fleet.call({ cmd: 'beat', periodMs: (STALE_S * 1000) / 3 });
  mkdirSync(join(base, 'gateways'), { recursive: true });
  const toml = watchOnlyConfig({
    staleS: STALE_S,
    ports,
    probe: { interval_s: 5, timeout_s: 2, failure_threshold: 2 },
  });
  const configPath = writeConfig(join(base, 'pit.toml'), toml);
  const total = CELLS * 100 + GATEWAYS;
  daemon = await startPitDaemon({
    configPath,
    cwd: base,
    http: true,
    readyTimeoutMs: 300_000,
    nodeOptions: [
      // PIT_BENCH_NODE_FLAGS="--flag …": node/V8 flags for the daemon (trying a GC setting).
      ...(process.env.PIT_BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
      ...(SNAPSHOT_DIR
        ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${SNAPSHOT_DIR}`]
        : []),
      // PIT_BENCH_MEMORY=FILE: the daemon appends its memoryUsage() and heap spaces there every 2 s.
      ...(process.env.PIT_BENCH_MEMORY
        ? ['--import', new URL('./memory-preload.mjs', import.meta.url).href]
        : []),
    ],
  });
  for (const deadline = Date.now() + 300_000; Date.now() < deadline; await sleep(1000)) {
    const counts = await agentsByHealth(daemon.url!).catch(() => ({}) as Record<string, number>);
    if (counts.healthy === total) break;
  }
  const steadyMs = Number(process.env.PIT_BENCH_STEADY_MS ?? 20_000);
  say(`all ${total} healthy; steady ${steadyMs / 1000} s`);
  const steady = sampleProcess(daemon.pid);
  await sleep(steadyMs);
  const stats = steady.stop();
  const memory = memoryMb(daemon.pid);
  say(
    `agents ${total}: RSS ${stats.rssMb.toFixed(1)} MB (now ${memory?.rss.toFixed(1)}, peak ${memory?.peak.toFixed(1)}), CPU ${stats.cpuPercent.toFixed(1)} %`,
  );
  if (SNAPSHOT_DIR) {
    const before = new Set(readdirSync(SNAPSHOT_DIR));
    process.kill(daemon.pid, 'SIGUSR2');
    for (let i = 0; i < 600; i++) {
      await sleep(1000);
      const fresh = readdirSync(SNAPSHOT_DIR).filter(
        (f) => !before.has(f) && f.endsWith('.heapsnapshot'),
      );
      if (fresh.length === 0) continue;
      // Written while the daemon is paused; done once its size stops growing.
      const sizeOf = () => statSync(join(SNAPSHOT_DIR, fresh[0]!)).size;
      for (let last = -1; sizeOf() === 0 || sizeOf() !== last; await sleep(3000)) last = sizeOf();
      say(`snapshot ${fresh[0]} (${sizeOf()} bytes)`);
      break;
    }
  }
  const sweepProfileDir = process.env.PIT_BENCH_SWEEP_PROF;
  if (sweepProfileDir) {
    // `pit sweep --once` over the same fleet once the daemon is gone, with a V8 CPU profile.
    await daemon.stop();
    daemon = undefined;
    const startedAt = performance.now();
    const sweep = spawnSync(
      process.execPath,
      pitArgv(
        ['--config', configPath, 'sweep', '--once', '--json'],
        ['--cpu-prof', '--cpu-prof-dir', sweepProfileDir],
      ),
      { cwd: base, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
    );
    say(
      `pit sweep --once: exit ${sweep.status}, ${Math.round(performance.now() - startedAt)} ms; profile in ${sweepProfileDir}`,
    );
  }
  console.log(
    JSON.stringify({ total, rssMb: stats.rssMb, cpu: stats.cpuPercent, peak: memory?.peak }),
  );
} finally {
  await daemon?.stop().catch(() => undefined);
  await fleet.stop().catch(() => undefined);
  await gateways.stop().catch(() => undefined);
  reapAll();
  rmSync(base, { recursive: true, force: true });
}
