#!/usr/bin/env node
// pit-cell: validate a mission cell (or a cells root) against the contract, for harness authors in any language.
import { promises as fs } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { assertCellDir } from './cell-dir.js';
import { discoverCells } from './discover.js';
import { PitError } from './errors.js';
import { readEvents } from './events.js';
import { readHeartbeat } from './heartbeat.js';
import { readManifest, type CellManifest } from './manifest.js';
import { cellPaths } from './paths.js';
import { readCellState } from './state.js';

const USAGE = `Usage: pit-cell validate DIR       check one cell directory (manifest, layout, events, heartbeats, state)
       pit-cell discover ROOT       list the cells under a root and every problem found

Exit codes: 0 valid, 1 problems found, 2 usage error, 70 internal error.`;

const messageOf = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);

interface Report {
  problems: string[];
  notes: string[];
}

async function validateCell(dir: string): Promise<Report> {
  const report: Report = { problems: [], notes: [] };
  try {
    await assertCellDir(dir);
  } catch (error) {
    report.problems.push(messageOf(error));
    return report;
  }
  const paths = cellPaths(dir);
  let manifest: CellManifest | undefined;
  try {
    manifest = await readManifest(dir);
    const dirName = basename(resolve(dir));
    if (manifest.uuid !== dirName)
      report.problems.push(
        `${paths.manifest}: uuid: ${manifest.uuid} does not match the directory name ${dirName}`,
      );
  } catch (error) {
    report.problems.push(messageOf(error));
  }
  for (const sub of [
    paths.workspace,
    paths.logs,
    paths.checkpoints,
    paths.bus,
    paths.lazarus,
    paths.heartbeats,
  ]) {
    const stat = await fs.lstat(sub).catch(() => undefined);
    if (!stat) report.problems.push(`${sub}: missing; expected a directory`);
    else if (!stat.isDirectory())
      report.problems.push(
        `${sub}: expected a directory, found ${stat.isSymbolicLink() ? 'a symbolic link' : 'a file'}`,
      );
  }
  try {
    const unknown = new Map<string, number>();
    for await (const entry of readEvents(paths.events)) {
      if (!entry.ok) report.problems.push(`${paths.events}:${entry.line}: ${entry.reason}`);
      else if (!entry.known)
        unknown.set(entry.event.event, (unknown.get(entry.event.event) ?? 0) + 1);
    }
    for (const [kind, count] of unknown)
      report.notes.push(
        `${paths.events}: ${count} event(s) of kind ${kind} unknown to this version (kept)`,
      );
  } catch (error) {
    report.problems.push(messageOf(error));
  }
  // List heartbeats only in a real directory of the cell (the layout check reports anything else).
  const heartbeatsStat = await fs.lstat(paths.heartbeats).catch(() => undefined);
  const lazarusStat = await fs.lstat(paths.lazarus).catch(() => undefined);
  const beats =
    heartbeatsStat?.isDirectory() && lazarusStat?.isDirectory()
      ? await fs.readdir(paths.heartbeats).catch(() => [] as string[])
      : [];
  for (const file of beats.sort()) {
    if (file.startsWith('.')) continue; // temporary files of writers
    const path = join(paths.heartbeats, file);
    if (!file.endsWith('.json')) {
      report.problems.push(`${path}: unexpected file; expected <agent>.json`);
      continue;
    }
    const agent = file.slice(0, -'.json'.length);
    try {
      const beat = await readHeartbeat(dir, agent);
      if (beat.agent !== agent)
        report.problems.push(`${path}: agent: ${beat.agent} does not match the file name ${agent}`);
      if (manifest && beat.cell_uuid !== manifest.uuid)
        report.problems.push(
          `${path}: cell_uuid: ${beat.cell_uuid} is not this cell (${manifest.uuid})`,
        );
      if (manifest && !manifest.agents.some((listed) => listed.name === agent))
        report.notes.push(`${path}: agent ${agent} is not listed in cell.json`);
    } catch (error) {
      report.problems.push(messageOf(error));
    }
  }
  try {
    await readCellState(dir);
  } catch (error) {
    report.problems.push(messageOf(error));
  }
  return report;
}

async function main(argv: string[]): Promise<number> {
  const [command, target, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === undefined) {
    (command === undefined ? process.stderr : process.stdout).write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (!target || rest.length > 0) {
    process.stderr.write(`pit-cell: ${command} takes exactly one directory\n${USAGE}\n`);
    return 2;
  }
  if (command === 'validate') {
    const { problems, notes } = await validateCell(target);
    for (const problem of problems) process.stdout.write(`problem\t${problem}\n`);
    for (const note of notes) process.stdout.write(`note\t${note}\n`);
    process.stdout.write(
      problems.length ? `${target}: ${problems.length} problem(s)\n` : `${target}: valid\n`,
    );
    return problems.length ? 1 : 0;
  }
  if (command === 'discover') {
    const found = await discoverCells(target);
    for (const cell of [...found.supervised, ...found.unsupervised])
      process.stdout.write(
        `cell\t${cell.uuid}\t${cell.manifest.status}\t${cell.manifest.mission}\n`,
      );
    for (const problem of found.problems)
      process.stdout.write(`problem\t${problem.kind}\t${problem.path}\t${problem.reason}\n`);
    for (const ignored of found.ignored)
      process.stdout.write(`ignored\t${ignored.path}\t${ignored.reason}\n`);
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
    const known = PitError.is(error);
    process.stderr.write(
      `pit-cell: ${known ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = known ? 1 : 70;
  },
);
