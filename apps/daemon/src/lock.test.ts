import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanup, spawnTsx, tempDir, waitFor, within } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { PitError } from '@pit/cell-spec';
import { acquireDaemonLock, lockPath, readDaemonLock, rootLockPath } from './lock.js';

afterEach(cleanup);

const holderScript = fileURLToPath(new URL('../test/fixtures/lock-holder.ts', import.meta.url));

describe('acquireDaemonLock', () => {
  it('holds the state directory: a second daemon is refused with a message naming the holder’s pid', async () => {
    const stateDir = await tempDir();
    const lock = await acquireDaemonLock(stateDir, { pidFile: join(stateDir, 'pit.pid') });
    expect(await fs.readFile(join(stateDir, 'pit.pid'), 'utf8')).toBe(`${process.pid}\n`);
    expect((await readDaemonLock(stateDir))?.pid).toBe(process.pid);
    const second = spawnTsx(holderScript, [stateDir]);
    const code = await within(
      new Promise((resolve) => second.once('exit', resolve)),
      20_000,
      'second daemon',
    );
    expect(code).toBe(1);
    expect(second.output()).toContain(`DAEMON_LOCKED another pit daemon (pid ${process.pid}`);
    await lock.release();
    await expect(fs.access(lockPath(stateDir))).rejects.toThrow();
    await expect(fs.access(join(stateDir, 'pit.pid'))).rejects.toThrow();
    expect(await readDaemonLock(stateDir)).toBeUndefined();
  });

  it('holds the cells root too: a supervisor with another state directory over the same cells is refused, naming the pid', async () => {
    const cellsRoot = await tempDir();
    const [stateA, stateB] = [await tempDir(), await tempDir()];
    const lock = await acquireDaemonLock(stateA, { cellsRoot });
    expect(lock.rootPath).toBe(rootLockPath(cellsRoot));
    const error = await acquireDaemonLock(stateB, { cellsRoot }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({
      code: 'DAEMON_LOCKED',
      message: expect.stringContaining(
        `another pit daemon (pid ${process.pid}`,
      ) as unknown as string,
    });
    expect((error as Error).message).toContain(`cells root ${cellsRoot}`);
    // The refused supervisor left no lock of its own behind.
    expect(await readDaemonLock(stateB)).toBeUndefined();
    await lock.release();
    await expect(fs.access(rootLockPath(cellsRoot))).rejects.toThrow();
    await (await acquireDaemonLock(stateB, { cellsRoot })).release();
  });

  it('refuses a second acquisition in the same process too', async () => {
    const stateDir = await tempDir();
    const lock = await acquireDaemonLock(stateDir);
    const error = await acquireDaemonLock(stateDir).catch((caught: unknown) => caught);
    expect(PitError.is(error) && error.code).toBe('DAEMON_LOCKED');
    await lock.release();
    await (await acquireDaemonLock(stateDir)).release();
  });

  it('takes over the lock of a daemon that was SIGKILLed', async () => {
    const stateDir = await tempDir();
    const first = spawnTsx(holderScript, [stateDir]);
    await waitFor(() => first.output().includes('locked'), 20_000, 'first daemon to lock');
    expect((await readDaemonLock(stateDir))?.pid).toBe(first.pid);
    process.kill(-first.pid!, 'SIGKILL');
    await within(
      new Promise((resolve) => first.once('exit', resolve)),
      10_000,
      'first daemon to die',
    );
    const stale: unknown[] = [];
    const lock = await acquireDaemonLock(stateDir, {
      onStale: (holder) => stale.push(holder?.pid),
    });
    expect(stale).toEqual([first.pid]);
    expect(lock.holder.pid).toBe(process.pid);
    await lock.release();
  });

  it('treats a lock naming a recycled pid (other start time) or garbage as stale', async () => {
    const stateDir = await tempDir();
    await fs.writeFile(
      lockPath(stateDir),
      JSON.stringify({ pid: process.pid, start_time: 1, started_at: 'long ago' }),
    );
    const lock = await acquireDaemonLock(stateDir);
    await lock.release();
    await fs.writeFile(lockPath(stateDir), 'garbage');
    await (await acquireDaemonLock(stateDir)).release();
  });
});
