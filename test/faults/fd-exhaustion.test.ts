/**
 * The daemon out of file descriptors (its nofile limit lowered under it with prlimit, a real
 * EMFILE on every open): reading the cells root, the cells and the state files fails for a while.
 * Nobody is un-supervised ("no longer supervised" is never logged), no agent is restarted or
 * started a second time, and once descriptors are back supervision carries on: a killed agent is
 * revived once.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import {
  cellEvents,
  cleanup,
  delay,
  liveAgents,
  makeFleet,
  startDaemon,
  stopDaemon,
} from './harness.js';

afterEach(cleanup);

async function setNofile(pid: number, soft: number, hard: number): Promise<void> {
  const child = spawn('prlimit', [`--pid=${pid}`, `--nofile=${soft}:${hard}`], {
    stdio: 'inherit',
  });
  expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
}

describe('the daemon out of file descriptors', () => {
  it('keeps the last good view: nobody un-supervised, restarted or started twice, and revives once descriptors are back', async () => {
    const fleet = await makeFleet({
      agents: ['forge', 'anvil'],
      logLevel: 'info',
      extra: ['[policy.defaults]', 'backoff = { initial = "100ms", jitter = 0 }'].join('\n'),
    });
    const daemon = await startDaemon(fleet.configPath);
    const daemonPid = Number(/^READY \S+ (\d+)$/m.exec(daemon.output())![1]);
    await waitFor(
      async () =>
        (await cellEvents(fleet.cellDir)).filter((event) => event.event === 'agent_healthy')
          .length >= 2,
      30_000,
      'two agents healthy',
    );
    const before = await liveAgents(fleet.marker);
    const eventsBefore = (await cellEvents(fleet.cellDir)).length;
    const limits = await fs.readFile(`/proc/${daemonPid}/limits`, 'utf8');
    const hard = Number(/Max open files\s+\d+\s+(\d+)/.exec(limits)![1]);

    // No descriptor free: every open(), readdir() and accept() fails with EMFILE.
    await setNofile(daemonPid, 3, hard);
    try {
      await waitFor(
        () => /cannot read cells: their agents stay supervised/.test(daemon.output()),
        20_000,
        'a discovery pass that could not read the root',
      );
      // Several more passes (poll every 0.2 s) under EMFILE.
      const seen = (daemon.output().match(/cannot read cells/g) ?? []).length;
      await waitFor(
        () => (daemon.output().match(/cannot read cells/g) ?? []).length >= seen + 5,
        20_000,
        'five more passes',
      );
      await delay(500);
    } finally {
      await setNofile(daemonPid, hard, hard);
    }
    expect(daemon.output()).not.toContain('no longer supervised');
    expect(await liveAgents(fleet.marker)).toEqual(before);
    const during = (await cellEvents(fleet.cellDir)).slice(eventsBefore);
    expect(during.filter((event) => /agent_(dead|revived|started)/.test(event.event))).toEqual([]);

    // Descriptors back: a death is seen and revived once, as ever.
    const [pid] = before.get('forge')!;
    process.kill(pid!, 'SIGKILL');
    await waitFor(
      async () => {
        const live = (await liveAgents(fleet.marker)).get('forge') ?? [];
        return live.length === 1 && live[0] !== pid;
      },
      30_000,
      'forge revived',
    );
    await delay(1_000);
    expect((await liveAgents(fleet.marker)).get('forge')).toHaveLength(1);
    expect((await liveAgents(fleet.marker)).get('anvil')).toEqual(before.get('anvil'));
    expect(
      (await cellEvents(fleet.cellDir)).filter(
        (event) => event.agent === 'forge' && event.event === 'agent_revived',
      ),
    ).toHaveLength(1);
    expect(daemon.output()).not.toContain('no longer supervised');
    await stopDaemon(daemon);
  });
});
