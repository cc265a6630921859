import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { provisionCell } from '@pit/cell-spec';
import { copyRotateLog } from '@pit/daemon';
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

async function setUp(
  writer = WRITER,
  limits: { maxBytes: number; keep: number } = { maxBytes: 4096, keep: 3 },
  extra: string[] = [],
) {
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
    `max_bytes = ${limits.maxBytes}`,
    `keep = ${limits.keep}`,
    ...extra,
    '[policy.agents.spew]',
    'backoff = { initial = "1s", factor = 1, cap = "1s", jitter = 0 }',
    '[agents.spew]',
    `cell = "${manifest.uuid}"`,
    `argv = ["${process.execPath}", "-e", ${JSON.stringify(writer)}]`,
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

/** The real `pit` (from source) with its stdout and stderr collected apart (spawnTsx joins them). */
function spawnApart(args: string[]) {
  const child = spawn(
    process.execPath,
    ['--conditions=@pit/source', '--import', 'tsx', BIN, ...args],
    {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  reapLater(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return Object.assign(child, { stdout: () => stdout, stderr: () => stderr });
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
    const names = (await fs.readdir(logs)).filter((name) => name.startsWith('spew.log'));
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

    // Without -f: oldest first, the last N lines; CELL/NAME works; --stderr: only the (empty) stderr.
    const tail = await pit(['--config', configPath, 'logs', `${uuid.slice(0, 8)}/spew`, '-n', '5']);
    expect(tail.code, tail.stderr).toBe(0);
    expect(tail.stdout.trimEnd().split('\n')).toHaveLength(5);
    const everything = await pit(['--config', configPath, 'logs', 'spew', '-n', '0']);
    const printed = checkLines(everything.stdout);
    expect(printed.length).toBeGreaterThanOrEqual(2 * LINES_PER_RUN);
    const stderrOnly = await pit(['--config', configPath, 'logs', 'spew', '--stderr']);
    expect(stderrOnly.code, stderrOnly.stderr).toBe(0);
    expect(stderrOnly.stdout).toBe('');
    expect(stderrOnly.stderr).not.toMatch(/^seq /m);
  });

  it('-f prints each line once when, between two of its looks, so many copy rotations happened that the `.1` it saw is gone, and says so when lines were lost', async () => {
    const keep = 4;
    const { configPath, logs } = await setUp(WRITER, { maxBytes: 1024 * 1024, keep });
    await fs.mkdir(logs, { recursive: true });
    const live = join(logs, 'spew.log');
    const line = (index: number) => `n ${index} ${'y'.repeat(40)}`;
    const lines = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, index) => line(from + index));
    let written = 0;
    const append = async (count: number) => {
      let text = '';
      for (const end = written + count; written < end; written += 1) text += `${line(written)}\n`;
      await fs.appendFile(live, text);
    };
    // A `.1` exists when -f starts (the copy rotation the daemon makes while an agent runs).
    await append(100);
    await copyRotateLog(live, { keep });
    await append(100);
    const follower = spawnApart(['--config', configPath, 'logs', 'spew', '-f', '-n', '0']);
    const printed = () => follower.stdout().split('\n').filter(Boolean);
    await waitFor(
      () => printed().includes(line(199)) || undefined,
      20_000,
      '-f printing the first 200 lines',
    );
    // Held still between two looks while `rotations` copies are made, 100 new lines in each.
    const heldThrough = async (rotations: number) => {
      follower.kill('SIGSTOP');
      for (let rotation = 0; rotation < rotations; rotation += 1) {
        await append(100);
        await copyRotateLog(live, { keep });
      }
      await append(100);
      follower.kill('SIGCONT');
      const last = line(written - 1);
      await waitFor(
        () => printed().includes(last) || undefined,
        20_000,
        '-f printing the last line',
      );
    };
    // `keep - 1` copies: the `.1` it saw is removed; the oldest file left is the first copy since.
    await heldThrough(keep - 1);
    expect(printed()).toEqual(lines(0, written));
    expect(follower.stderr()).not.toMatch(/fell behind/);
    // `keep` copies: the first copy since is removed too (its 100 new lines are gone), and on ext4
    // the next copy is given the removed `.1`'s inode number. It says so and prints every line
    // still kept, once.
    const before = written;
    await heldThrough(keep);
    follower.kill('SIGTERM');
    expect(printed()).toEqual([...lines(0, before), ...lines(before + 100, written)]);
    expect(follower.stderr()).toMatch(/spew\.log: fell behind the rotation/);
  });

  it('keeps an agent’s stdout and stderr in two files and prints each on its own stream; --stderr prints only stderr', async () => {
    // The lines are built at run time: the start header (the argv) must not contain them.
    const writer = `for (const [fd, n] of [[1, 1], [2, 1], [1, 2], [2, 2]]) require('node:fs').writeSync(fd, (fd === 1 ? 'to std' + 'out ' : 'to std' + 'err ') + n + '\\n'); setInterval(() => undefined, 1000);`;
    const { configPath, logs } = await setUp(writer);
    const daemon = spawnTsx(RUN_DAEMON, [configPath, '--stop-agents-on-exit']);
    await waitFor(
      async () =>
        ((await fs.readFile(join(logs, 'spew.log'), 'utf8').catch(() => '')).includes(
          'to stdout 2',
        ) &&
          (await fs.readFile(join(logs, 'spew.err.log'), 'utf8').catch(() => '')).includes(
            'to stderr 2',
          )) ||
        undefined,
      30_000,
      'both logs written',
    );
    const out = await fs.readFile(join(logs, 'spew.log'), 'utf8');
    const err = await fs.readFile(join(logs, 'spew.err.log'), 'utf8');
    expect(out).not.toContain('to stderr');
    expect(err).not.toContain('to stdout');
    // Each file starts with the start header.
    expect(err).toMatch(/^--- pit: starting spew at level 1 /);

    const both = await pit(['--config', configPath, 'logs', 'spew']);
    expect(both.code, both.stderr).toBe(0);
    expect(both.stdout).toMatch(/to stdout 1\nto stdout 2\n$/);
    expect(both.stdout).not.toContain('to stderr');
    expect(both.stderr).toMatch(/to stderr 1\nto stderr 2\n$/);
    expect(both.stderr).not.toContain('to stdout');
    const last = await pit(['--config', configPath, 'logs', 'spew', '-n', '1']);
    expect(last.stdout).toBe('to stdout 2\n');
    expect(last.stderr).toBe('to stderr 2\n');
    const onlyErr = await pit(['--config', configPath, 'logs', 'spew', '--stderr', '-n', '2']);
    expect(onlyErr.code, onlyErr.stderr).toBe(0);
    expect(onlyErr.stdout).toBe('');
    expect(onlyErr.stderr).toBe('to stderr 1\nto stderr 2\n');
    daemon.kill('SIGTERM');
    await waitFor(() => daemon.exitCode !== null || undefined, 30_000, 'the daemon’s exit');
  });

  it('with merge_stderr = true keeps one file in the order written, and --stderr exits 2 saying so', async () => {
    const writer = `for (const [fd, n] of [[1, 1], [2, 1], [1, 2]]) require('node:fs').writeSync(fd, (fd === 1 ? 'to std' + 'out ' : 'to std' + 'err ') + n + '\\n'); setInterval(() => undefined, 1000);`;
    const { configPath, logs } = await setUp(writer, undefined, ['merge_stderr = true']);
    const daemon = spawnTsx(RUN_DAEMON, [configPath, '--stop-agents-on-exit']);
    const text = await waitFor(
      async () => {
        const log = await fs.readFile(join(logs, 'spew.log'), 'utf8').catch(() => '');
        return log.includes('to stdout 2') ? log : undefined;
      },
      30_000,
      'the merged log written',
    );
    expect(text).toMatch(/to stdout 1\nto stderr 1\nto stdout 2\n/);
    expect(await fs.readdir(logs)).not.toContain('spew.err.log');
    const both = await pit(['--config', configPath, 'logs', 'spew']);
    expect(both.code, both.stderr).toBe(0);
    expect(both.stdout).toMatch(/to stdout 1\nto stderr 1\nto stdout 2\n$/);
    const onlyErr = await pit(['--config', configPath, 'logs', 'spew', '--stderr']);
    expect(onlyErr.code).toBe(2);
    expect(onlyErr.stderr).toContain('stderr is merged into logs/spew.log for this agent');
    expect(onlyErr.stderr).toContain('set merge_stderr = false');
    daemon.kill('SIGTERM');
    await waitFor(() => daemon.exitCode !== null || undefined, 30_000, 'the daemon’s exit');
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

  it('rotates a running agent’s logs (stdout and stderr) by size while it writes as fast as it can: bounded files, no line lost or torn, and -f follows each stream', async () => {
    const maxBytes = 256 * 1024;
    // Enough kept files that `-f`, reading on the same 2 cores as the writer, never falls more
    // than what is kept behind (then lines are gone by design, and it warns): 3 was too few on
    // Node 24 in CI.
    const keep = 12;
    // One write(2) per numbered line, forever, as fast as the machine lets it; every 4th line
    // also a numbered line on stderr (its own log, rotated on its own).
    const fastWriter = `const fs = require('node:fs'); for (let i = 0; ; i++) { fs.writeSync(1, 'n ' + i + ' ' + 'y'.repeat(40) + '\\n'); if (i % 4 === 0) fs.writeSync(2, 'e ' + i / 4 + ' ' + 'z'.repeat(40) + '\\n'); }`;
    const { configPath, logs } = await setUp(fastWriter, { maxBytes, keep });
    const daemon = spawnTsx(RUN_DAEMON, [configPath, '--stop-agents-on-exit']);
    const ready = await waitFor(
      () => /^(READY|FAILED) .*$/m.exec(daemon.output())?.[0],
      30_000,
      'the daemon',
    );
    expect(ready).toMatch(/^READY/);
    const namesOf = (live: string) =>
      Array.from({ length: keep }, (_, index) =>
        index === 0 ? live : `${live}.${index}`,
      ).reverse();
    await waitFor(
      () =>
        fs.stat(join(logs, 'spew.err.log')).then(
          () => true,
          () => undefined,
        ),
      20_000,
      'the agent’s logs',
    );
    // Both streams, each on its own stream of the follower; and stderr alone.
    const follower = spawnApart(['--config', configPath, 'logs', 'spew', '-f', '-n', '0']);
    const errorFollower = spawnApart([
      '--config',
      configPath,
      'logs',
      'spew',
      '-f',
      '-n',
      '0',
      '--stderr',
    ]);
    // Bounded: keep files of max_bytes, plus what the agent writes between two rotations (seen
    // here: a full-speed writer added 8–12 MiB between two checks while the 2 shared cores ran
    // it, the daemon, -f and other test files; the README states the overshoot).
    const bound = maxBytes * (keep + 1) + 32 * 1024 * 1024;
    // How much it must write: several times what is kept, not so much that -f (reading on the
    // same 2 cores) falls more than the kept files behind, where lines are gone by design.
    const enough = 2 * (maxBytes * (keep + 1) + 8 * 1024 * 1024);
    const lastNumber = async () => {
      const handle = await fs.open(join(logs, 'spew.log'), 'r');
      try {
        const { size } = await handle.stat();
        const buffer = Buffer.alloc(Math.min(size, 4096));
        await handle.read(buffer, 0, buffer.length, size - buffer.length);
        const numbers = [...buffer.toString('latin1').matchAll(/n (\d+) y{40}\n/g)];
        return Number(numbers.at(-1)?.[1] ?? 0);
      } finally {
        await handle.close();
      }
    };
    const sizeOf = async (live: string) => {
      let total = 0;
      for (const name of (await fs.readdir(logs)).filter((entry) => entry.startsWith(live)))
        total += await fs.stat(join(logs, name)).then(
          (stat) => stat.size,
          () => 0,
        );
      return total;
    };
    const inode = (name: string) =>
      fs.stat(join(logs, name)).then(
        (stat) => stat.ino,
        () => 0,
      );
    // Sample the files while it writes: every rotation makes a new `.1`.
    const rotations = new Set<number>();
    const errorRotations = new Set<number>();
    let largest = 0;
    let largestErrors = 0;
    await waitFor(
      async () => {
        largest = Math.max(largest, await sizeOf('spew.log'));
        largestErrors = Math.max(largestErrors, await sizeOf('spew.err.log'));
        const rotated = await inode('spew.log.1');
        if (rotated) rotations.add(rotated);
        const errorRotated = await inode('spew.err.log.1');
        if (errorRotated) errorRotations.add(errorRotated);
        return (
          (rotations.size >= 6 && errorRotations.size >= 2 && (await lastNumber()) * 50 > enough) ||
          undefined
        );
      },
      90_000,
      'six rotations of the running agent’s log, two of its stderr log, and twice the bound written',
    );
    expect(daemon.output()).not.toContain('rotated only at its next start');
    daemon.kill('SIGTERM');
    await waitFor(() => daemon.exitCode !== null || undefined, 30_000, 'the daemon’s exit');

    // Over all the files kept of each log, oldest first: whole lines, numbered without a gap.
    const numbersIn = async (live: string, pattern: RegExp) => {
      const numbers: number[] = [];
      for (const name of namesOf(live)) {
        // Fewer rotations than files kept (the stderr log rotates less often): the oldest are absent.
        const text = await fs.readFile(join(logs, name), 'utf8').catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
          throw error;
        });
        for (const line of text.split('\n')) {
          if (line === '' || line.startsWith('--- pit: starting spew')) continue;
          const match = pattern.exec(line);
          expect(
            match,
            `${name}: a torn line: ${JSON.stringify(line.slice(0, 80))}`,
          ).not.toBeNull();
          numbers.push(Number(match![1]));
        }
      }
      return numbers;
    };
    const contiguous = (numbers: number[]) =>
      expect(numbers).toEqual(
        Array.from({ length: numbers.length }, (_, index) => numbers[0]! + index),
      );
    const numbers = await numbersIn('spew.log', /^n (\d+) y{40}$/);
    contiguous(numbers);
    expect(numbers.length * 50).toBeGreaterThan(maxBytes);
    expect(largest).toBeLessThan(bound);
    const errorNumbers = await numbersIn('spew.err.log', /^e (\d+) z{40}$/);
    contiguous(errorNumbers);
    expect(errorNumbers.length * 50).toBeGreaterThan(maxBytes);
    expect(largestErrors).toBeLessThan(bound);
    const last = numbers.at(-1)!;
    const lastError = errorNumbers.at(-1)!;

    // -f saw every line from where it began to the last one, in order, across the rotations:
    // stdout lines on its stdout, stderr lines on its stderr; --stderr: stderr lines only.
    await waitFor(
      () =>
        (follower.stdout().includes(`n ${last} `) &&
          follower.stderr().includes(`e ${lastError} `) &&
          errorFollower.stderr().includes(`e ${lastError} `)) ||
        undefined,
      30_000,
      'the followers reaching the last lines',
    );
    follower.kill('SIGTERM');
    errorFollower.kill('SIGTERM');
    const followedIn = (text: string, prefix: 'n' | 'e') =>
      text
        .split('\n')
        .filter((line) => line.startsWith(`${prefix} `))
        .map((line) => {
          expect(line).toMatch(prefix === 'n' ? /^n \d+ y{40}$/ : /^e \d+ z{40}$/);
          return Number(line.split(' ')[1]);
        });
    // In order and each line once; a gap only where it said it fell more than the kept files
    // behind (on 2 cores shared with the full-speed writer and other test files, CI saw that
    // happen: those lines are gone by design, and it warns).
    const followedOnce = (numbers: number[], stderr: string, file: string) => {
      const gaps = numbers.filter(
        (number, index) => index > 0 && number !== numbers[index - 1]! + 1,
      );
      for (const [index, number] of numbers.entries())
        if (index > 0)
          expect(number, 'a line printed twice or out of order').toBeGreaterThan(
            numbers[index - 1]!,
          );
      const warnings = stderr.split(`${file}: fell behind the rotation`).length - 1;
      expect(
        gaps.length,
        `gaps in what -f printed of ${file}, against its warnings`,
      ).toBeLessThanOrEqual(warnings);
    };
    const followed = followedIn(follower.stdout(), 'n');
    followedOnce(followed, follower.stderr(), 'spew.log');
    expect(followed.length * 50).toBeGreaterThan(2 * maxBytes);
    expect(followedIn(follower.stdout(), 'e')).toEqual([]);
    const followedErrors = followedIn(follower.stderr(), 'e');
    followedOnce(followedErrors, follower.stderr(), 'spew.err.log');
    expect(followedErrors.length * 50).toBeGreaterThan(maxBytes);
    const followedErrorsOnly = followedIn(errorFollower.stderr(), 'e');
    followedOnce(followedErrorsOnly, errorFollower.stderr(), 'spew.err.log');
    expect(followedErrorsOnly.length * 50).toBeGreaterThan(maxBytes);
    expect(errorFollower.stdout()).toBe('');
  }, 180_000); // longer than its own bounded waits (90 s of writing, 30 s for the followers …)

  it('without agent cgroups, leaves a running agent’s log to its next start and says so once', async () => {
    const writer = `const fs = require('node:fs'); for (let i = 0; i < 2000; i++) fs.writeSync(1, 'n ' + i + ' ' + 'y'.repeat(40) + '\\n'); setInterval(() => fs.writeSync(1, 'tick\\n'), 50);`;
    const { configPath, logs } = await setUp(writer, { maxBytes: 4096, keep: 3 }, [
      '[sandbox]',
      'agent_cgroups = "off"',
    ]);
    const daemon = spawnTsx(RUN_DAEMON, [configPath, '--stop-agents-on-exit']);
    const said = () => daemon.output().split('rotated only at its next start').length - 1;
    await waitFor(() => said() > 0 || undefined, 30_000, 'the daemon saying so');
    // It keeps checking (every 250 ms) while the log grows: still said once, and nothing rotated.
    const size = (await fs.stat(join(logs, 'spew.log'))).size;
    await waitFor(
      async () => (await fs.stat(join(logs, 'spew.log'))).size > size + 200 || undefined,
      10_000,
      'the log growing on',
    );
    daemon.kill('SIGTERM');
    await waitFor(() => daemon.exitCode !== null || undefined, 30_000, 'the daemon’s exit');
    expect(said()).toBe(1);
    expect(await fs.readdir(logs)).not.toContain('spew.log.1');
  });
});
