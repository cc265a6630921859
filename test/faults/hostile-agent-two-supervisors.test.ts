/**
 * Two supervisors on one fleet (#13 point 9): a second daemon with its own state directory over
 * the same cells root, and `pit sweep --once` on that root, both refuse naming the running
 * daemon's pid (the cells root's lock); one SIGKILL of the agent then gives one `agent_revived`
 * and one live process.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import { sweepOnce } from '@pit/daemon';
import { cellEvents, cleanup, liveAgents, makeFleet, startDaemon, stopDaemon } from './harness.js';

afterEach(cleanup);

describe('a second supervisor over the same cells root', () => {
  it('is refused naming the holder’s pid, and one kill gives one revive and one process', async () => {
    const fleet = await makeFleet({ agents: ['forge'] });
    const daemon = await startDaemon(fleet.configPath);
    try {
      const first = await waitFor(
        async () => (await liveAgents(fleet.marker)).get('forge')?.[0],
        30_000,
        'forge to start',
      );
      // Another state directory, the same cells root.
      const other = join(fleet.base, 'other.toml');
      await fs.writeFile(
        other,
        (await fs.readFile(fleet.configPath, 'utf8')).replace(
          'state_dir = "state"',
          'state_dir = "state-2"',
        ),
        { mode: 0o600 },
      );
      await expect(startDaemon(other)).rejects.toThrow(
        new RegExp(`DAEMON_LOCKED another pit daemon \\(pid ${daemon.pid}.*cells root`),
      );
      await expect(sweepOnce({ configPath: other })).rejects.toMatchObject({
        code: 'DAEMON_LOCKED',
        message: expect.stringContaining(`pid ${daemon.pid}`) as unknown as string,
      });

      process.kill(first, 'SIGKILL');
      const revived = await waitFor(
        async () =>
          (await cellEvents(fleet.cellDir)).find(
            (event) => event.event === 'agent_revived' && event.agent === 'forge',
          ),
        30_000,
        'forge to be revived',
      );
      const second = await waitFor(
        async () => (await liveAgents(fleet.marker)).get('forge')?.find((pid) => pid !== first),
        30_000,
        'the revived forge',
      );
      expect((revived as unknown as { pid: number }).pid).toBe(second);
      // Give a second supervisor (were there one) every chance: two more sweeps' worth of time.
      await waitFor(
        async () =>
          (await cellEvents(fleet.cellDir)).filter((event) => event.event === 'agent_healthy')
            .length >= 1,
        30_000,
        'forge healthy again',
      );
      const revives = (await cellEvents(fleet.cellDir)).filter(
        (event) => event.event === 'agent_revived',
      );
      expect(revives).toHaveLength(1);
      expect((await liveAgents(fleet.marker)).get('forge')).toEqual([second]);
    } finally {
      await stopDaemon(daemon);
    }
  });
});
