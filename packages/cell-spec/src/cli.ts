#!/usr/bin/env node
// pit-cell: validate a mission cell (or a cells root) against the contract, for harness authors in any language.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { discoverCells } from './discover.js';
import { PitError } from './errors.js';
import { readEvents } from './events.js';
import { readHeartbeat } from './heartbeat.js';
import { readManifest } from './manifest.js';
import { cellPaths } from './paths.js';
import { readCellState } from './state.js';

const USAGE = `Usage: pit-cell validate DIR       check one cell directory (manifest, events, heartbeats, state)
       pit-cell discover ROOT       list the cells under a root and every problem found

Exit codes: 0 valid, 1 problems found, 2 usage error.`;

async function validateCell(dir: string): Promise<string[]> {
  const problems: string[] = [];
  const paths = cellPaths(dir);
  try {
    const manifest = await readManifest(dir);
    for (const agent of manifest.agents) {
      try {
        await readHeartbeat(dir, agent.name);
      } catch (error) {
        if (!(PitError.is(error) && error.code === 'CELL_NOT_FOUND')) problems.push((error as Error).message);
      }
    }
  } catch (error) {
    problems.push((error as Error).message);
  }
  try {
    for await (const entry of readEvents(paths.events)) if (!entry.ok) problems.push(`${paths.events}:${entry.line}: ${entry.reason}`);
  } catch (error) {
    problems.push((error as Error).message);
  }
  await readCellState(dir).catch((error: Error) => problems.push(error.message));
  for (const sub of ['workspace', 'logs', 'checkpoints', 'bus']) {
    const stat = await fs.lstat(join(dir, sub)).catch(() => undefined);
    if (!stat?.isDirectory()) problems.push(`${join(dir, sub)}: expected a directory`);
  }
  return problems;
}

async function main(argv: string[]): Promise<number> {
  const [command, target] = argv;
  if (command === '--help' || command === '-h' || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (!target) {
    process.stderr.write(`pit-cell: ${command} needs a directory\n${USAGE}\n`);
    return 2;
  }
  if (command === 'validate') {
    const problems = await validateCell(target);
    for (const problem of problems) process.stdout.write(`${problem}\n`);
    process.stdout.write(problems.length ? `${target}: ${problems.length} problem(s)\n` : `${target}: valid\n`);
    return problems.length ? 1 : 0;
  }
  if (command === 'discover') {
    const found = await discoverCells(target);
    for (const cell of [...found.supervised, ...found.unsupervised]) process.stdout.write(`${cell.uuid}\t${cell.manifest.status}\t${cell.manifest.mission}\n`);
    for (const problem of found.problems) process.stdout.write(`problem\t${problem.path}\t${problem.reason}\n`);
    return found.problems.length ? 1 : 0;
  }
  process.stderr.write(`pit-cell: unknown command ${command}\n${USAGE}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 70;
  },
);
