import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { heartbeatPaddingFor } from './__fixtures__/children/content.js';
import {
  bundleChild,
  fixture,
  makeTempDir,
  reapChildren,
  removeTempDirs,
  seededRandom,
  signalGroup,
  spawnBundled,
  type Child,
} from './__fixtures__/helpers.js';
import { PitError } from './errors.js';
import { formatIssues } from './format-issues.js';
import {
  HEARTBEAT_MAX_BYTES,
  HeartbeatSchema,
  readHeartbeat,
  writeHeartbeat,
} from './heartbeat.js';
import { provisionCell } from './provision.js';

afterEach(async () => {
  await reapChildren();
  await removeTempDirs();
});

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (!PitError.is(error)) throw error;
    return { code: error.code, message: error.message };
  }
  throw new Error('expected a PitError, but the call succeeded');
}

async function newCell() {
  const root = await makeTempDir();
  const { dir, manifest } = await provisionCell(root, {
    mission: 'heartbeats',
    created_by: 'ops',
    agents: [{ name: 'forge', role: 'lead' }],
  });
  return { root, dir, uuid: manifest.uuid };
}

describe('HeartbeatSchema', () => {
  it('accepts a heartbeat from a Python harness and keeps its extra fields', async () => {
    const parsed = HeartbeatSchema.parse(await fixture('heartbeat.json'));
    expect(parsed).toMatchObject({
      agent: 'forge',
      cycle: 1842,
      harness: 'hermes-py 0.9.1',
      tokens_used: 1830211,
    });
  });

  it.each<[string, (beat: Record<string, unknown>) => void, RegExp]>([
    [
      'a timestamp in milliseconds as a string',
      (b) => void (b.timestamp = '1795338611482'),
      /timestamp: .*expected number/,
    ],
    ['a negative cycle', (b) => void (b.cycle = -1), /cycle: .*>=0/],
    ['a fractional pid', (b) => void (b.pid = 12.5), /pid: .*expected int/],
    ['a traversal agent name', (b) => void (b.agent = '../../etc'), /agent: must match/],
    ['a missing cell_uuid', (b) => void delete b.cell_uuid, /cell_uuid: .*expected string/],
    ['an empty status', (b) => void (b.status = ''), /status: .*>=1 characters/],
  ])('rejects %s, naming the field', async (_label, breakIt, expected) => {
    const beat = await fixture('heartbeat.json');
    breakIt(beat);
    const parsed = HeartbeatSchema.safeParse(beat);
    expect(parsed.success).toBe(false);
    expect(formatIssues(parsed.error!)).toMatch(expected);
  });
});

describe('writeHeartbeat and readHeartbeat', () => {
  it('round-trips a heartbeat, filling in pid and timestamp', async () => {
    const { dir, uuid } = await newCell();
    const before = Date.now() / 1000;
    const written = await writeHeartbeat(dir, {
      agent: 'forge',
      cell_uuid: uuid,
      cycle: 3,
      status: 'working',
      model: 'sonnet',
    });
    expect(written.pid).toBe(process.pid);
    expect(written.timestamp).toBeGreaterThanOrEqual(before - 1);
    expect(await readHeartbeat(dir, 'forge')).toEqual(written);
  });

  it('creates .lazarus/heartbeats when it is missing', async () => {
    const { dir, uuid } = await newCell();
    await rm(join(dir, '.lazarus'), { recursive: true });
    await writeHeartbeat(dir, { agent: 'forge', cell_uuid: uuid, cycle: 0, status: 'starting' });
    expect((await readHeartbeat(dir, 'forge')).status).toBe('starting');
  });

  it('says CELL_NOT_FOUND when an agent has not written a heartbeat yet', async () => {
    const { dir } = await newCell();
    expect(await failure(readHeartbeat(dir, 'allegro'))).toMatchObject({
      code: 'CELL_NOT_FOUND',
      message: expect.stringContaining('allegro.json'),
    });
  });

  it('refuses a traversal agent name before touching the disk', async () => {
    const { root, dir, uuid } = await newCell();
    const before = await readdir(root, { recursive: true });
    for (const agent of ['../../etc', '..', '../cell', 'a/b', '']) {
      expect(
        await failure(writeHeartbeat(dir, { agent, cell_uuid: uuid, cycle: 1, status: 'x' })),
      ).toMatchObject({ code: 'CELL_BAD_NAME' });
      expect(await failure(readHeartbeat(dir, agent))).toMatchObject({
        code: 'CELL_BAD_NAME',
        message: expect.stringContaining('must match'),
      });
    }
    expect(await readdir(root, { recursive: true })).toEqual(before);
  });

  it('refuses an invalid heartbeat with CELL_INVALID naming the file and field', async () => {
    const { dir, uuid } = await newCell();
    const { code, message } = await failure(
      writeHeartbeat(dir, { agent: 'forge', cell_uuid: uuid, cycle: -4, status: 'x' }),
    );
    expect(code).toBe('CELL_INVALID');
    expect(message).toMatch(/heartbeats\/forge\.json: heartbeat rejected: cycle:/);
  });

  it('refuses to write a heartbeat it could not read back (over 64 KiB)', async () => {
    const { dir, uuid } = await newCell();
    const { code } = await failure(
      writeHeartbeat(dir, {
        agent: 'forge',
        cell_uuid: uuid,
        cycle: 1,
        status: 'x',
        log: 'y'.repeat(HEARTBEAT_MAX_BYTES),
      }),
    );
    expect(code).toBe('CELL_TOO_LARGE');
  });

  it('refuses a 10 MB heartbeat with CELL_TOO_LARGE', async () => {
    const { dir } = await newCell();
    await writeFile(
      join(dir, '.lazarus/heartbeats/forge.json'),
      `{"agent":"forge","pad":"${'x'.repeat(10 * 1024 * 1024)}"}`,
    );
    const { code, message } = await failure(readHeartbeat(dir, 'forge'));
    expect(code).toBe('CELL_TOO_LARGE');
    expect(message).toMatch(/forge\.json: \d+ bytes exceeds the limit of 65536 bytes/);
  });

  it('refuses invalid JSON and wrong types, naming the file and field', async () => {
    const { dir } = await newCell();
    const path = join(dir, '.lazarus/heartbeats/forge.json');
    await writeFile(path, '{"agent":"forge","pid":');
    expect(await failure(readHeartbeat(dir, 'forge'))).toMatchObject({
      code: 'CELL_INVALID',
      message: expect.stringMatching(/forge\.json: not valid JSON/),
    });
    const beat = await fixture('heartbeat.json');
    beat.pid = 'forty-two';
    await writeFile(path, JSON.stringify(beat));
    expect(await failure(readHeartbeat(dir, 'forge'))).toMatchObject({
      code: 'CELL_INVALID',
      message: expect.stringMatching(/forge\.json: pid: .*expected number/),
    });
  });

  it('refuses a heartbeat symlinked to a secret outside the cell, and does not read it', async () => {
    const { root, dir } = await newCell();
    const shadow = join(root, 'shadow');
    await writeFile(shadow, 'root:$6$abc:19000:0:99999:7:::\n');
    await symlink(shadow, join(dir, '.lazarus/heartbeats/forge.json'));
    const { code, message } = await failure(readHeartbeat(dir, 'forge'));
    expect(code).toBe('CELL_UNSAFE_PATH');
    expect(message).toMatch(/forge\.json: .*symbolic link; refused/);
    expect(message).not.toContain('$6$');
  });

  it('replaces a planted symlink on write instead of writing through it', async () => {
    const { root, dir, uuid } = await newCell();
    const shadow = join(root, 'shadow');
    await writeFile(shadow, 'secret\n');
    await symlink(shadow, join(dir, '.lazarus/heartbeats/forge.json'));
    await writeHeartbeat(dir, { agent: 'forge', cell_uuid: uuid, cycle: 1, status: 'ok' });
    expect(await readFile(shadow, 'utf8')).toBe('secret\n');
    expect((await readHeartbeat(dir, 'forge')).cycle).toBe(1);
  });

  it('never writes or reads through a .lazarus directory symlinked outside the cell', async () => {
    const { root, dir, uuid } = await newCell();
    const outside = join(root, 'outside');
    await mkdir(join(outside, 'heartbeats'), { recursive: true });
    await writeFile(
      join(outside, 'heartbeats/forge.json'),
      JSON.stringify(await fixture('heartbeat.json')),
    );
    await rm(join(dir, '.lazarus'), { recursive: true });
    await symlink(outside, join(dir, '.lazarus'));
    expect(
      await failure(
        writeHeartbeat(dir, { agent: 'allegro', cell_uuid: uuid, cycle: 1, status: 'ok' }),
      ),
    ).toMatchObject({
      code: 'CELL_UNSAFE_PATH',
      message: expect.stringMatching(/\.lazarus is a symbolic link; refused/),
    });
    expect(existsSync(join(outside, 'heartbeats/allegro.json'))).toBe(false);
    expect((await failure(readHeartbeat(dir, 'forge'))).code).toBe('CELL_UNSAFE_PATH');
  });

  it('refuses a heartbeats directory that is a file', async () => {
    const { dir, uuid } = await newCell();
    await rm(join(dir, '.lazarus/heartbeats'), { recursive: true });
    await writeFile(join(dir, '.lazarus/heartbeats'), 'not a dir');
    expect(
      await failure(
        writeHeartbeat(dir, { agent: 'forge', cell_uuid: uuid, cycle: 1, status: 'ok' }),
      ),
    ).toMatchObject({
      code: 'CELL_UNSAFE_PATH',
      message: expect.stringMatching(/heartbeats is not a directory; refused/),
    });
  });

  it('refuses a cell dir that is a file', async () => {
    const root = await makeTempDir();
    await writeFile(join(root, 'cell'), 'x');
    expect((await failure(readHeartbeat(join(root, 'cell'), 'forge'))).code).toBe(
      'CELL_NOT_A_CELL',
    );
    expect(
      (
        await failure(
          writeHeartbeat(join(root, 'cell'), {
            agent: 'forge',
            cell_uuid: '3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b',
            cycle: 1,
            status: 'x',
          }),
        )
      ).code,
    ).toBe('CELL_NOT_A_CELL');
  });

  it('after a good read, still refuses links swapped in anywhere on the path (the fast path asks the kernel where the open file is)', async () => {
    const { root, dir, uuid } = await newCell();
    await writeHeartbeat(dir, { agent: 'forge', cell_uuid: uuid, cycle: 1, status: 'ok' });
    expect((await readHeartbeat(dir, 'forge')).cycle).toBe(1);
    expect((await readHeartbeat(dir, 'forge')).cycle).toBe(1);
    const outside = join(root, 'outside');
    await mkdir(join(outside, 'heartbeats'), { recursive: true });
    await writeFile(
      join(outside, 'heartbeats/forge.json'),
      JSON.stringify({ ...(await fixture('heartbeat.json')), cycle: 666 }),
    );
    // The heartbeats directory swapped for a link outside the cell.
    await rm(join(dir, '.lazarus/heartbeats'), { recursive: true });
    await symlink(join(outside, 'heartbeats'), join(dir, '.lazarus/heartbeats'));
    expect(await failure(readHeartbeat(dir, 'forge'))).toMatchObject({
      code: 'CELL_UNSAFE_PATH',
      message: expect.stringMatching(/heartbeats is a symbolic link; refused/),
    });
    // The cell directory itself swapped for a link to a lookalike cell.
    await rm(join(dir, '.lazarus/heartbeats'));
    await mkdir(join(dir, '.lazarus/heartbeats'));
    await writeHeartbeat(dir, { agent: 'forge', cell_uuid: uuid, cycle: 2, status: 'ok' });
    expect((await readHeartbeat(dir, 'forge')).cycle).toBe(2);
    const lookalike = join(root, 'lookalike');
    await mkdir(join(lookalike, '.lazarus/heartbeats'), { recursive: true });
    await writeFile(
      join(lookalike, '.lazarus/heartbeats/forge.json'),
      JSON.stringify({ ...(await fixture('heartbeat.json')), cycle: 666 }),
    );
    await rm(dir, { recursive: true });
    await symlink(lookalike, dir);
    expect((await failure(readHeartbeat(dir, 'forge'))).code).toBe('CELL_UNSAFE_PATH');
    // The file itself swapped for a link.
    await rm(dir);
    const again = await provisionCell(root, {
      mission: 'heartbeats',
      created_by: 'ops',
      agents: [{ name: 'forge', role: 'lead' }],
    });
    await writeHeartbeat(again.dir, {
      agent: 'forge',
      cell_uuid: again.manifest.uuid,
      cycle: 3,
      status: 'ok',
    });
    expect((await readHeartbeat(again.dir, 'forge')).cycle).toBe(3);
    await rm(join(again.dir, '.lazarus/heartbeats/forge.json'));
    await symlink(
      join(outside, 'heartbeats/forge.json'),
      join(again.dir, '.lazarus/heartbeats/forge.json'),
    );
    expect((await failure(readHeartbeat(again.dir, 'forge'))).code).toBe('CELL_UNSAFE_PATH');
  });

  it('reads a whole cell at once on first sight: every agent gets its own beat or its own error', async () => {
    const { root, dir, uuid } = await newCell();
    const names = Array.from({ length: 40 }, (_, index) => `agent-${index}`);
    for (const [index, agent] of names.entries())
      if (index % 10 !== 3 && index !== 7)
        await writeHeartbeat(dir, { agent, cell_uuid: uuid, cycle: index, status: 'working' });
    const shadow = join(root, 'shadow');
    await writeFile(shadow, 'root:$6$abc:19000:0:99999:7:::\n');
    await symlink(shadow, join(dir, '.lazarus/heartbeats/agent-7.json'));
    // Concurrent first reads of one cell (a daemon's start, `pit sweep --once`).
    const results = await Promise.all(
      names.map((agent) =>
        readHeartbeat(dir, agent).then(
          (beat) => ({ cycle: beat.cycle }),
          (error: unknown) => ({ code: PitError.is(error) ? error.code : String(error) }),
        ),
      ),
    );
    for (const [index, result] of results.entries()) {
      if (index === 7) expect(result).toEqual({ code: 'CELL_UNSAFE_PATH' });
      else if (index % 10 === 3) expect(result).toEqual({ code: 'CELL_NOT_FOUND' });
      else expect(result).toEqual({ cycle: index });
    }
  });

  it('refuses a FIFO planted as a heartbeat without hanging', async () => {
    const { dir } = await newCell();
    execFileSync('mkfifo', [join(dir, '.lazarus/heartbeats/forge.json')]);
    expect(await failure(readHeartbeat(dir, 'forge'))).toMatchObject({
      code: 'CELL_UNSAFE_PATH',
      message: expect.stringMatching(/expected a regular file, found a FIFO/),
    });
  });
});

describe('writeHeartbeat under SIGKILL', () => {
  it('always leaves the old or the new valid heartbeat', async () => {
    const { dir, uuid } = await newCell();
    const writer = await bundleChild('heartbeat-writer.ts');
    const write = (cycle: number) =>
      writeHeartbeat(dir, {
        agent: 'forge',
        cell_uuid: uuid,
        cycle,
        status: `cycle ${cycle}`,
        padding: heartbeatPaddingFor(cycle),
      });
    await write(0);
    let confirmed = 0;
    const random = seededRandom(0xbea7);
    const kills = 100;
    let killedBeforeReport = 0;
    let next: Child = spawnBundled(writer, [dir, uuid]);
    for (let round = 0; round < kills; round += 1) {
      const current = next;
      await current.waitForLine((line) => line === 'ready');
      // Start the next writer now, so its start-up overlaps this one's run.
      if (round + 1 < kills) next = spawnBundled(writer, [dir, uuid]);
      current.send(`go ${confirmed + 1}`);
      // The seeded schedule: kill after 0–20 completed writes, then 0–2 ms into the next one.
      const completed = Math.floor(random() * 21);
      if (completed > 0)
        await current.waitForLine((line) => line === `cycle ${confirmed + completed}`);
      await new Promise((resolve) => setTimeout(resolve, random() * 2));
      signalGroup(current, 'SIGKILL');
      const { signal } = await current.exited;
      expect(signal).toBe('SIGKILL');
      const reported = current.lines
        .filter((line) => line.startsWith('cycle '))
        .map((line) => Number(line.slice(6)));
      const lastReported = Math.max(confirmed, ...reported);
      const onDisk = await readHeartbeat(dir, 'forge');
      expect([lastReported, lastReported + 1]).toContain(onDisk.cycle);
      expect(onDisk.status).toBe(`cycle ${onDisk.cycle}`);
      expect(onDisk.padding).toBe(heartbeatPaddingFor(onDisk.cycle));
      if (onDisk.cycle === lastReported + 1) killedBeforeReport += 1;
      confirmed = onDisk.cycle;
    }
    // The next write removes the temp files the killed writers left behind.
    await write(confirmed + 1);
    const leftovers = (await readdir(join(dir, '.lazarus/heartbeats'))).filter((name) =>
      name.endsWith('.tmp'),
    );
    expect(leftovers).toEqual([]);
    // Some kills land between the rename and the report: the new content is what survives.
    expect(killedBeforeReport).toBeGreaterThan(0);
  }, 180_000);
});
