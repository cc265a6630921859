import { describe, expect, it } from 'vitest';
import { PitError } from '@pit/cell-spec';
import {
  checkProcess,
  decodeWaitStatus,
  findMarkedProcesses,
  markedKey,
  readProcessStartTime,
  readProcessStat,
  scanMarkedProcesses,
  signalGroup,
  type MarksMemo,
  signalProcess,
} from './proc.js';

describe('checkProcess', () => {
  it('knows this process by its start time and refuses another start time or a missing pid', async () => {
    const startTime = (await readProcessStartTime(process.pid))!;
    expect((await readProcessStat(process.pid))?.startTime).toBe(startTime);
    expect(await checkProcess(process.pid, startTime)).toMatchObject({ alive: true });
    expect(await checkProcess(process.pid, startTime + 1)).toMatchObject({
      alive: false,
      reason: 'recycled',
    });
    expect(await checkProcess(2 ** 22 + 7, startTime)).toEqual({ alive: false, reason: 'gone' });
    expect(await checkProcess(0, startTime)).toEqual({ alive: false, reason: 'gone' });
  });
});

describe('decodeWaitStatus', () => {
  it('decodes exit codes and signals', () => {
    expect(decodeWaitStatus(3 << 8)).toEqual({ code: 3, signal: null });
    expect(decodeWaitStatus(9)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(decodeWaitStatus(15)).toEqual({ code: null, signal: 'SIGTERM' });
  });
});

describe('signalGroup / signalProcess', () => {
  it('never signals a pid ≤ 1', () => {
    for (const pid of [1, 0, -1, Number.NaN]) {
      for (const send of [signalGroup, signalProcess]) {
        try {
          send(pid, 'SIGTERM');
          expect.unreachable();
        } catch (error) {
          expect(PitError.is(error) && error.code).toBe('DAEMON_UNSAFE_SIGNAL');
        }
      }
    }
  });

  it('reports a group or process that no longer exists as false', () => {
    expect(signalGroup(2 ** 22 + 11, 0)).toBe(false);
    expect(signalProcess(2 ** 22 + 11, 0)).toBe(false);
  });
});

describe('findMarkedProcesses', () => {
  it('finds the session leader an instance started, by the marks in its environment, and nothing else', async () => {
    const { spawn } = await import('node:child_process');
    const instance = `test${process.pid}${Date.now().toString(36)}`;
    const env = (extra: Record<string, string>) => ({
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...extra,
    });
    const run = (extra: Record<string, string>, detached: boolean) => {
      const child = spawn('sleep', ['30'], { env: env(extra), detached, stdio: 'ignore' });
      return child;
    };
    const children = [
      run({ PIT_INSTANCE: instance, LAZARUS_AGENT: 'forge', LAZARUS_CELL_UUID: 'c1' }, true),
      run({ PIT_INSTANCE: instance, LAZARUS_AGENT: 'scout' }, true),
      // Not a session leader (a child an agent started in its own group): not an agent.
      run({ PIT_INSTANCE: instance, LAZARUS_AGENT: 'stray', LAZARUS_CELL_UUID: 'c1' }, false),
      // Another daemon's agent, and a prefix of this instance's id.
      run({ PIT_INSTANCE: `${instance}x`, LAZARUS_AGENT: 'other', LAZARUS_CELL_UUID: 'c1' }, true),
      run({ XPIT_INSTANCE: instance, LAZARUS_AGENT: 'fake', LAZARUS_CELL_UUID: 'c1' }, true),
    ];
    try {
      await Promise.all(
        children.map((child) => new Promise((resolve) => child.once('spawn', resolve))),
      );
      const found = await findMarkedProcesses(instance);
      expect([...found.keys()].sort()).toEqual(
        [markedKey('c1', 'forge'), markedKey(undefined, 'scout')].sort(),
      );
      const forge = found.get(markedKey('c1', 'forge'))!;
      expect(forge).toEqual({
        pid: children[0]!.pid,
        startTime: await readProcessStartTime(children[0]!.pid!),
        sid: children[0]!.pid,
        agent: 'forge',
        cell: 'c1',
        nonce: undefined,
      });
    } finally {
      for (const child of children) child.kill('SIGKILL');
    }
  });
});

describe('scanMarkedProcesses with a memo', () => {
  it('keeps a process found unmarked twice, keeps marks at once, forgets a process once gone, and finds every marked one on every scan', async () => {
    const { spawn } = await import('node:child_process');
    const instance = `memo${process.pid}${Date.now().toString(36)}`;
    const started = (extra: Record<string, string>) => {
      const child = spawn('sleep', ['30'], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...extra },
        detached: true,
        stdio: 'ignore',
      });
      return new Promise<typeof child>((resolve) => child.once('spawn', () => resolve(child)));
    };
    const plain = await started({});
    const children = [plain];
    try {
      const memo: MarksMemo = new Map();
      const startTime = await readProcessStartTime(plain.pid!);
      await scanMarkedProcesses(instance, { memo });
      expect(memo.get(plain.pid!)).toEqual({ startTime, marks: undefined, confirmed: false });
      await scanMarkedProcesses(instance, { memo });
      expect(memo.get(plain.pid!)).toEqual({ startTime, marks: undefined, confirmed: true });

      // A process started since is read (it is new) and found, then found again from the memo.
      const agent = await started({ PIT_INSTANCE: instance, LAZARUS_AGENT: 'forge' });
      children.push(agent);
      for (let scan = 0; scan < 2; scan++) {
        const found = await scanMarkedProcesses(instance, { memo });
        expect(found.map((process) => process.pid)).toEqual([agent.pid]);
        expect(memo.get(agent.pid!)).toMatchObject({ marks: { agent: 'forge' }, confirmed: true });
      }

      // Gone: its pid is dropped from the memo (a later process with that pid is read afresh).
      plain.kill('SIGKILL');
      await new Promise((resolve) => plain.once('exit', resolve));
      await scanMarkedProcesses(instance, { memo });
      expect(memo.has(plain.pid!)).toBe(false);
    } finally {
      for (const child of children) child.kill('SIGKILL');
    }
  });
});
