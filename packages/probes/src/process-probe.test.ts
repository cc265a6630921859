import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { killChild, reapChildren, spawnChild, spawnMarked } from './__fixtures__/targets.js';
import { ProbeError } from './errors.js';
import { readProcessStartTime, readProcessStat, scanProcesses } from './proc.js';
import { processProbe } from './process-probe.js';
import { createProcessTable } from './process-table.js';

afterEach(reapChildren);
const dir = mkdtempSync(join(tmpdir(), 'pit-probes-process-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('processProbe by pid', () => {
  it('is ok for a live child with its recorded start time, and not_running once it is killed mid-test', async () => {
    const child = spawnChild('sleep', ['30']);
    const startTime = await readProcessStartTime(child.pid);
    const alive = await processProbe({ pid: child.pid, startTime });
    expect(alive).toMatchObject({ kind: 'process', ok: true, pid: child.pid, startTime });
    expect(alive.detail).toContain('same start time');

    await killChild(child);
    const dead = await processProbe({ pid: child.pid, startTime });
    expect(dead).toMatchObject({ ok: false, failure: 'not_running', pid: child.pid });
  });

  it('does not mistake a recycled pid for the agent: a start time that differs is pid_reused', async () => {
    // The pid is alive, but the start time recorded at spawn belongs to an earlier process.
    const child = spawnChild('sleep', ['30']);
    const actual = (await readProcessStartTime(child.pid)) as number;
    const result = await processProbe({ pid: child.pid, startTime: actual - 1 });
    expect(result).toMatchObject({
      ok: false,
      failure: 'pid_reused',
      pid: child.pid,
      startTime: actual,
    });
    expect(result.detail).toContain(`expected ${actual - 1}`);
  });

  it('counts a zombie (exited, not reaped) as dead', async () => {
    // sh starts a short child and blocks in `read` without reaping it: a real zombie, reaped
    // by the shell's `wait` once stdin closes (so nothing is left for PID 1, which reaps nothing).
    const parent = spawnChild('sh', ['-c', 'sleep 0 & read line; wait'], { stdin: 'pipe' });
    let zombie: number | undefined;
    await expect
      .poll(
        async () => {
          zombie = (await scanProcesses()).find(
            (info) => info.ppid === parent.pid && info.state === 'Z',
          )?.pid;
          return zombie;
        },
        { timeout: 10_000 },
      )
      .toBeTypeOf('number');
    expect((await readProcessStat(zombie as number))?.state).toBe('Z');
    const result = await processProbe({ pid: zombie as number });
    expect(result).toMatchObject({ ok: false, failure: 'not_running', state: 'Z' });
    expect(result.detail).toContain('zombie');
    const exited = new Promise((resolve) => parent.once('exit', resolve));
    parent.stdin?.end();
    await exited;
    await expect(readProcessStat(zombie as number)).resolves.toBeUndefined();
  });

  it('refuses a pid that is not a positive integer', async () => {
    const error = await processProbe({ pid: 0 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProbeError);
    expect((error as ProbeError).code).toBe('PROBE_INVALID_TARGET');
  });
});

describe('processProbe by pid file', () => {
  it('reads the pid from the file and checks that process', async () => {
    const child = spawnChild('sleep', ['30']);
    const pidFile = join(dir, `${randomUUID()}.pid`);
    writeFileSync(pidFile, `${child.pid}\n`);
    const result = await processProbe({
      pidFile,
      startTime: await readProcessStartTime(child.pid),
    });
    expect(result).toMatchObject({ ok: true, pid: child.pid });
  });

  it('reports a missing pid file as missing and a garbled one as invalid', async () => {
    await expect(processProbe({ pidFile: join(dir, 'absent.pid') })).resolves.toMatchObject({
      ok: false,
      failure: 'missing',
    });
    const garbled = join(dir, 'garbled.pid');
    writeFileSync(garbled, 'not-a-pid');
    const result = await processProbe({ pidFile: garbled });
    expect(result).toMatchObject({ ok: false, failure: 'invalid' });
    expect(result.detail).toContain(garbled);
  });
});

describe('processProbe by command pattern', () => {
  it('finds a process by its command line and loses it once killed', async () => {
    const marker = `pit-agent-${randomUUID()}`;
    const child = spawnMarked(marker);
    const found = await processProbe({ pattern: marker });
    expect(found).toMatchObject({ ok: true, pids: [child.pid] });
    await killChild(child);
    const lost = await processProbe({ pattern: new RegExp(marker) });
    expect(lost).toMatchObject({ ok: false, failure: 'not_running', pids: [] });
  });

  it('honours minCount', async () => {
    const marker = `pit-pair-${randomUUID()}`;
    spawnMarked(marker);
    const result = await processProbe({ pattern: marker, minCount: 2 });
    expect(result).toMatchObject({ ok: false, failure: 'not_running' });
    expect(result.detail).toContain('expected at least 2');
  });

  it('shares one /proc scan between all pattern probes of a sweep', async () => {
    const markers = [`pit-a-${randomUUID()}`, `pit-b-${randomUUID()}`, `pit-c-${randomUUID()}`];
    const children = markers.map((marker) => spawnMarked(marker));
    const processTable = createProcessTable({ maxAgeMs: 60_000 });
    const results = await Promise.all(
      markers.map((marker) => processProbe({ pattern: marker }, { processTable })),
    );
    expect(results.map((result) => result.pids)).toEqual(children.map((child) => [child.pid]));
    expect(processTable.scans).toBe(1);
    await processTable.refresh();
    expect(processTable.scans).toBe(2);
  });

  it('rescans once the snapshot is older than maxAgeMs (by the injected clock)', async () => {
    let clock = 1_000_000;
    const processTable = createProcessTable({ maxAgeMs: 500, now: () => clock });
    await processTable.snapshot();
    await processTable.snapshot();
    expect(processTable.scans).toBe(1);
    clock += 501;
    await processTable.snapshot();
    expect(processTable.scans).toBe(2);
  });

  it('refuses an invalid regular expression', async () => {
    const error = await processProbe({ pattern: '(' }).catch((caught: unknown) => caught);
    expect((error as ProbeError).code).toBe('PROBE_INVALID_TARGET');
  });
});
