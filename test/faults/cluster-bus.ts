/**
 * The bus side of the cluster fault tests (cluster-bus-storm, cluster-cell-bus): a publishing
 * agent that resumes from the last number the bus acknowledged, and readers of a cell's copy of
 * its mission's log.
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { expect } from 'vitest';
import { testAgentPath } from '@pit/test-kit';

/** The built @pit/mission-bus (`pnpm build`): the agents, plain Node, import it by path. */
export const MISSION_BUS = fileURLToPath(
  new URL('../../packages/mission-bus/dist/index.js', import.meta.url),
);

export interface BusEventView {
  seq: number;
  id: string;
  event: string;
  sender: string;
  topic?: string;
  epoch?: number;
  payload?: { n?: number };
}
type BusLogEntry =
  | { ok: true; event: BusEventView }
  | { ok: false; torn: boolean; reason: string; segment: string; line: number };

/** host-a's copy of the mission's stream (the cell's `bus/` segments), a torn last line left out. */
export async function busLog(cellDir: string): Promise<BusEventView[]> {
  const { readBusLog } = (await import(pathToFileURL(MISSION_BUS).href)) as {
    readBusLog(dir: string): AsyncIterable<BusLogEntry>;
  };
  const events: BusEventView[] = [];
  const problems: string[] = [];
  for await (const entry of readBusLog(cellDir))
    if (entry.ok) events.push(entry.event);
    else if (!entry.torn) problems.push(`${entry.segment}:${entry.line}: ${entry.reason}`);
  expect(problems).toEqual([]);
  return events;
}

/** How far each agent got: the largest number it published. */
export async function reached(cellDir: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const event of await busLog(cellDir))
    if (event.topic === 'count')
      counts.set(event.sender, Math.max(counts.get(event.sender) ?? 0, event.payload?.n ?? 0));
  return counts;
}

/** The publisher: numbers from where the bus last acknowledged, then the shared test agent. */
export function publisherScript(): string {
  return `
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
const { connectBus } = await import(${JSON.stringify(pathToFileURL(MISSION_BUS).href)});
const name = process.env.LAZARUS_AGENT;
const file = name + '.acked';
let acked = 0;
try { acked = Number(readFileSync(file, 'utf8')) || 0; } catch {}
void (async () => {
  const client = await connectBus({
    url: process.env.LAZARUS_BUS_URL,
    mission: process.env.LAZARUS_BUS_MISSION,
    participant: name,
    token: process.env.LAZARUS_BUS_TOKEN,
    epoch: Number(process.env.PIT_EPOCH),
  });
  for (;;) {
    const n = acked + 1;
    try {
      // The same id for the same number: a publish repeated after a doubt is stored once.
      await client.publish({ id: name + '-' + n, topic: 'count', payload: { n } });
      acked = n;
      writeFileSync(file + '.tmp', String(acked));
      renameSync(file + '.tmp', file);
    } catch (error) {
      process.stderr.write('publish ' + n + ': ' + error.message + '\\n');
      await sleep(100);
    }
    await sleep(20);
  }
})().catch((error) => {
  process.stderr.write(String(error && error.stack) + '\\n');
  process.exit(1);
});
await import(${JSON.stringify(pathToFileURL(testAgentPath).href)});
`;
}
