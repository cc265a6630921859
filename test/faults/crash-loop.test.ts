/**
 * A crash-looping agent (exits 1 at once): restarts follow the exponential backoff, the restart
 * intensity escalates, the daemon then stops restarting it and stays idle, and the agent's log
 * grows by a bounded amount per restart.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import { cellEvents, cleanup, getStatus, makeFleet, startDaemon, stopDaemon } from './harness.js';

afterEach(cleanup);

const MAX_RESTARTS = 5;
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
    // Gaps between starts: the first restart is immediate, then about 200 ms, 400 ms, 800 ms, 1600 ms
    // (the daemon may count a delay from the previous start rather than the death: 20 % slack).
    const gaps = starts.slice(1).map((at, index) => at - starts[index]!);
    for (let index = 1; index < gaps.length; index++) {
      expect(gaps[index], `gap ${index} of ${JSON.stringify(gaps)}`).toBeGreaterThanOrEqual(
        200 * 2 ** (index - 1) * 0.8,
      );
      if (index >= 2)
        expect(gaps[index], `gap ${index} of ${JSON.stringify(gaps)}`).toBeGreaterThan(
          gaps[index - 1]!,
        );
    }
    expect(gaps.at(-1)!, `gaps ${JSON.stringify(gaps)}`).toBeGreaterThan(gaps[1]! * 3);
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
