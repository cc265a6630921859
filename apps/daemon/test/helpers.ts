/**
 * The daemon's own test helpers: real cells, shell-script agents, the agents' environment.
 * What other suites share too (waits, temp dirs, process groups, the test agent, the service
 * stand-ins) lives in @pit/test-kit.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { provisionCell, type Logger } from '@pit/cell-spec';
import { tempDir } from '@pit/test-kit';
import { readProcessStat } from '../src/proc.js';

/** A real cell with the given agents under a temp cells root (removed by test-kit's `cleanup`). */
export async function makeCell(
  agents: Array<{ name: string; role?: string; home?: string }>,
  root?: string,
) {
  const cellsRoot = root ?? join(await tempDir('pit-cells-'), 'missions');
  const { dir, manifest } = await provisionCell(cellsRoot, {
    mission: 'test mission',
    created_by: 'test',
    agents: agents.map((agent) => ({ role: 'write', ...agent })),
  });
  return { root: cellsRoot, dir, uuid: manifest.uuid, manifest };
}

/** Writes an executable shell script and returns its path. */
export async function script(path: string, body: string): Promise<string> {
  await fs.writeFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

/** The environment given to test agents. */
export const agentEnv = (): Record<string, string> => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: '/nonexistent',
});

/** Whether `pid` is gone, or a zombie nobody reaped (nothing runs any more). */
export const isGoneOrZombie = async (pid: number): Promise<boolean> => {
  const state = (await readProcessStat(pid))?.state;
  return state === undefined || state === 'Z';
};

/** A logger that keeps its lines (`level message {fields}`), for tests that assert what was logged. */
export function recordingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const keep =
    (level: string) =>
    (message: string, fields?: Record<string, unknown>): void => {
      lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
    };
  const logger: Logger = {
    debug: keep('debug'),
    info: keep('info'),
    warn: keep('warn'),
    error: keep('error'),
  };
  return { logger, lines };
}
