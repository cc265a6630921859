import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { killChild, reapChildren, spawnChild } from './__fixtures__/targets.js';
import { ProbeError } from './errors.js';
import {
  listProcessIds,
  parseProcessStat,
  processStartedAtMs,
  readProcessStartTime,
  readProcessStat,
  readProcessStatSync,
  scanProcesses,
} from './proc.js';

afterEach(reapChildren);

describe('parseProcessStat', () => {
  it('counts fields from the last parenthesis, so a command name with spaces and parentheses is safe', () => {
    const fields = Array.from({ length: 49 }, (_, index) => String(index + 3));
    fields[0] = 'S'; // state
    fields[1] = '77'; // ppid
    fields[2] = '4242'; // pgrp
    fields[19] = '123456'; // starttime (field 22)
    const stat = parseProcessStat(`4242 (we ird) (name) ${fields.join(' ')}\n`);
    expect(stat).toEqual({
      pid: 4242,
      comm: 'we ird) (name',
      state: 'S',
      ppid: 77,
      pgrp: 4242,
      sid: 6,
      startTime: 123456,
      exitStatus: undefined,
    });
  });

  it('reads the session (field 6) and, for a zombie, the exit status (field 52)', () => {
    const fields = Array.from({ length: 50 }, (_, index) => String(index + 3));
    fields[0] = 'Z';
    fields[3] = '4242'; // session
    fields[49] = String(9 << 8); // exit code 9
    const stat = parseProcessStat(`4242 (agent) ${fields.join(' ')}`);
    expect(stat).toMatchObject({ state: 'Z', sid: 4242, exitStatus: 9 << 8 });
  });

  it('returns undefined for text that is not a stat line', () => {
    expect(parseProcessStat('')).toBeUndefined();
    expect(parseProcessStat('12 no parens here')).toBeUndefined();
  });
});

describe('readProcessStartTime', () => {
  it('reads field 22 of /proc/<pid>/stat for this process', async () => {
    const text = readFileSync('/proc/self/stat', 'utf8');
    const expected = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[19]);
    await expect(readProcessStartTime(process.pid)).resolves.toBe(expected);
  });

  it('gives a spawned child its own start time, and undefined once it is gone', async () => {
    const child = spawnChild('sleep', ['30']);
    const startTime = await readProcessStartTime(child.pid);
    expect(Number.isInteger(startTime)).toBe(true);
    expect(startTime).toBeGreaterThanOrEqual((await readProcessStartTime(process.pid)) as number);
    await killChild(child);
    await expect(readProcessStartTime(child.pid)).resolves.toBeUndefined();
  });

  it('refuses a pid that is not a positive integer', async () => {
    const error = await readProcessStat(-1).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProbeError);
    expect((error as ProbeError).code).toBe('PROBE_INVALID_TARGET');
  });
});

describe('readProcessStatSync', () => {
  it('reads what readProcessStat reads, and undefined once the process is gone', async () => {
    const child = spawnChild('sleep', ['30']);
    // The same process, read both ways (its state, R or S, may change between the two reads).
    const identity = (stat: Awaited<ReturnType<typeof readProcessStat>>) =>
      stat && {
        pid: stat.pid,
        ppid: stat.ppid,
        pgrp: stat.pgrp,
        sid: stat.sid,
        startTime: stat.startTime,
      };
    expect(identity(readProcessStatSync(child.pid))).toEqual(
      identity(await readProcessStat(child.pid)),
    );
    expect(readProcessStatSync(child.pid)?.ppid).toBe(process.pid);
    await killChild(child);
    expect(readProcessStatSync(child.pid)).toBeUndefined();
    expect(() => readProcessStatSync(0)).toThrow(/pid: 0 must be a positive integer/);
  });
});

describe('processStartedAtMs', () => {
  it('puts a child just spawned within a few seconds of now', async () => {
    const before = Date.now();
    const child = spawnChild('sleep', ['30']);
    const startedAt = await processStartedAtMs((await readProcessStartTime(child.pid)) as number);
    // Clock ticks are 10 ms and btime is whole seconds: allow a second either way.
    expect(startedAt).toBeGreaterThan(before - 1_500);
    expect(startedAt).toBeLessThan(Date.now() + 1_500);
  });
});

describe('listProcessIds', () => {
  it('lists this process', async () => {
    expect(await listProcessIds()).toContain(process.pid);
  });
});

describe('scanProcesses', () => {
  it('lists this process and a child with their command lines', async () => {
    const child = spawnChild('sleep', ['31.5']);
    const processes = await scanProcesses();
    const self = processes.find((info) => info.pid === process.pid);
    expect(self?.cmdline[0]).toBe(process.argv0.includes('/') ? process.argv0 : expect.any(String));
    const found = processes.find((info) => info.pid === child.pid);
    expect(found).toMatchObject({ ppid: process.pid, cmdline: ['sleep', '31.5'] });
  });
});
