import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  chmodSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killReaped, spawnTsx, waitFor, within } from '@pit/test-kit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url));

/** A directory with a `pit` on it that runs this checkout's CLI, as an installed `pit` would. */
function pitOnPath(dir: string): string {
  const file = join(dir, 'pit');
  writeFileSync(
    file,
    `#!/bin/sh\nexec "${process.execPath}" --conditions=@pit/source --import "${tsx}" "${bin}" "$@"\n`,
  );
  chmodSync(file, 0o755);
  return dir;
}

/** The pids of the processes whose working directory is under `dir` (the demo's agents run in its cell). */
function processesUnder(dir: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readlinkSync(`/proc/${pid}/cwd`).startsWith(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

const exitOf = (child: ReturnType<typeof spawnTsx>) =>
  new Promise<number | null>((resolve) =>
    child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code)),
  );

/** Runs `command` in `sh` as an operator pastes it into a terminal. */
async function shell(command: string, env: NodeJS.ProcessEnv) {
  const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, output };
}

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'pit-cli-demo-'));
});
afterEach(async () => {
  await killReaped();
  rmSync(base, { recursive: true, force: true });
});

describe('pit demo', () => {
  it('plays the scripted story: scout restarted, smith rolled back after crashing on its corrupted config, oracle waiting for approval', async () => {
    const dir = join(base, 'demo');
    const result = await pit(
      ['demo', '--dir', dir, '--listen', '127.0.0.1:0', '--exit-when-done'],
      { env: { PIT_HTTP_TOKEN: '' }, timeoutMs: 170_000 },
    );
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    const out = result.stdout;
    expect(out).toMatch(/Dashboard: http:\/\/127\.0\.0\.1:\d+\//);
    expect(out).toMatch(/scout\s+revived as pid \d+/);
    // scout has no config files: restarted, with no claim of a rollback.
    expect(out).toMatch(/scout\s+decision restart: /);
    expect(out).not.toMatch(/scout\s+.*roll/);
    expect(out).toMatch(/smith\s+is dead: process exited \(exit code 78\)/);
    expect(out).toMatch(
      /smith\s+config rolled back: config\/smith\.json [0-9a-f]{8} → [0-9a-f]{8}/,
    );
    expect(out).toMatch(
      /oracle\s+waits for a human: approve with `PIT_HTTP_TOKEN=[0-9a-f]{48} pit --config .* approve [0-9a-f]+`/,
    );
    // The config smith runs with again is the good one, restored byte for byte.
    const cells = JSON.parse(
      (await pit(['--config', join(dir, 'pit.toml'), 'cells', 'list', '--json'])).stdout,
    ) as { cells: Array<{ dir: string }> };
    expect(
      JSON.parse(readFileSync(join(cells.cells[0]!.dir, 'config', 'smith.json'), 'utf8')),
    ).toMatchObject({ model: 'claude-sonnet' });
    // The approval is visible to `pit approvals` after the demo stopped, and `pit why` tells smith's story.
    const approvals = await pit(['--config', join(dir, 'pit.toml'), 'approvals', '--json']);
    expect(
      (JSON.parse(approvals.stdout) as { approvals: Array<{ agent: string }> }).approvals.map(
        (approval) => approval.agent,
      ),
    ).toContain('oracle');
    const why = await pit(['--config', join(dir, 'pit.toml'), 'why', 'smith']);
    expect(why.stdout).toMatch(/bad_config/);
    expect(why.stdout).toMatch(/config rolled back: .*smith\.json/);
  }, 180_000);

  it('prints an approve command that works as printed (its made-up token included) while it runs', async () => {
    const dir = join(base, 'demo');
    const { PIT_HTTP_TOKEN: _ignored, ...env } = process.env;
    const demo = spawnTsx(bin, ['demo', '--dir', dir, '--listen', '127.0.0.1:0'], { env });
    const printed = await waitFor(
      () => /waits for a human: approve with `([^`]+)`/.exec(demo.output())?.[1],
      170_000,
      `the demo to print its approve command; it said:\n${demo.output()}`,
    );
    expect(printed).toMatch(/^PIT_HTTP_TOKEN=[0-9a-f]{48} pit --config \S+ approve [0-9a-f]+$/);
    // Pasted into a shell with no token in the environment, with `pit` on the PATH.
    const answered = await shell(printed, {
      ...env,
      PATH: `${pitOnPath(mkdtempSync(join(base, 'bin-')))}:${env.PATH ?? ''}`,
    });
    expect(answered.output).toMatch(/approved [0-9a-f]+ \(.*oracle\): the daemon acts on it now/);
    expect(answered.code).toBe(0);
    await waitFor(
      () => /oracle\s+revive approved by .* via http/.test(demo.output()),
      30_000,
      'the demo to tell the approval',
    );
    demo.kill('SIGINT');
    expect(await within(exitOf(demo), 30_000, 'the demo to stop on Ctrl-C')).toBe(0);
    await waitFor(() => processesUnder(dir).length === 0, 10_000, 'the demo agents to be gone');
  }, 240_000);

  it('on a busy port fails at once, naming the port, and leaves no agent behind', async () => {
    const dir = join(base, 'demo');
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as AddressInfo;
    try {
      const demo = spawnTsx(
        bin,
        ['demo', '--dir', dir, '--listen', `127.0.0.1:${port}`, '--exit-when-done'],
        { env: { ...process.env, PIT_HTTP_TOKEN: '' } },
      );
      const code = await within(
        exitOf(demo),
        30_000,
        `the demo to exit; it said:\n${demo.output()}`,
      );
      expect(code, demo.output()).not.toBe(0);
      expect(demo.output()).toContain(`127.0.0.1:${port}`);
      expect(demo.output()).not.toMatch(/internal error/);
      expect(demo.output()).toContain('--listen 127.0.0.1:0');
      expect(processesUnder(dir)).toEqual([]);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  }, 60_000);
});
