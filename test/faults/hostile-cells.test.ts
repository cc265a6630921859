/**
 * Hostile cells dropped into the cells root of a running daemon: a corrupt manifest, a heartbeat
 * symlinked to a file outside the root, a 100 MB (sparse) heartbeat, names with `../`, a cell dir
 * replaced by a file, a cell that is a symlink out of the root, a manifest flipping status every
 * 10 ms. The daemon reports them, keeps a healthy cell supervised, and touches nothing outside.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import { provisionCell, readManifest } from '@pit/cell-spec';
import { grant, updateMembers } from '@pit/daemon';
import {
  cleanup,
  delay,
  getStatus,
  liveAgents,
  makeFleet,
  MARKER_FLAG,
  startDaemon,
  stopDaemon,
} from './harness.js';

afterEach(cleanup);

const SECRET = 'the outside secret: never to be read by the daemon\n';

/** Names, sizes and times of everything under `dir` (recursively). */
async function inventory(dir: string): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  for (const entry of await fs.readdir(dir, { recursive: true })) {
    const stat = await fs.lstat(join(dir, entry));
    result.set(entry, `${stat.mode}:${stat.size}:${stat.mtimeMs}:${stat.atimeMs}:${stat.ctimeMs}`);
  }
  return result;
}

describe('hostile cells in the root of a running daemon', () => {
  it('reports each, keeps supervising the healthy cell, and never reads or writes outside the root', async () => {
    const fleet = await makeFleet({
      agents: ['keeper', 'victim'],
      // The victims in the hostile cells die again and again; the fleet brake would (by design) space
      // keeper's revive behind theirs. Off, so "undisturbed" is about the hostile input, not the brake.
      extra: '[policy.fleet_brake]\nenabled = false',
      // victim runs wherever a cell lists it: an idle process (no heartbeat of its own, so the planted ones stay).
      argv: {
        victim: `["${process.execPath}", "-e", "setInterval(() => {}, 1000)", "--", "${MARKER_FLAG}", "MARKER:victim"]`,
      },
    });
    // The victim's marker (makeFleet's marker is only known now).
    await fs.writeFile(
      fleet.configPath,
      (await fs.readFile(fleet.configPath, 'utf8')).replace(
        'MARKER:victim',
        `${fleet.marker}:victim`,
      ),
      { mode: 0o600 },
    );
    // The healthy cell lists only keeper (makeFleet listed both).
    const { updateManifest } = await import('@pit/cell-spec');
    await updateManifest(fleet.cellDir, (manifest) => {
      manifest.agents = manifest.agents.filter((agent) => agent.name === 'keeper');
    });

    // Outside the root: a secret with atime < mtime (under relatime any read would move atime), and a directory.
    const outside = join(fleet.base, 'outside');
    await fs.mkdir(join(outside, 'dir'), { recursive: true });
    const secret = join(outside, 'secret.txt');
    await fs.writeFile(secret, SECRET);
    const past = Date.now() / 1000 - 3600;
    await fs.utimes(secret, past - 600, past);
    await fs.writeFile(join(outside, 'dir', 'cell.json'), '{}');
    const outsideBefore = await inventory(outside);
    const baseEntriesBefore = (await fs.readdir(fleet.base)).sort();

    const daemon = await startDaemon(fleet.configPath);
    const keeperHealthy = (not?: number) =>
      waitFor(
        async () => {
          const agent = (await getStatus(daemon.url)).agents.find(
            (item) => item.agent === 'keeper',
          );
          return agent?.health === 'healthy' && agent.pid && agent.pid !== not
            ? agent.pid
            : undefined;
        },
        30_000,
        'keeper healthy',
      );
    const keeperPid = await keeperHealthy();

    // 1. A corrupt manifest.
    const corrupt = join(fleet.root, randomUUID());
    await fs.mkdir(corrupt);
    await fs.writeFile(join(corrupt, 'cell.json'), '{"uuid": "not even closed');
    // 2. A manifest whose uuid and agent names carry `../`.
    const dotdot = join(fleet.root, randomUUID());
    await fs.mkdir(dotdot);
    await fs.writeFile(
      join(dotdot, 'cell.json'),
      JSON.stringify({
        uuid: '../../outside',
        mission: 'evil',
        created_at: new Date().toISOString(),
        created_by: 'mallory',
        status: 'active',
        agents: [
          { name: '../../outside/secret', role: 'write', joined_at: new Date().toISOString() },
        ],
      }),
    );
    // 3. A cell dir that is a file, and one that is a symlink out of the root.
    const fileCell = join(fleet.root, randomUUID());
    await fs.writeFile(fileCell, 'not a directory');
    const linkCell = join(fleet.root, randomUUID());
    await fs.symlink(join(outside, 'dir'), linkCell);
    // 4. Cells where the configured victim runs: one with its heartbeat a symlink to the secret, one with a 100 MB heartbeat.
    const linked = await provisionCell(fleet.root, {
      mission: 'symlinked heartbeat',
      created_by: 'mallory',
      agents: [{ name: 'victim', role: 'write' }],
    });
    const huge = await provisionCell(fleet.root, {
      mission: 'huge heartbeat',
      created_by: 'mallory',
      agents: [{ name: 'victim', role: 'write' }],
    });
    // The operator let victim into them (`pit cell join`): its planted heartbeats are then read, and must be refused.
    for (const cell of [linked, huge])
      await updateMembers(
        fleet.stateDir,
        grant(cell.manifest.uuid, ['victim'], 'join', new Date()),
      );
    for (const cell of [linked, huge])
      await fs.mkdir(join(cell.dir, '.lazarus', 'heartbeats'), { recursive: true });
    await fs.symlink(secret, join(linked.dir, '.lazarus', 'heartbeats', 'victim.json'));
    const big = await fs.open(join(huge.dir, '.lazarus', 'heartbeats', 'victim.json'), 'w');
    await big.write('{"agent":"victim","pid":1,"timestamp":', 0);
    await big.truncate(100 * 1024 * 1024);
    await big.close();
    // 5. A manifest flipping active ⇄ frozen every 10 ms (atomic renames), listing the victim too.
    const flipper = await provisionCell(fleet.root, {
      mission: 'flipper',
      created_by: 'mallory',
      agents: [{ name: 'victim', role: 'write' }],
    });
    const manifest = await readManifest(flipper.dir);
    const versions = (['active', 'frozen'] as const).map((status) =>
      JSON.stringify({ ...manifest, status }, null, 2),
    );
    let flipping = true;
    let flips = 0;
    const flipLoop = (async () => {
      while (flipping) {
        const temp = join(flipper.dir, `.cell.json.${flips}.tmp`);
        await fs.writeFile(temp, versions[flips % 2]!);
        await fs.rename(temp, join(flipper.dir, 'cell.json'));
        flips++;
        await delay(10);
      }
    })();

    try {
      // Each is reported: the bad cells in /api/status problems, the bad heartbeats as failing probes / log lines.
      const problems = await waitFor(
        async () => {
          const status = await getStatus(daemon.url);
          const text = status.problems.join('\n');
          const reported = [corrupt, dotdot, fileCell, linkCell].every((dir) =>
            text.includes(dir.split('/').pop()!),
          );
          return reported ? status.problems : undefined;
        },
        30_000,
        'the corrupt and `../` manifests reported',
      );
      expect(problems.join('\n')).toContain('not valid JSON');
      expect(problems.join('\n')).toContain('agents.0.name: must match');
      // The planted heartbeats are refused, not followed or slurped (named in the victims' failing verdicts).
      const verdicts = await waitFor(
        () => {
          const lines = daemon
            .output()
            .split('\n')
            .filter((line) => line.includes('"agent health changed"'));
          const symlinked = lines.find(
            (line) =>
              line.includes(linked.manifest.uuid) && line.includes('is a symbolic link; refused'),
          );
          const oversized = lines.find(
            (line) => line.includes(huge.manifest.uuid) && line.includes('CELL_TOO_LARGE'),
          );
          return symlinked && oversized ? [symlinked, oversized] : undefined;
        },
        60_000,
        'both planted heartbeats refused',
      );
      expect(verdicts).toHaveLength(2);
      // Meanwhile the healthy cell is supervised as before: keeper is killed and revived.
      expect(
        (await getStatus(daemon.url)).agents.find((item) => item.agent === 'keeper')?.pid,
      ).toBe(keeperPid);
      process.kill(keeperPid, 'SIGKILL');
      const revived = await keeperHealthy(keeperPid).catch(async (error: unknown) => {
        const keeper = (await getStatus(daemon.url)).agents.find((item) => item.agent === 'keeper');
        throw new Error(`${String(error)}\nkeeper: ${JSON.stringify(keeper)}`);
      });
      expect((await liveAgents(fleet.marker)).get('keeper')).toEqual([revived]);
      expect(flips).toBeGreaterThan(50);
      // The daemon stays healthy and serves.
      expect((await fetch(`${daemon.url}/health`)).status).toBe(200);
    } finally {
      flipping = false;
      await flipLoop;
    }
    await stopDaemon(daemon);
    // Nothing outside the root was read, written or created.
    expect(await inventory(outside)).toEqual(outsideBefore); // before any read by this test: atime included
    expect(await fs.readFile(secret, 'utf8')).toBe(SECRET);
    expect((await fs.readdir(fleet.base)).sort()).toEqual(
      [...baseEntriesBefore, 'state']
        .filter((name, index, all) => all.indexOf(name) === index)
        .sort(),
    );
    // The atime check is meaningful: a read of the secret by this test does move its atime.
    await fs.utimes(secret, past - 600, past);
    const atime = (await fs.stat(secret)).atimeMs;
    await fs.readFile(secret);
    expect((await fs.stat(secret)).atimeMs).toBeGreaterThan(atime);
  });
});
