/**
 * Disk full: the cells root and the state dir live on a small tmpfs (needs root to mount). The
 * disk is filled while an agent dies and is revived (state writes, event appends, snapshots and
 * rollbacks all hit ENOSPC): the daemon keeps running and says so, and when space returns it
 * recovers; nothing already stored is lost.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, testAgentPath, waitFor } from '@pit/test-kit';
import { provisionCell } from '@pit/cell-spec';
import {
  cellEvents,
  cleanup,
  eventEntries,
  killAll,
  killDaemon,
  trackMarker,
  getStatus,
  healthyOnce,
  liveAgents,
  MARKER_FLAG,
  startDaemon,
  stopDaemon,
} from './harness.js';
import { checkpointStore, readAgentStates } from '@pit/daemon';

/** The daemon's records of a cell's agents (its state directory is `state/` beside `missions/`). */
const daemonState = (cellDir: string) =>
  readAgentStates(join(cellDir, '..', '..', 'state'), cellDir);

const mounts: string[] = [];
afterAll(async () => {
  for (const dir of mounts.splice(0)) {
    try {
      execFileSync('umount', ['-l', dir]);
    } catch {
      // not mounted
    }
  }
  await cleanup();
});

const isRoot = process.getuid?.() === 0;
const GOOD = '{"model":"good"}\n';

/** Fills the file system holding `dir` with `filler` until ENOSPC. */
async function fill(filler: string) {
  const handle = await fs.open(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) await handle.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await handle.close().catch(() => undefined);
  }
  // Squeeze the last bytes too (a chunk may not fit where a byte still does).
  const tail = await fs.open(filler, 'a');
  try {
    for (;;) await tail.write(Buffer.alloc(512, 1));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await tail.close().catch(() => undefined);
  }
}

/**
 * Fills the file system as {@link fill} does, then keeps it full until `stop()`: space the daemon
 * frees meanwhile (an atomic replace of a file by a smaller one frees the old file's pages, such as
 * a history.json written just before the fill) is taken again within a few milliseconds, so that a
 * write the test expects to fail cannot land in it.
 */
async function keepFull(filler: string): Promise<{ stop: () => Promise<void> }> {
  await fill(filler);
  let running = true;
  const loop = (async () => {
    const handle = await fs.open(filler, 'a');
    const bytes = Buffer.alloc(512, 1);
    try {
      while (running) {
        try {
          for (;;) await handle.write(bytes);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    } finally {
      await handle.close();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

describe('disk full under the cells root and state dir (tmpfs; needs root)', () => {
  it.skipIf(!isRoot)(
    'keeps running and reporting while the disk is full, and recovers when space returns; nothing stored is lost',
    async () => {
      const base = await tempDir();
      const disk = join(base, 'disk');
      await fs.mkdir(disk);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m,mode=0700', 'tmpfs', disk]);
      mounts.push(disk);
      try {
        const root = join(disk, 'missions');
        const { dir: cellDir } = await provisionCell(root, {
          mission: 'disk full',
          created_by: 'faults',
          agents: [{ name: 'keeper', role: 'write' }],
        });
        await fs.writeFile(join(cellDir, 'workspace', 'keeper.json'), GOOD);
        const marker = `faults-disk-${process.pid}-${Date.now().toString(36)}`;
        trackMarker(marker);
        const configPath = join(base, 'pit.toml');
        await fs.writeFile(
          configPath,
          [
            '[daemon]',
            'state_dir = "disk/state"',
            'log_level = "debug"',
            '[daemon.http]',
            'listen = "127.0.0.1:0"',
            '[cells]',
            'root = "disk/missions"',
            'heartbeat_stale_s = 15',
            'poll_interval_s = 0.2',
            'resurrect_after_s = 0',
            '[checkpoints]',
            'interval_s = 1',
            'retention = 2',
            '[bus]',
            'enabled = false',
            '[policy.defaults]',
            'backoff = { initial = "100ms", cap = "1s", jitter = 0 }',
            'max_revive_attempts = 1000',
            'restart_intensity = { max_restarts = 1000, window = "1h" }',
            '[policy.fleet_brake]',
            'enabled = false',
            '[agents.keeper]',
            `argv = ["${process.execPath}", "${testAgentPath}", "${MARKER_FLAG}", "${marker}:keeper", "--config", "keeper.json"]`,
            'config_files = [{ path = "workspace/keeper.json" }]',
            'startup_grace_s = 10',
            'stop_grace_s = 2',
            '[agents.keeper.probes]',
            'failure_threshold = 1',
          ].join('\n'),
          { mode: 0o600 },
        );
        const daemon = await startDaemon(configPath);
        const healthy = (not?: number) =>
          waitFor(
            async () => {
              const agent = (await getStatus(daemon.url)).agents.find(
                (item) => item.agent === 'keeper',
              );
              return agent?.health === 'healthy' && agent.pid && agent.pid !== not
                ? agent.pid
                : undefined;
            },
            30_000,
            'keeper healthy',
          );
        const first = await healthy();
        // Something stored before the disk fills: a snapshot of the config, a checkpoint, events, the state.
        await waitFor(
          async () =>
            (await fs.readdir(join(disk, 'state', 'snapshots', 'keeper')).catch(() => [])).length >
            0,
          20_000,
          'a config snapshot',
        );
        await waitFor(
          async () =>
            (
              await fs
                .readdir(checkpointStore(join(disk, 'state'), basename(cellDir)))
                .catch(() => [])
            ).some((name) => name.endsWith('.tar.gz')),
          20_000,
          'a checkpoint',
        );
        const storedEvents = (await cellEvents(cellDir)).length;
        const snapshotsBefore = (
          await fs.readdir(join(disk, 'state', 'snapshots', 'keeper'), { recursive: true })
        ).sort();

        const filler = join(disk, 'filler');
        await fill(filler);
        const logMark = daemon.output().length;
        // A death while the disk is full: state, events, rollback, agent log all hit ENOSPC.
        process.kill(first, 'SIGKILL');
        await waitFor(
          () => /ENOSPC|no space left/i.test(daemon.output().slice(logMark)),
          30_000,
          'the daemon to report ENOSPC',
        );
        // It keeps running and serving.
        expect(daemon.exitCode).toBeNull();
        expect((await fetch(`${daemon.url}/api/status`)).status).toBe(200);

        // Space returns: the agent is healthy again, the stored things are intact.
        await fs.rm(filler);
        await healthyOnce(
          daemon.url,
          marker,
          'keeper',
          30_000,
          'keeper revived and healthy (one process)',
          first,
        ).catch(async (error: unknown) => {
          throw new Error(
            `${String(error)}\nstatus: ${JSON.stringify((await getStatus(daemon.url)).agents)}\nlive: ${JSON.stringify([...(await liveAgents(marker))])}\n${daemon.output().slice(logMark).slice(-6000)}`,
          );
        });
        // The state file is valid (whether it names the new pid is the second test's subject).
        await expect(daemonState(cellDir)).resolves.toBeDefined();
        const entries = await eventEntries(cellDir);
        const malformed = entries.filter((entry) => !entry.ok);
        expect(malformed, JSON.stringify(malformed)).toEqual([]);
        expect(entries.length).toBeGreaterThanOrEqual(storedEvents);
        expect(await fs.readFile(join(cellDir, 'workspace', 'keeper.json'), 'utf8')).toBe(GOOD);
        const snapshotsAfter = (
          await fs.readdir(join(disk, 'state', 'snapshots', 'keeper'), { recursive: true })
        ).sort();
        for (const name of snapshotsBefore) expect(snapshotsAfter).toContain(name);
        expect(
          (await fs.readdir(checkpointStore(join(disk, 'state'), basename(cellDir)))).some((name) =>
            name.endsWith('.tar.gz'),
          ),
        ).toBe(true);
        await stopDaemon(daemon);
      } finally {
        // Processes first (they hold files on the tmpfs), then the mount; afterAll removes the temp dirs.
        await killAll();
        execFileSync('umount', ['-l', disk]);
        mounts.splice(mounts.indexOf(disk), 1);
      }
    },
  );

  // Regression for a daemon bug: a state write that failed with ENOSPC was never retried once
  // space returned while the agent stayed healthy (`persistedAt` was set before the write), so
  // state.json kept naming the dead pid; a daemon restarted after that took the recorded pid as a
  // death nobody watched and started the agent a second time beside the one still running.
  it.skipIf(!isRoot)(
    'a state write lost to ENOSPC is retried once space returns, and the next daemon adopts the agent once',
    async () => {
      const base = await tempDir();
      const disk = join(base, 'disk');
      await fs.mkdir(disk);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m,mode=0700', 'tmpfs', disk]);
      mounts.push(disk);
      try {
        const { dir: cellDir } = await provisionCell(join(disk, 'missions'), {
          mission: 'disk full',
          created_by: 'faults',
          agents: [{ name: 'keeper', role: 'write' }],
        });
        await fs.writeFile(join(cellDir, 'workspace', 'keeper.json'), GOOD);
        const marker = `faults-disk-${process.pid}-${Date.now().toString(36)}-b`;
        trackMarker(marker);
        const configPath = join(base, 'pit.toml');
        // An idle agent watched by its process only: it writes nothing, so it lives through the full disk.
        await fs.writeFile(
          configPath,
          [
            '[daemon]',
            'state_dir = "disk/state"',
            '[daemon.http]',
            'listen = "127.0.0.1:0"',
            '[cells]',
            'root = "disk/missions"',
            'poll_interval_s = 0.2',
            'resurrect_after_s = 0',
            '[checkpoints]',
            'interval_s = 0',
            '[bus]',
            'enabled = false',
            '[policy.defaults]',
            'backoff = { initial = "100ms", cap = "1s", jitter = 0 }',
            '[agents.keeper]',
            `argv = ["${process.execPath}", "-e", "setInterval(() => {}, 1000)", "--", "${MARKER_FLAG}", "${marker}:keeper"]`,
            'config_files = [{ path = "workspace/keeper.json" }]',
            'startup_grace_s = 10',
            'stop_grace_s = 2',
            '[agents.keeper.probes]',
            'heartbeat = false',
            'failure_threshold = 1',
          ].join('\n'),
          { mode: 0o600 },
        );
        let daemon = await startDaemon(configPath);
        const single = (not?: number) =>
          healthyOnce(daemon.url, marker, 'keeper', 20_000, 'keeper healthy, one process', not);
        const first = await single();
        await waitFor(
          async () => (await daemonState(cellDir)).agents.keeper?.pid === first,
          20_000,
          'the first pid persisted',
        );
        await waitFor(
          async () =>
            (await fs.readdir(join(disk, 'state', 'snapshots', 'keeper')).catch(() => [])).length >
            0,
          20_000,
          'a config snapshot',
        );
        const filler = join(disk, 'filler');
        const full = await keepFull(filler);
        const mark = daemon.output().length;
        process.kill(first, 'SIGKILL');
        const second = await single(first);
        // Both writes of the new pid (at the revive and at its healthy verdict) fail while the disk is full.
        await waitFor(
          () => {
            const lines = daemon.output().slice(mark).split('\n');
            const healthy = lines.findIndex(
              (line) => line.includes('"agent health changed"') && line.includes('"to":"healthy"'),
            );
            return (
              healthy !== -1 &&
              lines.slice(healthy + 1).some((line) => line.includes('cannot persist state'))
            );
          },
          20_000,
          'the state write after the healthy verdict failed',
        ).catch((error: unknown) => {
          throw new Error(
            `${String(error)}\n--- daemon output since the kill ---\n${daemon.output().slice(mark).slice(-8000)}`,
          );
        });
        await full.stop();
        await fs.rm(filler);
        // The failed write is retried (backoff capped at 8 s): the new pid lands once space is back.
        await waitFor(
          async () => (await daemonState(cellDir)).agents.keeper?.pid === second,
          15_000,
          'the new pid persisted',
        );
        await killDaemon(daemon);
        daemon = await startDaemon(configPath);
        // Invariant: the agent still runs once, as the same process.
        const outcome = await waitFor(
          async () => {
            const live = (await liveAgents(marker)).get('keeper') ?? [];
            if (live.length > 1)
              return `keeper runs twice: ${live.join(', ')} (state.json names pid ${(await daemonState(cellDir)).agents.keeper?.pid}, the live one was ${second})`;
            const agent = (await getStatus(daemon.url)).agents.find(
              (item) => item.agent === 'keeper',
            );
            return agent?.health === 'healthy' && live[0] === second && agent.pid === second
              ? 'once'
              : undefined;
          },
          20_000,
          'keeper re-adopted, running once',
        );
        expect(outcome).toBe('once');
        await stopDaemon(daemon);
      } finally {
        await killAll();
        execFileSync('umount', ['-l', disk]);
        mounts.splice(mounts.indexOf(disk), 1);
      }
    },
  );
});
