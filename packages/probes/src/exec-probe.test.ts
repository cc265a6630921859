import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProbeError } from './errors.js';
import { execProbe } from './exec-probe.js';
import { readProcessStat } from './proc.js';

const dir = mkdtempSync(join(tmpdir(), 'pit-probes-exec-'));
const leftovers: number[] = [];
afterAll(() => {
  for (const pid of leftovers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone, as expected.
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('execProbe', () => {
  it('is ok when the command exits 0', async () => {
    const result = await execProbe({ command: 'sh', args: ['-c', 'echo healthy'] });
    expect(result).toMatchObject({ kind: 'exec', ok: true, exitCode: 0, output: 'healthy\n' });
  });

  it('fails with exit_code and the last output line on a non-zero exit', async () => {
    const result = await execProbe({
      command: 'sh',
      args: ['-c', 'echo checking; echo "gateway down" >&2; exit 3'],
    });
    expect(result).toMatchObject({ ok: false, failure: 'exit_code', exitCode: 3 });
    expect(result.detail).toMatch(/exited with 3: gateway down$/);
  });

  it('kills its whole process group on timeout, grandchildren included', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    const result = await execProbe(
      { command: 'sh', args: ['-c', `sleep 60 & echo $! > ${pidFile}; wait`] },
      { timeoutMs: 500 },
    );
    expect(result).toMatchObject({ ok: false, failure: 'timeout' });
    expect(result.detail).toContain('did not exit within 500 ms; its process group was killed');
    expect(existsSync(pidFile)).toBe(true);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    leftovers.push(grandchild);
    // Killed: gone, or a zombie left to PID 1 (which, in these containers, reaps nothing).
    await expect
      .poll(async () => (await readProcessStat(grandchild))?.state ?? 'gone', { timeout: 10_000 })
      .toMatch(/^(gone|Z)$/);
  });

  it('does not wait for a grandchild that keeps stdout open after the command exits', async () => {
    const result = await execProbe(
      { command: 'sh', args: ['-c', 'sleep 30 & echo started'] },
      { timeoutMs: 5_000 },
    );
    expect(result).toMatchObject({ ok: true, exitCode: 0 });
    expect(result.latencyMs).toBeLessThan(5_000);
    const grandchild = Number(result.output?.match(/\d+/)?.[0]);
    if (Number.isInteger(grandchild)) leftovers.push(grandchild);
  });

  it('reports a command that cannot be started as a result, not an exception', async () => {
    const result = await execProbe({ command: join(dir, 'no-such-command') });
    expect(result).toMatchObject({ ok: false, failure: 'error' });
    expect(result.detail).toContain('ENOENT');
  });

  it('caps the output it keeps', async () => {
    const result = await execProbe({
      command: 'sh',
      args: ['-c', 'yes | head -c 100000'],
      maxOutputBytes: 64,
    });
    expect(result.output).toHaveLength(64);
  });

  it('passes cwd and env', async () => {
    const result = await execProbe({
      command: 'sh',
      args: ['-c', 'echo "$PWD $PIT_PROBE"'],
      cwd: dir,
      env: { PIT_PROBE: 'yes', PATH: '/usr/bin:/bin' },
    });
    expect(result.output?.trim()).toBe(`${dir} yes`);
  });

  it('refuses an empty command', async () => {
    const error = await execProbe({ command: '' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProbeError);
    expect((error as ProbeError).code).toBe('PROBE_INVALID_TARGET');
  });
});
