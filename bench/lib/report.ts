/** The BENCH_RESULT protocol of CONTRIBUTING.md: progress on stderr, one result line on stdout. */
import { cpus, loadavg, totalmem } from 'node:os';

/** One row of a result table. `ok` is omitted for rows without a target. */
export interface BenchRow {
  metric: string;
  value: number | string;
  unit: string;
  target?: string;
  ok?: boolean;
}

/** A progress logger that prefixes every line with the benchmark's name (stderr only). */
export function progress(name: string): (message: string) => void {
  return (message) => void process.stderr.write(`[${name}] ${message}\n`);
}

/** Whether BENCH_SMOKE=1 asks for small sizes. */
export const smoke = process.env.BENCH_SMOKE === '1';

/** The machine and its load right now, for the notes (the machine is shared: numbers are noisy). */
export function machineNote(): string {
  const cpu = cpus();
  const [one, five] = loadavg();
  return `${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; load average ${one?.toFixed(1)} (1 min) / ${five?.toFixed(1)} (5 min) when the run ended`;
}

/** Prints the one BENCH_RESULT line. */
export function emitResult(result: { title: string; rows: BenchRow[]; notes?: string }): void {
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
}
