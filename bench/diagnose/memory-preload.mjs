// A diagnostic preload (`node --import <this> …`): every 2 s, and at exit, appends one JSON line
// to $PIT_BENCH_MEMORY with the process's process.memoryUsage() and V8's heap spaces (used and
// committed, MB), so a benchmark can tell live objects from heap headroom and memory outside
// the heap. Nothing else changes. Used by bench/diagnose/daemon-heap.ts; never in a measured run.
import { appendFileSync } from 'node:fs';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

// PIT_BENCH_V8_FLAGS: V8 flags set at start-up (e.g. `--heap-growing-percent=20`), to try GC settings.
if (process.env.PIT_BENCH_V8_FLAGS) setFlagsFromString(process.env.PIT_BENCH_V8_FLAGS);

const file = process.env.PIT_BENCH_MEMORY;
if (file) {
  const mb = (bytes) => Math.round(bytes / 1e5) / 10;
  const sample = () => {
    const usage = process.memoryUsage();
    const spaces = Object.fromEntries(
      getHeapSpaceStatistics().map((space) => [
        space.space_name,
        { used: mb(space.space_used_size), committed: mb(space.physical_space_size) },
      ]),
    );
    const line = {
      at: Date.now(),
      ...Object.fromEntries(Object.entries(usage).map(([k, v]) => [k, mb(v)])),
      spaces,
    };
    appendFileSync(file, `${JSON.stringify(line)}\n`);
  };
  setInterval(sample, 2000).unref();
  process.on('exit', sample);
}

// PIT_BENCH_ALLOC_PROF=FILE: V8's sampling heap profiler, counting only objects that survived
// the young generation and were later collected (what grows the old space between full GCs),
// from PIT_BENCH_ALLOC_PROF_DELAY_MS (default 60 s) on; the profile (.heapprofile, readable in
// Chrome DevTools) is rewritten into FILE every 10 s.
const profileFile = process.env.PIT_BENCH_ALLOC_PROF;
if (profileFile) {
  const { Session } = await import('node:inspector');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  const delay = Number(process.env.PIT_BENCH_ALLOC_PROF_DELAY_MS ?? 60_000);
  setTimeout(() => {
    session.post('HeapProfiler.startSampling', {
      samplingInterval: 16_384,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: false,
    });
    setInterval(() => {
      session.post('HeapProfiler.getSamplingProfile', (error, result) => {
        if (!error) writeFileSync(profileFile, JSON.stringify(result.profile));
      });
    }, 10_000).unref();
  }, delay).unref();
}
