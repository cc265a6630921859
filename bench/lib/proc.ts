/** Process bookkeeping for the root benchmarks: reaping process groups, CPU and memory from /proc. */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const groups = new Set<number>();

/** Registers a process group (its leader's pid) to SIGKILL in {@link reapAll}. */
export function reapLater(pid: number | undefined): void {
  if (pid !== undefined && pid > 1) groups.add(pid);
}

/** SIGKILLs every registered process group (never a pid ≤ 1). Safe to call twice. */
export function reapAll(): void {
  for (const pid of groups) killGroup(pid, 'SIGKILL');
  groups.clear();
}

/** Signals a process group; `false` when it is gone. */
export function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  if (pid <= 1) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `child` has exited (at once if it already has), or after `timeoutMs` with `false`. */
export function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** SIGTERM to the group of `child`, SIGKILL after `graceMs`; resolves once it exited. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.pid === undefined) return;
  killGroup(child.pid, 'SIGTERM');
  if (!(await exited(child, graceMs))) {
    killGroup(child.pid, 'SIGKILL');
    await exited(child, graceMs);
  }
}

// Reap on every way out, so a failed run leaves no process behind (PID 1 here reaps nothing).
process.once('exit', reapAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    reapAll();
    process.exit(130);
  });
}

let ticksPerSecond: number | undefined;
/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`, normally 100). */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond =
        Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** CPU time (user + system, ms) used so far by `pid`, from /proc/<pid>/stat; undefined when gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks();
  } catch {
    return undefined;
  }
}

/** Resident memory of `pid` now and at its peak (MB), from /proc/<pid>/status; undefined when gone. */
export function memoryMb(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) =>
      Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/**
 * Samples a process's CPU% (of one core) and RSS every `everyMs` until stopped.
 * @returns `stop()`, which gives the average CPU% over the whole window, the peak CPU% of any
 * sample interval, and the largest RSS seen (and the kernel's own peak, VmHWM).
 */
export function sampleProcess(
  pid: number,
  everyMs = 500,
): {
  stop(): {
    cpuPercent: number;
    peakCpuPercent: number;
    rssMb: number;
    hwmMb: number;
    samples: number;
  };
} {
  const startCpu = cpuMs(pid) ?? 0;
  const startAt = performance.now();
  let lastCpu = startCpu;
  let lastAt = startAt;
  let peakCpu = 0;
  let rss = 0;
  let hwm = 0;
  let samples = 0;
  const sample = () => {
    const cpu = cpuMs(pid);
    const memory = memoryMb(pid);
    const at = performance.now();
    if (cpu !== undefined && at > lastAt) {
      peakCpu = Math.max(peakCpu, ((cpu - lastCpu) / (at - lastAt)) * 100);
      lastCpu = cpu;
      lastAt = at;
    }
    if (memory) {
      rss = Math.max(rss, memory.rss);
      hwm = Math.max(hwm, memory.peak);
    }
    samples += 1;
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const elapsed = performance.now() - startAt;
      return {
        cpuPercent: elapsed > 0 ? (((cpuMs(pid) ?? lastCpu) - startCpu) / elapsed) * 100 : 0,
        peakCpuPercent: peakCpu,
        rssMb: rss,
        hwmMb: hwm,
        samples,
      };
    },
  };
}
