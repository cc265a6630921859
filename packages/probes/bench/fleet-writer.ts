/**
 * Writes heartbeats on behalf of a benchmark fleet, in its own process (as agents do).
 * Reads one JSON array per stdin line: `[{ cellDir, agent, cell_uuid, timestamp }]` (timestamp
 * in ms since the epoch), writes every heartbeat with @pit/cell-spec, and answers each line
 * with `done <ms>` on stdout.
 */
import { createInterface } from 'node:readline';
import { writeHeartbeat } from '@pit/cell-spec';

interface Beat {
  cellDir: string;
  agent: string;
  cell_uuid: string;
  timestamp: number;
}

for await (const line of createInterface({ input: process.stdin })) {
  const beats = JSON.parse(line) as Beat[];
  const started = performance.now();
  for (let index = 0; index < beats.length; index += 200) {
    await Promise.all(
      beats.slice(index, index + 200).map((beat) =>
        writeHeartbeat(beat.cellDir, {
          agent: beat.agent,
          cell_uuid: beat.cell_uuid,
          cycle: 1,
          status: 'working',
          timestamp: beat.timestamp / 1000,
          pid: 4242,
        }),
      ),
    );
  }
  process.stdout.write(`done ${Math.round(performance.now() - started)}\n`);
}
