import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  makeTempDir,
  PACKAGE_DIR,
  reapChildren,
  removeTempDirs,
  spawnChild,
} from './__fixtures__/helpers.js';
import { writeHeartbeat } from './heartbeat.js';
import { provisionCell } from './provision.js';
import { writeCellState } from './state.js';

afterEach(async () => {
  await reapChildren();
  await removeTempDirs();
});

/** Runs the `pit-cell` bin from source, as a harness author would run the built one. */
async function pitCell(
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnChild(join(PACKAGE_DIR, 'src/cli.ts'), args);
  const { code } = await child.exited;
  return { code, stdout: child.lines.join('\n'), stderr: child.stderr() };
}

async function goodCell() {
  const root = await makeTempDir();
  const { dir, manifest } = await provisionCell(root, {
    mission: 'validate me',
    created_by: 'ops',
    agents: [{ name: 'forge', role: 'lead' }],
  });
  await writeHeartbeat(dir, {
    agent: 'forge',
    cell_uuid: manifest.uuid,
    cycle: 1,
    status: 'working',
  });
  await writeCellState(dir, {
    version: 1,
    updated_at: '2026-11-22T10:00:00.000Z',
    agents: { forge: { health: 'healthy', revive_attempts: 0, restarts: [] } },
  });
  return { root, dir, uuid: manifest.uuid };
}

describe('pit-cell', () => {
  it('validates a good cell (exit 0), reports a broken one (exit 1, every problem printed), and lists a root', async () => {
    const good = await goodCell();
    const broken = await goodCell();
    await writeFile(
      join(broken.dir, '.lazarus/heartbeats/allegro.json'),
      '{"agent":"allegro","pid":',
    );
    await writeFile(
      join(broken.dir, '.lazarus/heartbeats/forge.json'),
      JSON.stringify({
        agent: 'forge',
        pid: 1,
        timestamp: 1,
        cycle: 1,
        status: 'x',
        cell_uuid: good.uuid,
      }),
    );
    await appendFile(
      join(broken.dir, 'logs/events.jsonl'),
      '{"ts":"2026-11-22T10:00:00.000Z","event":"budget_exceeded"}\n{"ts":"2026-11-22T10:00:01.000Z","event":"agent_de',
    );
    await rm(join(broken.dir, 'checkpoints'), { recursive: true });
    await mkdir(join(good.root, 'stray'));
    const [valid, invalid, listed, file] = await Promise.all([
      pitCell('validate', good.dir),
      pitCell('validate', broken.dir),
      pitCell('discover', good.root),
      pitCell('validate', join(broken.dir, 'cell.json')),
    ]);
    expect(valid).toMatchObject({ code: 0, stdout: `${good.dir}: valid` });

    expect(invalid.code).toBe(1);
    expect(invalid.stdout).toContain(
      `problem\t${join(broken.dir, '.lazarus/heartbeats/allegro.json')}: not valid JSON`,
    );
    expect(invalid.stdout).toContain(
      `problem\t${join(broken.dir, '.lazarus/heartbeats/forge.json')}: cell_uuid: ${good.uuid} is not this cell (${broken.uuid})`,
    );
    expect(invalid.stdout).toContain(
      `problem\t${join(broken.dir, 'logs/events.jsonl')}:5: torn last line`,
    );
    expect(invalid.stdout).toContain(
      `problem\t${join(broken.dir, 'checkpoints')}: missing; expected a directory`,
    );
    expect(invalid.stdout).toContain('note\t');
    expect(invalid.stdout).toContain('budget_exceeded unknown to this version (kept)');
    expect(invalid.stdout).toContain(`${broken.dir}: 4 problem(s)`);

    expect(listed.code).toBe(1);
    expect(listed.stdout).toContain(`cell\t${good.uuid}\tactive\tvalidate me`);
    expect(listed.stdout).toContain(`problem\tbad_dirname\t${join(good.root, 'stray')}\t`);

    expect(file.code).toBe(1);
    expect(file.stdout).toMatch(/cell\.json: expected a cell directory, found a file/);
  }, 60_000);

  it('exits 2 with usage for a missing or unknown command', async () => {
    const [none, unknown] = await Promise.all([pitCell(), pitCell('frobnicate', '/tmp')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: pit-cell validate DIR');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command frobnicate');
  }, 60_000);
});
