import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { readEvents, type AnyCellEvent } from '@pit/cell-spec';
import { parseConfig } from '../src/config.js';
import { resolveConfigPaths } from '../src/config.js';
import type { PitConfig } from '../src/config-schema.js';

/** Parses a TOML config for tests (paths resolved against `baseDir`), failing loudly on problems. */
export function testConfig(
  toml: string,
  baseDir: string,
): { config: PitConfig; policyInput: unknown } {
  const parsed = parseConfig(toml, 'toml');
  if (!parsed.ok)
    throw new Error(
      parsed.problems.map((problem) => `${problem.path}: ${problem.message}`).join('\n'),
    );
  return { config: resolveConfigPaths(parsed.config, baseDir), policyInput: parsed.policyInput };
}

/** Every event of a cell so far. */
export async function cellEvents(cellDir: string): Promise<AnyCellEvent[]> {
  const events: AnyCellEvent[] = [];
  try {
    for await (const entry of readEvents(join(cellDir, 'logs', 'events.jsonl')))
      if (entry.ok) events.push(entry.event);
  } catch {
    return events;
  }
  return events;
}

/** The kinds of events about `agent`, in order. */
export async function storyOf(cellDir: string, agent: string): Promise<string[]> {
  return (await cellEvents(cellDir))
    .filter((event) => event.agent === agent)
    .map((event) =>
      event.event === 'decision' ? `decision:${String(event.action)}` : event.event,
    );
}

/** Reads a file, or '' when absent. */
export const readOr = (path: string) => fs.readFile(path, 'utf8').catch(() => '');
