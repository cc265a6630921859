/**
 * The daemon's own costs, on real processes and files:
 * - one full sweep (`pit sweep --once`) over a fleet of heartbeat-only agents in 20 cells
 *   (1,000 agents; BENCH_SMOKE=1: 100): target < 5 s;
 * - how fast an agent's exit is noticed (spawn of `sh -c 'exit 3'` at level 1 until the
 *   exit is reported; median of 30, smoke 5): target < 100 ms;
 * - starting an agent at isolation level 2 until it has run and exited (median of 10, smoke 3): target < 1000 ms.
 * Prints progress to stderr and one BENCH_RESULT line to stdout.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { provisionCell, writeHeartbeat } from '@pit/cell-spec';
import { parseConfig, resolveConfigPaths } from '../src/config.js';
import { createExecutor } from '../src/executor.js';
import { createSupervisor } from '../src/supervisor.js';

const smoke = process.env.BENCH_SMOKE === '1';
const AGENTS = smoke ? 100 : 1_000;
const CELLS = 20;
const EXITS = smoke ? 5 : 30;
const SANDBOXES = smoke ? 3 : 10;
const log = (message: string): void => void process.stderr.write(`[supervision] ${message}\n`);
/**
 * An agent is spawned fully detached (its child is unref'd, so a one-shot sweep can exit): awaiting
 * its exit alone keeps nothing alive. Hold the event loop open until `promise` settles.
 */
async function held<T>(promise: Promise<T>): Promise<T> {
  const keep = setInterval(() => {}, 60_000);
  try {
    return await promise;
  } finally {
    clearInterval(keep);
  }
}
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const base = await fs.mkdtemp(join(tmpdir(), 'pit-bench-'));
try {
  // A fleet: CELLS cells, AGENTS agents spread over them, every one with a fresh heartbeat.
  const root = join(base, 'missions');
  const perCell = Math.ceil(AGENTS / CELLS);
  const now = Date.now();
  for (let cell = 0; cell < CELLS; cell++) {
    const agents = Array.from(
      { length: Math.min(perCell, AGENTS - cell * perCell) },
      (_, index) => ({ name: `agent-${cell}-${index}`, role: 'write' }),
    );
    const { dir, manifest } = await provisionCell(root, {
      mission: `bench mission ${cell}`,
      created_by: 'bench',
      agents,
    });
    await Promise.all(
      agents.map((agent) =>
        writeHeartbeat(dir, {
          agent: agent.name,
          cell_uuid: manifest.uuid,
          cycle: 1,
          status: 'working',
          timestamp: now / 1000,
        }),
      ),
    );
  }
  log(`fleet of ${AGENTS} agents in ${CELLS} cells ready`);
  const parsed = parseConfig(
    '[daemon]\nstate_dir = "state"\n[daemon.http]\nenabled = false\n[cells]\nroot = "missions"\nheartbeat_stale_s = 600\n[checkpoints]\ninterval_s = 0\n',
    'toml',
  );
  if (!parsed.ok) throw new Error('bench config invalid');
  const config = resolveConfigPaths(parsed.config, base);
  const supervisor = await createSupervisor({
    config,
    policyInput: parsed.policyInput,
    env: process.env,
  });
  const sweepStarted = performance.now();
  const report = await supervisor.sweep();
  const sweepMs = performance.now() - sweepStarted;
  await supervisor.stop();
  const healthy = report.agents.filter((agent) => agent.health === 'healthy').length;
  log(`sweep of ${report.agents.length} agents: ${sweepMs.toFixed(0)} ms, ${healthy} healthy`);
  if (healthy !== AGENTS) throw new Error(`expected ${AGENTS} healthy agents, got ${healthy}`);

  // Exit notification latency at level 1.
  const cell = await provisionCell(root, {
    mission: 'exits',
    created_by: 'bench',
    agents: [{ name: 'quick', role: 'write' }],
  });
  const executor = createExecutor({ env: process.env });
  const exitLatencies: number[] = [];
  for (let run = 0; run < EXITS; run++) {
    const started = performance.now();
    const agent = await executor.start({
      agent: 'quick',
      argv: ['sh', '-c', 'exit 3'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      cell: { uuid: cell.manifest.uuid, dir: cell.dir },
    });
    const exit = await held(agent.exited);
    if (exit.code !== 3) throw new Error(`unexpected exit ${JSON.stringify(exit)}`);
    exitLatencies.push(performance.now() - started);
  }
  log(`level-1 start → exit noticed: median ${median(exitLatencies).toFixed(1)} ms over ${EXITS}`);

  // A level-2 sandbox, entered, run and left.
  const sandboxLatencies: number[] = [];
  for (let run = 0; run < SANDBOXES; run++) {
    const started = performance.now();
    const agent = await executor.start({
      agent: 'quick',
      argv: ['sh', '-c', 'echo sandboxed > sandbox.txt'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      cell: { uuid: cell.manifest.uuid, dir: cell.dir },
      isolation: { level: 2 },
    });
    const exit = await held(agent.exited);
    if (exit.code !== 0) throw new Error(`level-2 run failed: ${JSON.stringify(exit)}`);
    sandboxLatencies.push(performance.now() - started);
  }
  log(`level-2 start → exit: median ${median(sandboxLatencies).toFixed(1)} ms over ${SANDBOXES}`);
  executor.close();

  const rows = [
    {
      metric: `sweep of ${AGENTS} agents in ${CELLS} cells`,
      value: Math.round(sweepMs),
      unit: 'ms',
      target: '< 5000 ms',
      ok: sweepMs < 5000,
    },
    {
      metric: 'level-1 agent exit noticed after spawn (median)',
      value: Math.round(median(exitLatencies) * 10) / 10,
      unit: 'ms',
      target: '< 100 ms',
      ok: median(exitLatencies) < 100,
    },
    {
      metric: 'level-2 sandboxed agent run, start to exit (median)',
      value: Math.round(median(sandboxLatencies)),
      unit: 'ms',
      target: '< 1000 ms',
      ok: median(sandboxLatencies) < 1000,
    },
  ];
  process.stdout.write(
    `BENCH_RESULT ${JSON.stringify({ title: `daemon supervision${smoke ? ' (smoke)' : ''}`, rows })}\n`,
  );
} finally {
  await fs.rm(base, { recursive: true, force: true });
}
