/**
 * #13, its last gap: a level-2 agent of a daemon running as root must not be uid 0 to the file
 * system. A user namespace made by root maps the agent's root to the host's root, so before the
 * fix it read every root-only file the sandbox did not hide. With a real root daemon and a real
 * level-2 agent (`[sandbox] uid`/`gid`, default 65534): a 0600 root file the test makes outside
 * the cell, and `/etc/shadow`, are unreadable to it (the attempts fail, the secret reaches no
 * file of the cell); it writes its workspace and its heartbeat (owned by the sandbox uid on the
 * host), the daemon's own files in the cell stay root's, and it is supervised as usual: healthy
 * on its heartbeats, SIGKILLed and revived once. Before the revive the daemon restores its own
 * newest checkpoint (`restore_checkpoint`): the restored workspace is written by the root daemon,
 * and the revived agent can still append to the restored files.
 *
 * Skipped where the daemon is not root (its agents are its own user already) or the machine has
 * no user namespaces.
 */
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
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

const SECRET = `root-only-${randomBytes(8).toString('hex')}`;
const UID = 65534;

/**
 * The agent (node, inline): each run appends to `data.txt` and `dir/nested.txt`, tries to read
 * the root-only file and `/etc/shadow`, writes `report-<run>.json`, then heartbeats every 200 ms
 * (written as the daemon's harnesses do: a temp file renamed over `<agent>.json`).
 */
const AGENT = String.raw`
const fs = require('node:fs');
const [secretPath, cell] = process.argv.slice(1);
const run = fs.readdirSync('.').filter((name) => /^report-\d+\.json$/.test(name)).length + 1;
const attempt = (action) => { try { return action() ?? 'ok'; } catch (error) { return error.code ?? String(error); } };
const report = {
  run,
  data: attempt(() => { fs.appendFileSync('data.txt', 'run ' + run + '\n'); }),
  nested: attempt(() => { fs.mkdirSync('dir', { recursive: true }); fs.appendFileSync('dir/nested.txt', 'run ' + run + '\n'); }),
  secret: attempt(() => fs.readFileSync(secretPath, 'utf8')),
  shadow: attempt(() => fs.readFileSync('/etc/shadow', 'utf8').slice(0, 0) || 'READ'),
};
fs.writeFileSync('report-' + run + '.tmp', JSON.stringify(report));
fs.renameSync('report-' + run + '.tmp', 'report-' + run + '.json');
let cycle = 0;
const beat = () => {
  const path = '../.lazarus/heartbeats/anvil.json';
  try {
    fs.writeFileSync(path + '.tmp', JSON.stringify({ agent: 'anvil', pid: process.pid, timestamp: Date.now() / 1000, cycle: cycle++, status: 'working', cell_uuid: cell }));
    fs.renameSync(path + '.tmp', path);
  } catch (error) {
    fs.writeFileSync('heartbeat-error-' + run + '.txt', String(error));
  }
};
beat();
setInterval(beat, 200);
`;

/**
 * The agent of the rollback test: each run opens its config file `agent.json` for writing
 * (without changing it: a changed file is not snapshotted), reports, and heartbeats.
 */
const CONFIG_AGENT = String.raw`
const fs = require('node:fs');
const [cell] = process.argv.slice(1);
const run = fs.readdirSync('.').filter((name) => /^report-\d+\.json$/.test(name)).length + 1;
let config = 'ok';
try { fs.closeSync(fs.openSync('agent.json', 'r+')); } catch (error) { config = error.code ?? String(error); }
fs.writeFileSync('report-' + run + '.tmp', JSON.stringify({ run, config }));
fs.renameSync('report-' + run + '.tmp', 'report-' + run + '.json');
let cycle = 0;
setInterval(() => {
  fs.writeFileSync('../.lazarus/heartbeats/anvil.json.tmp', JSON.stringify({ agent: 'anvil', pid: process.pid, timestamp: Date.now() / 1000, cycle: cycle++, status: 'working', cell_uuid: cell }));
  fs.renameSync('../.lazarus/heartbeats/anvil.json.tmp', '../.lazarus/heartbeats/anvil.json');
}, 200);
`;

interface Report {
  run: number;
  data: string;
  nested: string;
  secret: string;
  shadow: string;
}

const notRoot = process.getuid?.() !== 0;
const skip = notRoot || !existsSync('/proc/self/ns/user');

let outsideDir: string | undefined;
afterEach(async () => {
  if (outsideDir) await fs.rm(outsideDir, { recursive: true, force: true });
  outsideDir = undefined;
  await cleanup();
});

describe('hostile agent at level 2 of a root daemon: not root to the file system', () => {
  it.skipIf(skip)(
    `${skip ? `(skipped: ${notRoot ? 'the tests do not run as root, so the daemon’s level-2 agents are its own user already' : 'no user namespaces on this machine'}) ` : ''}reads no root-only file, writes its workspace and heartbeat as uid ${UID}, is revived after a SIGKILL, and writes the files a checkpoint restore put back`,
    async () => {
      // Outside every cell and outside /tmp (which level 2 hides): visible to the agent, read-only.
      outsideDir = join('/var/tmp', `pit-faults-root-only-${randomBytes(6).toString('hex')}`);
      await fs.mkdir(outsideDir, { mode: 0o755 });
      const secretPath = join(outsideDir, 'secret.txt');
      await fs.writeFile(secretPath, SECRET, { mode: 0o600 });
      await fs.chmod(secretPath, 0o600);
      const fleet = await makeFleet({
        agents: ['anvil'],
        heartbeat: true,
        argvOf: (_name, tag) =>
          JSON.stringify([process.execPath, '-e', AGENT, secretPath, 'CELL', MARKER_FLAG, tag]),
        agentExtra: { anvil: 'isolation = 2\nrestore_checkpoint = true' },
        extra: ['[policy.defaults]', 'backoff = { initial = "1s", factor = 1, cap = "1s" }'].join(
          '\n',
        ),
      });
      const config = (await fs.readFile(fleet.configPath, 'utf8'))
        .replace('"CELL"', JSON.stringify(fleet.uuid))
        .replace('[checkpoints]\ninterval_s = 0', '[checkpoints]\ninterval_s = 1');
      await fs.writeFile(fleet.configPath, config, { mode: 0o600 });
      const workspace = join(fleet.cellDir, 'workspace');
      const store = join(fleet.stateDir, 'checkpoints', fleet.uuid);
      const report = (run: number) =>
        waitFor(
          async () => {
            const text = await fs
              .readFile(join(workspace, `report-${run}.json`), 'utf8')
              .catch(() => '');
            return text ? (JSON.parse(text) as Report) : undefined;
          },
          30_000,
          `anvil's report of run ${run}`,
        );
      const healthy = (not?: number) =>
        waitFor(
          async () => {
            const status = (await getStatus(daemon.url)).agents.find((a) => a.agent === 'anvil');
            return status?.health === 'healthy' && status.pid !== undefined && status.pid !== not
              ? status.pid
              : undefined;
          },
          30_000,
          'anvil healthy on its heartbeats',
        );
      const daemon = await startDaemon(fleet.configPath);
      try {
        const first = await report(1);
        // Before the fix: the secret's text and 'READ' (the agent was root to the file system).
        expect(first).toEqual({
          run: 1,
          data: 'ok',
          nested: 'ok',
          secret: 'EACCES',
          shadow: 'EACCES',
        });
        const pid = await healthy();
        // What the agent wrote is the sandbox uid's on the host; the daemon's files stay root's.
        for (const path of ['data.txt', 'dir/nested.txt', 'report-1.json'])
          expect((await fs.lstat(join(workspace, path))).uid, path).toBe(UID);
        expect(
          (await fs.lstat(join(fleet.cellDir, '.lazarus', 'heartbeats', 'anvil.json'))).uid,
        ).toBe(UID);
        for (const path of ['cell.json', 'logs', 'logs/anvil.log', '.lazarus', 'checkpoints'])
          expect((await fs.lstat(join(fleet.cellDir, path))).uid, path).toBe(0);
        // A checkpoint of the daemon's taken after the first run's files existed.
        const since = Date.now();
        await waitFor(
          async () => {
            for (const name of await fs.readdir(store).catch(() => [] as string[])) {
              if (!name.endsWith('.json')) continue;
              const manifest = JSON.parse(await fs.readFile(join(store, name), 'utf8')) as {
                ts: string;
              };
              if (Date.parse(manifest.ts) > since + 100) return true;
            }
            return undefined;
          },
          30_000,
          'a checkpoint of the daemon’s with the first run’s files',
        );
        process.kill(-pid, 'SIGKILL');
        const restored = await waitFor(
          async () =>
            (await cellEvents(fleet.cellDir)).find(
              (event) => event.event === 'checkpoint_restored',
            ),
          30_000,
          'the restore before the revive',
        );
        expect(restored).toBeDefined();
        // The restored files (written by the root daemon) are still the agent's to write.
        const second = await report(2);
        expect(second).toEqual({
          run: 2,
          data: 'ok',
          nested: 'ok',
          secret: 'EACCES',
          shadow: 'EACCES',
        });
        expect(await fs.readFile(join(workspace, 'data.txt'), 'utf8')).toBe('run 1\nrun 2\n');
        expect(await fs.readFile(join(workspace, 'dir', 'nested.txt'), 'utf8')).toBe(
          'run 1\nrun 2\n',
        );
        await healthy(pid);
        const revived = (await cellEvents(fleet.cellDir)).filter(
          (event) => event.event === 'agent_revived',
        );
        expect(revived).toHaveLength(1);
        expect(existsSync(join(workspace, 'heartbeat-error-1.txt'))).toBe(false);
        expect(existsSync(join(workspace, 'heartbeat-error-2.txt'))).toBe(false);
        // The secret reached no file of the cell.
        for (const entry of await fs.readdir(fleet.cellDir, {
          withFileTypes: true,
          recursive: true,
        })) {
          if (!entry.isFile()) continue;
          const path = join(entry.parentPath, entry.name);
          if (path.endsWith('.tar.gz')) continue;
          expect(await fs.readFile(path, 'utf8'), path).not.toContain(SECRET);
        }
      } catch (error) {
        const log = await fs
          .readFile(join(fleet.cellDir, 'logs', 'anvil.log'), 'utf8')
          .catch(() => '');
        const errors = await fs
          .readFile(join(fleet.cellDir, 'logs', 'anvil.err.log'), 'utf8')
          .catch(() => '');
        throw new Error(
          `${String(error)}\nanvil.log:\n${log.slice(-2000)}\nanvil.err.log:\n${errors.slice(-2000)}\ndaemon:\n${daemon.output().slice(-3000)}`,
        );
      } finally {
        await stopDaemon(daemon);
      }
    },
    120_000,
  );
  it.skipIf(skip)(
    `${skip ? '(skipped: see above) ' : ''}writes its config file again after the daemon rolled it back to last known good`,
    async () => {
      const fleet = await makeFleet({
        agents: ['anvil'],
        heartbeat: true,
        argvOf: (_name, tag) =>
          JSON.stringify([process.execPath, '-e', CONFIG_AGENT, 'CELL', MARKER_FLAG, tag]),
        agentExtra: {
          anvil: 'isolation = 2\nconfig_files = [{ path = "workspace/agent.json" }]',
        },
        extra: ['[policy.defaults]', 'backoff = { initial = "1s", factor = 1, cap = "1s" }'].join(
          '\n',
        ),
      });
      await fs.writeFile(
        fleet.configPath,
        (await fs.readFile(fleet.configPath, 'utf8')).replace('"CELL"', JSON.stringify(fleet.uuid)),
        { mode: 0o600 },
      );
      const workspace = join(fleet.cellDir, 'workspace');
      const configFile = join(workspace, 'agent.json');
      await fs.writeFile(configFile, '{"model":"good"}\n');
      const report = (run: number) =>
        waitFor(
          async () => {
            const text = await fs
              .readFile(join(workspace, `report-${run}.json`), 'utf8')
              .catch(() => '');
            return text ? (JSON.parse(text) as { run: number; config: string }) : undefined;
          },
          30_000,
          `anvil's report of run ${run}`,
        );
      const daemon = await startDaemon(fleet.configPath);
      try {
        expect(await report(1)).toEqual({ run: 1, config: 'ok' });
        const pid = await waitFor(
          async () => {
            const status = (await getStatus(daemon.url)).agents.find((a) => a.agent === 'anvil');
            return status?.health === 'healthy' ? status.pid : undefined;
          },
          30_000,
          'anvil healthy',
        );
        await waitFor(
          () => daemon.output().includes('config snapshotted as last known good') || undefined,
          30_000,
          'the config snapshotted as last known good',
        );
        await fs.writeFile(configFile, '{"model": broken');
        process.kill(-pid!, 'SIGKILL');
        await waitFor(
          async () =>
            (await cellEvents(fleet.cellDir)).find((event) => event.event === 'config_rolled_back'),
          30_000,
          'config_rolled_back',
        );
        expect(await fs.readFile(configFile, 'utf8')).toBe('{"model":"good"}\n');
        // Rolled back by the root daemon (a new file), and still the agent's to write.
        expect(await report(2)).toEqual({ run: 2, config: 'ok' });
        expect((await fs.lstat(configFile)).uid).toBe(UID);
      } catch (error) {
        const errors = await fs
          .readFile(join(fleet.cellDir, 'logs', 'anvil.err.log'), 'utf8')
          .catch(() => '');
        throw new Error(
          `${String(error)}\nanvil.err.log:\n${errors.slice(-2000)}\ndaemon:\n${daemon.output().slice(-3000)}`,
        );
      } finally {
        await stopDaemon(daemon);
      }
    },
    120_000,
  );
});
