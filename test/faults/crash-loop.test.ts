/**
 * A crash-looping agent (exits 1 at once): restarts follow the exponential backoff, the restart
 * intensity escalates, the daemon then stops restarting it and stays idle, and the agent's log
 * grows by a bounded amount per restart.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import { readAgentStates } from '@pit/daemon';
import { cellEvents, cleanup, getStatus, makeFleet, startDaemon, stopDaemon } from './harness.js';

afterEach(cleanup);

const MAX_RESTARTS = 5;
/** The daemon's records of the fleet's agents (its state directory beside the missions). */
const daemonState = (cellDir: string) =>
  readAgentStates(join(cellDir, '..', '..', 'state'), cellDir);
const LOG_BYTES_PER_RESTART = 4096;

const cpuTicks = async (pid: number) => {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime (clock ticks)
};

describe('a crash-looping agent', () => {
  it('is restarted with growing gaps, escalated at the restart intensity, then left alone; its log stays small', async () => {
    const fleet = await makeFleet({
      agents: ['steady', 'looper'],
      // Each run prints when it started (ms, its own clock reading): the gaps are measured
      // between real starts, not between event lines whose writing may lag under load.
      argv: {
        looper:
          '["/bin/sh", "-c", "echo \\"looper crashing (pid $$) at $(date +%s%3N)\\"; exit 1"]',
      },
      extra: [
        '[policy.defaults]',
        'max_revive_attempts = 100',
        `restart_intensity = { max_restarts = ${MAX_RESTARTS}, window = "10m" }`,
        'backoff = { initial = "200ms", factor = 2, cap = "5s", jitter = 0 }',
      ].join('\n'),
    });
    const daemon = await startDaemon(fleet.configPath);
    const looperEvents = async () =>
      (await cellEvents(fleet.cellDir)).filter((event) => event.agent === 'looper');
    const escalation = await waitFor(
      async () =>
        (await looperEvents()).find(
          (event) => event.event === 'decision' && event.action === 'escalate',
        ),
      60_000,
      'an escalate decision for looper',
    );
    expect(String(escalation.rule)).toBe('restart_intensity');
    const events = await looperEvents();
    const logPath = join(fleet.cellDir, 'logs', 'looper.log');
    const starts = await waitFor(
      async () => {
        const text = await fs.readFile(logPath, 'utf8');
        const found = [...text.matchAll(/looper crashing \(pid \d+\) at (\d+)/g)].map((m) =>
          Number(m[1]),
        );
        return found.length === MAX_RESTARTS + 1 ? found : undefined;
      },
      10_000,
      `${MAX_RESTARTS + 1} runs of looper in its log`,
    );
    const revivals = events
      .filter((event) => event.event === 'agent_revived')
      .map((event) => Date.parse(event.ts));
    expect(revivals).toHaveLength(MAX_RESTARTS);
    // The backoff, between the restarts as the daemon decided them (its record of each restart):
    // the first restart is immediate, then at least 200 ms, 400 ms, 800 ms, 1600 ms after the
    // previous one. (Between the runs' own start stamps the gaps also carry each spawn's latency,
    // which varies by 100 ms and more on a loaded machine.)
    const restarts = (await daemonState(fleet.cellDir)).agents.looper?.restarts.map(Date.parse);
    expect(restarts).toHaveLength(MAX_RESTARTS);
    const gaps = restarts!.slice(1).map((at, index) => at - restarts![index]!);
    gaps.forEach((gap, index) =>
      expect(gap, `gap ${index} of ${JSON.stringify(gaps)}`).toBeGreaterThanOrEqual(
        200 * 2 ** index,
      ),
    );
    // And each run started after the previous one (one process at a time).
    for (let index = 1; index < starts.length; index++)
      expect(starts[index]).toBeGreaterThan(starts[index - 1]!);
    // Escalated: no further start while we watch the daemon idle for a while (bounded by its own CPU use).
    const before = await cpuTicks(daemon.pid!);
    const startedAt = Date.now();
    await waitFor(
      async () => {
        const status = await getStatus(daemon.url);
        return (
          status.agents.find((agent) => agent.agent === 'steady')?.health === 'healthy' &&
          Date.now() - startedAt > 3000
        );
      },
      30_000,
      'three seconds of the daemon watching an escalated agent',
    );
    const elapsedTicks = ((Date.now() - startedAt) / 1000) * 100;
    const used = (await cpuTicks(daemon.pid!)) - before;
    expect(used / elapsedTicks, 'daemon CPU share while the looper is escalated').toBeLessThan(0.5);
    const after = await looperEvents();
    expect(after.filter((event) => event.event === 'agent_revived')).toHaveLength(MAX_RESTARTS);
    expect(
      (await getStatus(daemon.url)).agents.find((agent) => agent.agent === 'looper')?.health,
    ).toBe('dead');
    // Bounded log growth: the agent's log holds its output plus the daemon's per-start headers, nothing more.
    const log = await fs.stat(logPath);
    expect(log.size / (MAX_RESTARTS + 1)).toBeLessThan(LOG_BYTES_PER_RESTART);
    await stopDaemon(daemon);
  });
});
