/**
 * Hostile agent, issue #13 point 3 (forged adoption): a level-1 agent (at levels 2 and 3 the cell
 * is mounted read-only and the write fails with EROFS: sandbox.test.ts) writes its cell's
 * `.lazarus/state.json` (where older daemons kept their records) naming the pid and start time of
 * a process that is not it. The daemon keeps its records in its own state directory and adopts a
 * process only on proof (its environment carries this daemon's marks, the agent's identity and
 * the recorded start nonce, and its start time matches), so after a daemon restart, after the
 * daemon's own record is gone (as on an upgrade, when the cell's file is read as a hint) and after
 * `pit sweep --once`, the foreign process is neither adopted nor signalled, the real agent stays
 * supervised, and it runs once.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cellPaths } from '@pit/cell-spec';
import { agentStatePath, readProcessStat, sweepOnce } from '@pit/daemon';
import { reapLater, testAgentPath, waitFor } from '@pit/test-kit';
import {
  cleanup,
  getStatus,
  killDaemon,
  liveAgents,
  makeFleet,
  MARKER_FLAG,
  startDaemon,
  stopDaemon,
  TOKEN,
  type DaemonProcess,
  type Fleet,
} from './harness.js';

afterEach(cleanup);

/** The agent's script: forge the cell's state file once the test hands over the forgery, then run the test agent. */
const forger = (tag: string) =>
  [
    '( while [ ! -e forged.json ]; do sleep 0.05; done; mv forged.json ../.lazarus/state.json ) &',
    `exec "${process.execPath}" "${testAgentPath}" ${MARKER_FLAG} ${tag}`,
  ].join('\n');

/** The daemon reports `mole` healthy as `pid`, and its test agent runs once. */
async function supervisedOnce(daemon: DaemonProcess, fleet: Fleet, pid: number, what: string) {
  await waitFor(
    async () => {
      const mole = (await getStatus(daemon.url)).agents.find((agent) => agent.agent === 'mole');
      const live = (await liveAgents(fleet.marker)).get('mole') ?? [];
      if (live.length > 1) throw new Error(`${what}: mole runs twice: ${live.join(', ')}`);
      return mole?.health === 'healthy' && mole.pid === pid && live.length === 1 ? true : undefined;
    },
    30_000,
    what,
  );
}

describe('hostile agent: a forged state file', () => {
  it('naming a foreign process adopts nothing and signals nothing, across a daemon restart, an upgrade and pit sweep --once', async () => {
    const fleet = await makeFleet({
      agents: ['mole'],
      argvOf: (_name, tag) => JSON.stringify(['/bin/sh', '-c', forger(tag)]),
      agentExtra: { mole: 'isolation = 1' },
    });
    // The foreign process: anything on the host; it records any catchable signal it gets.
    const signals = join(fleet.base, 'foreign-signals');
    const foreign = spawn(
      '/bin/sh',
      ['-c', `trap 'echo $? >> "$0"' TERM INT HUP USR1 USR2; while :; do sleep 0.1; done`, signals],
      { detached: true, stdio: 'ignore' },
    );
    reapLater(foreign.pid);
    const foreignStat = await waitFor(() => readProcessStat(foreign.pid!), 10_000, 'foreign stat');

    let daemon = await startDaemon(fleet.configPath);
    const first = await waitFor(
      async () => {
        const mole = (await getStatus(daemon.url)).agents.find((agent) => agent.agent === 'mole');
        return mole?.health === 'healthy' ? mole.pid : undefined;
      },
      30_000,
      'mole healthy',
    );
    const forged = {
      version: 1,
      updated_at: new Date().toISOString(),
      agents: {
        mole: {
          health: 'healthy',
          revive_attempts: 0,
          restarts: [],
          pid: foreign.pid,
          pid_start_time: foreignStat.startTime,
        },
      },
    };
    await fs.writeFile(join(fleet.cellDir, 'workspace', 'forged.json'), JSON.stringify(forged));
    await waitFor(
      async () =>
        (await fs.readFile(cellPaths(fleet.cellDir).state, 'utf8').catch(() => '')).includes(
          `"pid":${foreign.pid}`,
        ) || undefined,
      10_000,
      'the agent forged its cell state file',
    );

    // 1. The daemon crashes and comes back: its own record is authority, the cell's file is not read.
    await killDaemon(daemon);
    daemon = await startDaemon(fleet.configPath);
    await supervisedOnce(daemon, fleet, first!, 'after a daemon restart');

    // 2. As on an upgrade: no record of the daemon's own, so the forged file is read as a hint; then pit sweep --once.
    await stopDaemon(daemon);
    await fs.rm(agentStatePath(fleet.stateDir, fleet.cellDir));
    const lines: string[] = [];
    const report = await sweepOnce({
      configPath: fleet.configPath,
      env: { ...process.env, PIT_FAULTS_TOKEN: TOKEN },
      log: {
        stream: {
          write: (line: string) => {
            lines.push(line);
            return true;
          },
        },
        format: 'json',
      },
    });
    expect(JSON.stringify(report)).not.toContain(`"pid":${foreign.pid}`);
    const refusal = lines.find((line) => line.includes('refused to adopt'));
    expect(refusal, lines.join('')).toBeDefined();
    expect(refusal).toContain(fleet.uuid);
    expect(refusal).toContain(`"pid":${foreign.pid}`);
    expect((await liveAgents(fleet.marker)).get('mole')).toHaveLength(1);

    // 3. The daemon again: the sweep's record (the real agent) is what it adopts.
    daemon = await startDaemon(fleet.configPath);
    await supervisedOnce(daemon, fleet, first!, 'after the sweep, in the daemon');
    await stopDaemon(daemon);

    // The foreign process was never touched: alive, the same process, no signal caught.
    expect((await readProcessStat(foreign.pid!))?.startTime).toBe(foreignStat.startTime);
    await expect(fs.readFile(signals, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    foreign.kill('SIGKILL');
  });
});
