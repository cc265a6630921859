import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { provisionCell } from '@pit/cell-spec';
import { cleanup, reapLater, spawnTsx, tempDir, waitFor } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

const RUN_DAEMON = fileURLToPath(
  new URL('../../daemon/test/fixtures/run-daemon.ts', import.meta.url),
);
const BIN = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const LINES_PER_RUN = 100;
/** One line of the writer: its pid, its sequence number, padding (a torn line would be shorter). */
const LINE = /^seq (\d+):(\d+) x{40}$/;

afterEach(cleanup);

/** An agent that writes LINES_PER_RUN numbered lines as fast as it can, then exits 1. */
const WRITER = `let out = ''; for (let i = 0; i < ${LINES_PER_RUN}; i++) out += 'seq ' + process.pid + ':' + i + ' ' + 'x'.repeat(40) + '\\n'; process.stdout.write(out, () => process.exit(1));`;

async function setUp() {
  const base = await tempDir('pit-cli-logs-');
  const { dir, manifest } = await provisionCell(join(base, 'missions'), {
    mission: 'logs',
    created_by: 'test',
    agents: [{ name: 'spew', role: 'lead' }],
  });
  const config = [
    '[daemon]',
    'state_dir = "state"',
    '[daemon.http]',
    'enabled = false',
    '[cells]',
    'root = "missions"',
    'poll_interval_s = 0.2',
    '[checkpoints]',
    'interval_s = 0',
    '[bus]',
    'enabled = false',
    '[logs]',
    'max_bytes = 4096',
    'keep = 3',
    '[policy.agents.spew]',
    'backoff = { initial = "1s", factor = 1, cap = "1s", jitter = 0 }',
    '[agents.spew]',
    `cell = "${manifest.uuid}"`,
    `argv = ["${process.execPath}", "-e", ${JSON.stringify(WRITER)}]`,
    '[agents.spew.probes]',
    'heartbeat = false',
  ].join('\n');
  const configPath = join(base, 'pit.toml');
  await fs.writeFile(configPath, config, { mode: 0o600 });
  return { base, dir, uuid: manifest.uuid, configPath, logs: join(dir, 'logs') };
}

/** Every line of a log's text, checked whole: a start header or a complete writer line. */
function checkLines(text: string): Array<{ pid: number; seq: number }> {
  const lines = text.split('\n');
  expect(lines.pop()).toBe('');
  return lines.flatMap((line) => {
    if (line.startsWith('--- pit: starting spew')) return [];
    const match = LINE.exec(line);
    expect(match, `a torn or foreign line: ${JSON.stringify(line)}`).not.toBeNull();
    return [{ pid: Number(match![1]), seq: Number(match![2]) }];
  });
}

describe('pit logs', () => {
  it('reads an agent’s rotated logs oldest first, follows across a rotation with -f, and the files stay at the kept count', async () => {
    const { configPath, logs, uuid } = await setUp();
    const daemon = spawnTsx(RUN_DAEMON, [configPath, '--stop-agents-on-exit']);
    const ready = await waitFor(
      () => /^(READY|FAILED) .*$/m.exec(daemon.output())?.[0],
      30_000,
      'the daemon',
    );
    expect(ready).toMatch(/^READY/);
    await waitFor(
      () =>
        fs.stat(join(logs, 'spew.log')).then(
          () => true,
          () => false,
        ),
      20_000,
      'the first run’s log',
    );
    const follower = spawnTsx(BIN, ['--config', configPath, 'logs', 'spew', '-f', '-n', '0']);
    reapLater(follower.pid);
    // Each run writes 5.5 KiB, so every start after the first rotates the log.
    await waitFor(
      async () => (await fs.readdir(logs)).includes('spew.log.2') || undefined,
      60_000,
      'two rotations',
    );
    const names = (await fs.readdir(logs)).filter((name) => name.startsWith('spew'));
    // The live file is renamed away at a start and opened again just after: wait for it.
    const live = await waitFor(
      () => fs.readFile(join(logs, 'spew.log'), 'utf8'),
      20_000,
      'the live log after a rotation',
    );
    const runsInLive = new Set(checkLines(live).map((line) => line.pid));
    await waitFor(
      () =>
        [...runsInLive].every((pid) => follower.output().includes(`seq ${pid}:99 `)) || undefined,
      20_000,
      'the follower printing the runs after the rotation',
    );
    daemon.kill('SIGTERM');
    follower.kill('SIGTERM');
    expect(names.length).toBeLessThanOrEqual(3);
    expect(names).not.toContain('spew.log.3');

    // Every file: whole lines only, each run's sequence without a gap.
    const all: Array<{ pid: number; seq: number }> = [];
    for (const name of ['spew.log.2', 'spew.log.1', 'spew.log'])
      all.push(...checkLines(await fs.readFile(join(logs, name), 'utf8').catch(() => '')));
    const byRun = new Map<number, number[]>();
    for (const line of all) byRun.set(line.pid, [...(byRun.get(line.pid) ?? []), line.seq]);
    for (const [pid, seqs] of byRun)
      expect(seqs, `run ${pid}`).toEqual(
        Array.from({ length: LINES_PER_RUN }, (_, index) => index),
      );

    // -f printed whole lines, none twice, across the rotation.
    const followed = follower
      .output()
      .split('\n')
      .filter((line) => line.startsWith('seq '));
    for (const line of followed) expect(line).toMatch(LINE);
    expect(new Set(followed).size).toBe(followed.length);

    // Without -f: oldest first, the last N lines; CELL/NAME works; --stderr says why not.
    const tail = await pit(['--config', configPath, 'logs', `${uuid.slice(0, 8)}/spew`, '-n', '5']);
    expect(tail.code, tail.stderr).toBe(0);
    expect(tail.stdout.trimEnd().split('\n')).toHaveLength(5);
    const everything = await pit(['--config', configPath, 'logs', 'spew', '-n', '0']);
    const printed = checkLines(everything.stdout);
    expect(printed.length).toBeGreaterThanOrEqual(2 * LINES_PER_RUN);
    const stderrOnly = await pit(['--config', configPath, 'logs', 'spew', '--stderr']);
    expect(stderrOnly.code).toBe(2);
    expect(stderrOnly.stderr).toContain('stderr is not kept apart');
  });

  it('names what it looked for when there is no log, and takes --since as a duration or ISO time', async () => {
    const { configPath, logs } = await setUp();
    const missing = await pit(['--config', configPath, 'logs', 'nosuch']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nosuch: no log found');
    const header = (iso: string) => `--- pit: starting spew at level 1 (${iso}): ["x"]\n`;
    await fs.writeFile(
      join(logs, 'spew.log'),
      `${header('2020-01-01T00:00:00.000Z')}old run\n${header(new Date().toISOString())}new run\n`,
    );
    const recent = await pit(['--config', configPath, 'logs', 'spew', '--since', '10m']);
    expect(recent.stdout).not.toContain('old run');
    expect(recent.stdout).toContain('new run');
    const iso = await pit([
      '--config',
      configPath,
      'logs',
      'spew',
      '--since',
      '2021-06-01T00:00:00Z',
    ]);
    expect(iso.stdout).not.toContain('old run');
    expect(iso.stdout).toContain('new run');
    const future = await pit([
      '--config',
      configPath,
      'logs',
      'spew',
      '--since',
      '2999-01-01T00:00:00Z',
    ]);
    expect(future.stdout).toBe(''); // nothing written since
    const bad = await pit(['--config', configPath, 'logs', 'spew', '--since', 'yesterday']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--since: expected a duration');
  });
});
