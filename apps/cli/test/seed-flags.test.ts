import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import { pit } from './cli.js';

let base: string;
const started: number[] = [];
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'pit-cli-flags-'));
});
afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(base, { recursive: true, force: true });
});

/** The pid the sweeps recorded for claude (state under <state_dir>/cells/<uuid>/state.json). */
function recordedPid(): number | undefined {
  const cells = join(base, 'state', 'cells');
  for (const uuid of readdirSync(cells)) {
    const state = JSON.parse(readFileSync(join(cells, uuid, 'state.json'), 'utf8')) as {
      agents: Record<string, { pid?: number }>;
    };
    return state.agents.claude?.pid;
  }
  return undefined;
}

describe("pit daemon|sweep --poll-interval, --dead-threshold and -v (the first daemons' flags)", () => {
  it('are listed in --help of both commands', async () => {
    for (const command of ['daemon', 'sweep']) {
      const help = await pit([command, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/--poll-interval <seconds>\s+probe every S seconds/);
      expect(help.stdout).toMatch(/--dead-threshold <seconds>\s+act on an agent/);
      expect(help.stdout).toMatch(/-v, --verbose\s+log at debug level/);
    }
  });

  it('refuses a value that is not a number of seconds, naming the flag', async () => {
    const bad = await pit(['sweep', '--once', '--poll-interval', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      `--poll-interval "0": expected a number of seconds greater than 0`,
    );
    const worse = await pit(['daemon', '--dead-threshold', 'soon']);
    expect(worse.code).toBe(2);
    expect(worse.stderr).toContain(
      `--dead-threshold "soon": expected a number of seconds (0 or more)`,
    );
  });

  it('override the config file: --dead-threshold replaces [policy.defaults] dead_after for a dead agent', async () => {
    const configPath = join(base, 'pit.toml');
    writeFileSync(
      configPath,
      [
        '[daemon]',
        'state_dir = "state"',
        '[daemon.http]',
        'enabled = false',
        '[cells]',
        'root = "missions"',
        'heartbeat_stale_s = 1',
        '[bus]',
        'enabled = false',
        '[checkpoints]',
        'interval_s = 0',
        '[policy.defaults]',
        'dead_after = "30s"',
        '[agents.claude]',
        // Hung from the start: alive, never a heartbeat. Its death is inferred, so dead_after
        // applies (an exit the Pit sees is acted on at once, issue #14 point 6).
        'argv = ["/bin/sleep", "3600"]',
        'startup_grace_s = 0.5',
      ].join('\n'),
      { mode: 0o600 },
    );
    const run = (args: string[]) => pit(['-c', configPath, ...args]);
    expect((await run(['cell', 'create', '--mission', 'm', '--agent', 'claude'])).code).toBe(0);
    // First sight: the sweep starts it and leaves it running.
    await run(['sweep', '--once']);
    const first = recordedPid();
    expect(first).toBeGreaterThan(1);
    started.push(first!);

    // Once its startup grace has passed, a sweep finds it dead and waits the hour it was given.
    const waiting = await waitFor(
      async () => {
        const result = await run([
          'sweep',
          '--once',
          '--dead-threshold',
          '3600',
          '--poll-interval',
          '5',
          '-v',
        ]);
        return /claude\s+dead/.test(result.stdout) ? result : undefined;
      },
      30_000,
      'a sweep to find the hung agent dead',
    );
    expect(waiting.stderr).toContain(
      'pit sweep: command line overrides the config: [cells] poll_interval_s = 5, [policy.defaults] dead_after = 3600 s, log level debug',
    );
    expect(waiting.stdout).toMatch(/claude\s+dead → wait: .*dead_after=1h \(defaults\)/);
    expect(recordedPid()).toBe(first);

    const acting = await run(['sweep', '--once', '--dead-threshold', '0']);
    expect(acting.stdout).toMatch(/claude\s+\w+ → (rollback_and_)?restart: claude dead for/);
    const second = recordedPid();
    expect(second).not.toBe(first);
    started.push(second!);
  }, 120_000);
});
