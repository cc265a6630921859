/**
 * One full probe round over 1,000 HTTP targets on loopback of which 200 hang
 * (BENCH_SMOKE=1: 100 of which 20 hang), probe timeout 1 s, default concurrency:
 * target ≤ 2 s. The targets live in a separate process (bench/targets-host.ts), as gateways do.
 * Prints progress to stderr and one BENCH_RESULT line to stdout.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createProbeScheduler, GatewayHealthSchema, httpProbe, type ProbeEvent } from '@pit/probes';

const smoke = process.env.BENCH_SMOKE === '1';
const TARGETS = smoke ? 100 : 1_000;
const HUNG = smoke ? 20 : 200;
const TIMEOUT_MS = 1_000;
const log = (message: string): void => void process.stderr.write(`[http-round] ${message}\n`);

// Each target costs a listening socket and an accepted one in the host, and a client socket here.
const softLimit = Number(
  /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? Infinity,
);
if (softLimit < TARGETS * 2 + 256) {
  log(
    `open-file limit ${softLimit} is too low for ${TARGETS} targets; raise it (ulimit -n ${TARGETS * 3}) and re-run`,
  );
  process.exitCode = 1;
  throw new Error('open-file limit too low');
}

const host = spawn(
  process.execPath,
  [
    '--conditions=@pit/source',
    '--import',
    'tsx',
    fileURLToPath(new URL('./targets-host.ts', import.meta.url)),
    String(TARGETS - HUNG),
    String(HUNG),
  ],
  {
    stdio: ['pipe', 'pipe', 'inherit'],
  },
);
const line = await new Promise<string>((resolve) =>
  createInterface({ input: host.stdout }).once('line', resolve),
);
const ports = JSON.parse(line) as { live: number[]; hung: number[] };
const targets = [
  ...ports.live.map((port) => ({ port, hung: false })),
  ...ports.hung.map((port) => ({ port, hung: true })),
];
// Interleave hung and live targets, as a real fleet would be.
targets.sort((a, b) => ((a.port * 2654435761) % 4096) - ((b.port * 2654435761) % 4096));
log(`${ports.live.length} live and ${ports.hung.length} hung targets`);

const events: ProbeEvent[] = [];
let expected = TARGETS;
let roundDone: () => void = () => undefined;
let round = new Promise<void>((resolve) => (roundDone = resolve));
const scheduler = createProbeScheduler({
  seed: 1,
  onResult: (event) => {
    events.push(event);
    if (events.length === expected) roundDone();
  },
});

const firstStart = performance.now();
for (const [index, target] of targets.entries()) {
  scheduler.add({
    agent: `gateway-${index}`,
    probes: [
      {
        name: 'http',
        intervalMs: 600_000,
        timeoutMs: TIMEOUT_MS,
        run: (options) =>
          httpProbe(
            { url: `http://127.0.0.1:${target.port}/health`, schema: GatewayHealthSchema },
            options,
          ),
      },
    ],
  });
}
await round;
const firstRoundMs = performance.now() - firstStart;
log(`first round (on add): ${firstRoundMs.toFixed(0)} ms`);

events.length = 0;
expected = TARGETS;
round = new Promise<void>((resolve) => (roundDone = resolve));
const sweepStart = performance.now();
const cpuBefore = process.cpuUsage();
const swept = await scheduler.sweep();
const sweepMs = performance.now() - sweepStart;
const sweepCpu = process.cpuUsage(cpuBefore);
const sweepCpuMs = (sweepCpu.user + sweepCpu.system) / 1000;
const ok = swept.filter((event) => event.result.ok).length;
const timedOut = swept.filter((event) => event.result.failure === 'timeout').length;
const other = swept.length - ok - timedOut;
log(
  `sweep: ${sweepMs.toFixed(0)} ms (${sweepCpuMs.toFixed(0)} ms CPU in the prober); ${ok} ok, ${timedOut} timed out, ${other} other`,
);
if (other > 0)
  log(
    `unexpected: ${swept.find((event) => !event.result.ok && event.result.failure !== 'timeout')?.result.detail}`,
  );

await scheduler.stop();
host.stdin.end();

const correct = ok === TARGETS - HUNG && timedOut === HUNG;
const rows = [
  {
    metric: `one full round, ${TARGETS} targets (${HUNG} hung), timeout 1 s`,
    value: Math.round(sweepMs),
    unit: 'ms',
    target: '≤ 2000 ms',
    ok: correct && sweepMs <= 2_000,
  },
  {
    metric: 'CPU used by the prober for that round',
    value: Math.round(sweepCpuMs),
    unit: 'ms',
    target: '—',
    ok: true,
  },
  {
    metric: 'first round (as agents are added)',
    value: Math.round(firstRoundMs),
    unit: 'ms',
    target: '≤ 2000 ms',
    ok: firstRoundMs <= 2_000,
  },
  {
    metric: 'live targets judged ok',
    value: ok,
    unit: 'targets',
    target: `= ${TARGETS - HUNG}`,
    ok: ok === TARGETS - HUNG,
  },
  {
    metric: 'hung targets judged timed out',
    value: timedOut,
    unit: 'targets',
    target: `= ${HUNG}`,
    ok: timedOut === HUNG,
  },
  {
    metric: 'machine load average (1 min, 2 cores shared) at the end',
    value: Math.round((loadavg()[0] ?? 0) * 10) / 10,
    unit: '',
    target: '—',
    ok: true,
  },
];
process.stdout.write(
  `BENCH_RESULT ${JSON.stringify({ title: `@pit/probes: HTTP probe round over ${TARGETS} loopback targets`, rows })}\n`,
);
