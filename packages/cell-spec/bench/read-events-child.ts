/**
 * Child of read-events.bench.ts: streams one events.jsonl with readEvents and prints one JSON
 * line {seconds, lines, ok, unknown, problems, floorRssBytes, peakRssBytes}, so that the peak
 * RSS measured is the reader's alone, not the generator's.
 * argv: <eventsPath>
 */
import { readEvents } from '@pit/cell-spec';

const [path] = process.argv.slice(2);
if (!path) throw new Error('usage: read-events-child <eventsPath>');
const floorRssBytes = process.memoryUsage.rss();
let lines = 0;
let ok = 0;
let unknown = 0;
let problems = 0;
let sampledPeak = floorRssBytes;
const started = process.hrtime.bigint();
for await (const entry of readEvents(path)) {
  lines += 1;
  if (entry.ok) {
    ok += 1;
    if (!entry.known) unknown += 1;
  } else problems += 1;
  if (lines % 50_000 === 0) sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss());
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
// maxRSS is the kernel's high-water mark for the whole process lifetime, in KiB.
const peakRssBytes = Math.max(sampledPeak, process.resourceUsage().maxRSS * 1024);
process.stdout.write(
  `${JSON.stringify({ seconds, lines, ok, unknown, problems, floorRssBytes, peakRssBytes })}\n`,
);
