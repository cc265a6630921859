/**
 * Attack #13.1 (host paths re-exposed): the `home` of a level-2 agent in its cell's `cell.json`
 * is set to a host directory the sandbox hides, then to another agent's home, and the agent
 * exits to be restarted. At level 2 the agent cannot write `cell.json` itself any more (see
 * hostile-agent-writes), so the test writes it as a level-1 agent of the same cell (or a
 * manifest written before the upgrade) would. After each restart the agent reads neither
 * directory; its own home (configured, under `[sandbox] home_roots`) stays readable; the daemon
 * reports a problem naming the cell and the refused `home`.
 */
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { updateManifest } from '@pit/cell-spec';
import { waitFor } from '@pit/test-kit';
import {
  cellEvents,
  cleanup,
  getStatus,
  makeFleet,
  MARKER_FLAG,
  startDaemon,
  stopDaemon,
} from './harness.js';

/** Each run: reports what it can read into workspace/report-<n>.json, then exits once go-<n> exists. */
const PROBE = String.raw`
const fs = require('node:fs');
const [hostSecret, forgeSecret, ownSecret] = process.argv.slice(2, 5);
const run = fs.readdirSync('.').filter((name) => name.startsWith('report-')).length + 1;
const read = (path) => { try { return fs.readFileSync(path, 'utf8'); } catch (error) { return error.code; } };
fs.writeFileSync('report-' + run + '.json', JSON.stringify({ host: read(hostSecret), forge: read(forgeSecret), own: read(ownSecret) }));
const timer = setInterval(() => { if (fs.existsSync('go-' + run)) process.exit(1); }, 50);
`;

let varTmp: string | undefined;

afterEach(async () => {
  if (varTmp) await fs.rm(varTmp, { recursive: true, force: true });
  varTmp = undefined;
  await cleanup();
});

describe('hostile agent: home in cell.json', () => {
  it.skipIf(process.getuid?.() !== 0 && !existsSync('/proc/self/ns/user'))(
    'exposes neither a host directory nor another agent’s home named in cell.json, and reports the cell and the home',
    async () => {
      // Homes outside /tmp (which level 2 hides anyway): /var/tmp is visible read-only unless hidden.
      varTmp = join('/var/tmp', `pit-faults-homes-${randomBytes(6).toString('hex')}`);
      const homes = join(varTmp, 'homes');
      for (const name of ['anvil', 'forge']) {
        await fs.mkdir(join(homes, name), { recursive: true });
        await fs.writeFile(join(homes, name, 'secret.txt'), `${name}-home-secret`);
      }
      const fleet = await makeFleet({
        agents: ['anvil'],
        heartbeat: false,
        argvOf: (_name, tag) =>
          `["${process.execPath}", "PROBE", "HOST", "FORGE", "OWN", "${MARKER_FLAG}", "${tag}"]`,
        agentExtra: { anvil: `isolation = 2\nhome = "${join(homes, 'anvil')}"` },
        extra: [
          '[policy.defaults]',
          'backoff = { initial = "1s", factor = 1, cap = "1s" }',
          '[sandbox]',
          `home_roots = ["${homes}"]`,
          '[agents.forge]',
          `home = "${join(homes, 'forge')}"`,
          '[agents.forge.probes]',
          'heartbeat = false',
        ].join('\n'),
      });
      const hostDir = join(fleet.base, 'host-secrets');
      await fs.mkdir(hostDir);
      await fs.writeFile(join(hostDir, 'secret.txt'), 'host-secret');
      // Level 2 hides /tmp (where the fleet lives): the program sits where the sandbox shows it.
      await fs.writeFile(join(varTmp, 'probe.js'), PROBE);
      // The argv placeholders become the three files to read.
      const config = (await fs.readFile(fleet.configPath, 'utf8'))
        .replace('"PROBE"', JSON.stringify(join(varTmp, 'probe.js')))
        .replace('"HOST"', JSON.stringify(join(hostDir, 'secret.txt')))
        .replace('"FORGE"', JSON.stringify(join(homes, 'forge', 'secret.txt')))
        .replace('"OWN"', JSON.stringify(join(homes, 'anvil', 'secret.txt')));
      await fs.writeFile(fleet.configPath, config, { mode: 0o600 });
      const workspace = join(fleet.cellDir, 'workspace');
      const report = (run: number) =>
        waitFor(
          async () => {
            const text = await fs
              .readFile(join(workspace, `report-${run}.json`), 'utf8')
              .catch(() => '');
            return text ? (JSON.parse(text) as Record<string, string>) : undefined;
          },
          30_000,
          `anvil's run ${run}`,
        );
      const setHome = async (home: string) => {
        await updateManifest(fleet.cellDir, (manifest) => {
          manifest.agents = manifest.agents.map((agent) => ({ ...agent, home }));
        });
      };
      const daemon = await startDaemon(fleet.configPath);
      try {
        expect(await report(1)).toEqual({
          host: 'ENOENT',
          forge: 'ENOENT',
          own: 'anvil-home-secret',
        });
        for (const [run, home] of [
          [2, hostDir],
          [3, join(homes, 'forge')],
        ] as const) {
          await setHome(home);
          await waitFor(
            async () =>
              (await getStatus(daemon.url)).problems.some(
                (problem) =>
                  problem.includes(fleet.cellDir) && problem.includes(JSON.stringify(home)),
              ),
            20_000,
            `a problem naming the cell and ${home}`,
          );
          await fs.writeFile(join(workspace, `go-${run - 1}`), '');
          expect(await report(run)).toEqual({
            host: 'ENOENT',
            forge: 'ENOENT',
            own: 'anvil-home-secret',
          });
        }
        const refused = (await cellEvents(fleet.cellDir)).filter(
          (event) => event.event === 'manifest_refused' && event.field === 'home',
        );
        expect(refused).toHaveLength(1);
        expect(refused[0]).toMatchObject({ agent: 'anvil' });
      } catch (error) {
        const log = await fs
          .readFile(join(fleet.cellDir, 'logs', 'anvil.log'), 'utf8')
          .catch(() => '');
        throw new Error(
          `${String(error)}\nanvil.log:\n${log.slice(-3000)}\ndaemon:\n${daemon.output().slice(-3000)}`,
        );
      } finally {
        await stopDaemon(daemon);
      }
    },
    120_000,
  );
});
