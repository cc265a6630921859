/**
 * #13 attacks 1–7 and 9 made by a real sandboxed agent (isolation level 2; level 3 too where
 * Podman works), from inside its sandbox, with a daemon supervising it and a victim agent
 * `forge` (level 1, a secret in its environment) in a second cell. The attacker `anvil` is a
 * shell script (it runs in the busybox image of level 3 as well) that tries, at its first run:
 * 1/2 rewriting its `cell.json` (a `home`, a `forge` entry) after planting `workspace/agent.js`,
 * 3 writing `.lazarus/state.json` and reading the other cell's, 4 replacing `logs/`,
 * `checkpoints/`, `bus/` and `.lazarus/resume` with symlinks to a directory outside the cell,
 * 5 writing `bus/tokens.json`, 6 planting a `2099-…` checkpoint, 7 forking three `setsid`
 * children, 9 running `pit sweep --once` on the fleet (level 2, where node is visible), and
 * escaping its cgroup (`/sys/fs/cgroup`, a cgroup namespace of its own). It writes what
 * succeeded to `workspace/report-<run>.txt`. Then the test SIGKILLs it and the daemon
 * restarts it. Asserted: every attempt failed; no file outside anvil's cell (a sentinel
 * directory, `/etc`, forge's cell) was created or changed; forge's secret reached no file of
 * anvil's; forge was never signalled (same pid, never revived) and nothing was started twice;
 * the first run's `setsid` children died with it.
 *
 * The attempts are refused by the kernel (read-only mounts, hidden paths, the pid namespace),
 * so the daemon never sees them and has nothing to report: what the daemon refuses once an
 * attack gets past the sandbox (a level-1 agent) is in the level-1 hostile-agent tests, which
 * assert the reported problems.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { podmanAvailable } from '@pit/daemon';
import { waitFor } from '@pit/test-kit';
import {
  cellEvents,
  cleanup,
  getStatus,
  liveAgents,
  makeFleet,
  MARKER_FLAG,
  startDaemon,
  stopDaemon,
} from './harness.js';

const SECRET = `forge-secret-${randomBytes(8).toString('hex')}`;
const CLI = resolve(import.meta.dirname, '../../apps/cli/dist/bin.js');
const CHILDREN = 3;

/**
 * The attacker. Positional parameters (after the marker flag and tag): its cell, the other
 * cell, the cells root, the sentinel directory outside, the CLI, the state dir.
 */
const ATTACK = String.raw`
flag=$1 tag=$2 cell=$3 other=$4 root=$5 outside=$6 cli=$7 state=$8
cd "$cell/workspace"
run=1; while [ -e "report-$run.txt" ]; do run=$((run + 1)); done
out="report-$run.tmp"
echo "run $run" > "$out"
try() { what=$1; shift; if ( "$@" ) > /dev/null 2>&1; then echo "SUCCEEDED $what" >> "$out"; else echo "refused $what" >> "$out"; fi; }
i=0; while [ $i -lt ${CHILDREN} ]; do setsid sh -c 'while :; do sleep 1; done' "leak-$tag-run$run" < /dev/null > /dev/null 2>&1 & i=$((i + 1)); done
if [ "$run" = 1 ]; then
  echo "require('fs').writeFileSync('stolen.txt', JSON.stringify(process.env))" > agent.js
  try "1 home in cell.json" sh -c "sed 's#\"name\"#\"home\": \"/etc\", \"name\"#' '$cell/cell.json' > /tmp/m && cat /tmp/m > '$cell/cell.json'"
  try "2 forge in cell.json" sh -c "echo '{\"name\":\"forge\"}' >> '$cell/cell.json'"
  try "1/2 replace cell.json" mv "$cell/cell.json" "$cell/cell.json.old"
  try "3 forged state.json" sh -c "echo '{\"agents\":{\"anvil\":{\"pid\":1}}}' > '$cell/.lazarus/state.json'"
  try "3 read the other cell's state" cat "$other/.lazarus/state.json"
  try "3 list the other cell" sh -c "ls '$other' | grep -q cell.json"
  for dir in logs checkpoints bus; do
    try "4 $dir moved away" mv "$cell/$dir" "$cell/$dir.old"
    try "4 $dir symlinked" ln -s "$outside" "$cell/$dir.link"
  done
  try "4 .lazarus/resume symlinked" ln -sfn "$outside" "$cell/.lazarus/resume"
  try "4 write outside" sh -c "echo x > '$outside/planted.txt'"
  try "4 change outside" sh -c "echo x >> '$outside/sentinel.txt'"
  try "4 write /etc" sh -c "echo x > /etc/pit-escape-$run"
  try "4 write the other cell" sh -c "echo x >> '$other/cell.json'"
  try "5 bus tokens" sh -c "echo '{}' > '$cell/bus/tokens.json'"
  try "5 bus participant" sh -c "echo '{\"type\":\"participant\",\"role\":\"lead\"}' >> '$cell/bus/log.jsonl'"
  try "6 planted checkpoint" sh -c "echo x > '$cell/checkpoints/2099-01-01T00-00-00Z.tar.gz'"
  try "secret in /proc" sh -c "cat /proc/*/environ 2>/dev/null | grep -q PIT_FAULTS_FORGE_SECRET"
  cg=$(grep ' - cgroup2 ' /proc/self/mountinfo | awk '{ print $5; exit }')
  if [ -n "$cg" ]; then
    try "cgroup: join the root group" sh -c "echo \$\$ > '$cg/cgroup.procs'"
    try "cgroup: create a group" mkdir "$cg/pit-escape-$tag"
  fi
  try "cgroup: a namespace of its own" unshare --cgroup --mount sh -c 'mount -t cgroup2 none /tmp'
  if command -v node > /dev/null 2>&1 && [ -f "$cli" ]; then
    printf '[daemon]\nstate_dir = "%s"\n[cells]\nroot = "%s"\n[agents.forge]\nargv = ["/bin/sleep", "1000"]\n' "$state" "$root" > sweep.toml
    node "$cli" sweep --once --config sweep.toml > sweep.out 2>&1
    echo "sweep ran, exit $?" >> "$out"
  fi
fi
mv "$out" "report-$run.txt"
while :; do sleep 1; done
`;

/** Host pids whose command line contains `needle` (not zombies). */
async function processesWith(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes(needle)) continue;
    const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (stat && !/\) [ZX] /.test(stat)) pids.push(Number(entry));
  }
  return pids;
}

/** The attacker's own processes (`/bin/sh <attack script> …`), not the launcher or podman around it. */
async function attackers(script: string): Promise<number[]> {
  const pids: number[] = [];
  for (const pid of await processesWith(script)) {
    const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv[1] === script) pids.push(pid);
  }
  return pids;
}

/** Path → content of every file under `dir` (recursively; symlinks as `-> target`). */
async function tree(dir: string): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isSymbolicLink()) result.set(path, `-> ${await fs.readlink(path)}`);
    else if (entry.isFile()) result.set(path, await fs.readFile(path, 'utf8'));
    else if (entry.isDirectory()) result.set(path, '<dir>');
  }
  return result;
}

const podman = await podmanAvailable('podman', process.env);
const levels = [
  { level: 2, skip: process.getuid?.() !== 0 && !existsSync('/proc/self/ns/user'), why: '' },
  { level: 3, skip: !podman.ok, why: podman.ok ? podman.version : `skipped: ${podman.reason}` },
];

let outsideDir: string | undefined;
afterEach(async () => {
  if (outsideDir) await fs.rm(outsideDir, { recursive: true, force: true });
  outsideDir = undefined;
  delete process.env.PIT_FAULTS_FORGE_SECRET;
  await cleanup();
});

describe('hostile agent in a sandbox: attacks 1–7 and 9 from inside', () => {
  for (const { level, skip, why } of levels) {
    it.skipIf(skip)(
      `level ${level}${why ? ` (${why})` : ''}: every attempt fails, nothing outside the cell changes, no secret leaks, forge is never signalled`,
      async () => {
        process.env.PIT_FAULTS_FORGE_SECRET = SECRET;
        // Outside every cell and outside /tmp (which level 2 hides): visible, read-only, to the agent.
        outsideDir = join('/var/tmp', `pit-faults-outside-${randomBytes(6).toString('hex')}`);
        await fs.mkdir(outsideDir);
        await fs.writeFile(join(outsideDir, 'sentinel.txt'), 'sentinel\n');
        let script = '';
        const fleet = await makeFleet({
          agents: ['anvil', 'forge'],
          cells: 2,
          heartbeat: false,
          argv: { anvil: '["/bin/sh", "ATTACK", "ARGS"]' },
          agentExtra: {
            anvil: `isolation = ${level}`,
            forge: 'env_from = ["PIT_FAULTS_FORGE_SECRET"]',
          },
          extra: ['[policy.defaults]', 'backoff = { initial = "1s", factor = 1, cap = "1s" }'].join(
            '\n',
          ),
        });
        const [anvilCell, forgeCell] = fleet.cells;
        script = join(anvilCell!.dir, 'workspace', 'attack.sh');
        await fs.writeFile(script, ATTACK);
        const tag = `${fleet.marker}:anvil`;
        const args = [
          MARKER_FLAG,
          tag,
          anvilCell!.dir,
          forgeCell!.dir,
          fleet.root,
          outsideDir,
          CLI,
          fleet.stateDir,
        ];
        const config = (await fs.readFile(fleet.configPath, 'utf8')).replace(
          '"ATTACK", "ARGS"',
          [script, ...args].map((arg) => JSON.stringify(arg)).join(', '),
        );
        await fs.writeFile(fleet.configPath, config, { mode: 0o600 });
        const workspace = join(anvilCell!.dir, 'workspace');
        const before = {
          outside: await tree(outsideDir),
          forgeCell: await fs.readFile(join(forgeCell!.dir, 'cell.json'), 'utf8'),
          anvilCell: await fs.readFile(join(anvilCell!.dir, 'cell.json'), 'utf8'),
          etc: (await fs.readdir('/etc')).filter((name) => name.startsWith('pit-escape')),
          root: await fs.readdir(fleet.root),
        };
        const report = (run: number) =>
          waitFor(
            async () => {
              const text = await fs
                .readFile(join(workspace, `report-${run}.txt`), 'utf8')
                .catch(() => '');
              return text || undefined;
            },
            level === 3 ? 90_000 : 30_000,
            `anvil's report of run ${run}`,
          );
        const daemon = await startDaemon(fleet.configPath);
        try {
          const first = await report(1);
          const forgePid = await waitFor(
            async () =>
              (await getStatus(daemon.url)).agents.find((agent) => agent.agent === 'forge')?.pid,
            20_000,
            'forge running',
          );
          expect(first).not.toContain('SUCCEEDED');
          for (const attack of [
            '1 home in cell.json',
            '2 forge in cell.json',
            '3 forged state.json',
            '4 logs symlinked',
            '4 checkpoints symlinked',
            '4 bus symlinked',
            '4 .lazarus/resume symlinked',
            '5 bus tokens',
            '6 planted checkpoint',
            'cgroup: a namespace of its own',
          ])
            expect(first).toContain(`refused ${attack}`);
          // 9: a second supervisor inside the sandbox sees only its private view (asserted below: forge untouched, anvil revived once).
          if (level === 2) expect(first).toMatch(/sweep ran, exit \d+/);
          // 7: the first run's setsid children, then the agent SIGKILLed (its process group).
          await waitFor(
            async () => (await processesWith(`leak-${tag}-run1`)).length === CHILDREN,
            20_000,
            'the first run’s setsid children',
          );
          const [attacker] = await attackers(script);
          expect(attacker).toBeDefined();
          const status = (await getStatus(daemon.url)).agents.find((a) => a.agent === 'anvil');
          process.kill(-status!.pid!, 'SIGKILL');
          await report(2);
          await waitFor(
            async () =>
              (await processesWith(`leak-${tag}-run1`)).length === 0 &&
              (await processesWith(`leak-${tag}-run2`)).length === CHILDREN,
            20_000,
            'only the second run’s children alive',
          );
          expect(await attackers(script)).toHaveLength(1);
          // Nothing outside anvil's cell created or changed (the sweep inside wrote only its private /tmp); anvil's own manifest untouched.
          expect((await fs.readdir(fleet.root)).sort()).toEqual(
            [...before.root, '.pit-supervisor.lock'].sort(),
          );
          expect(await tree(outsideDir)).toEqual(before.outside);
          expect(await fs.readFile(join(forgeCell!.dir, 'cell.json'), 'utf8')).toBe(
            before.forgeCell,
          );
          expect(await fs.readFile(join(anvilCell!.dir, 'cell.json'), 'utf8')).toBe(
            before.anvilCell,
          );
          expect(
            (await fs.readdir('/etc')).filter((name) => name.startsWith('pit-escape')),
          ).toEqual(before.etc);
          for (const dir of ['logs', 'checkpoints', 'bus'])
            expect((await fs.lstat(join(anvilCell!.dir, dir))).isDirectory()).toBe(true);
          // No secret of forge reached anything anvil can read or wrote.
          expect(existsSync(join(workspace, 'stolen.txt'))).toBe(false);
          for (const [path, content] of await tree(workspace))
            expect(content, path).not.toContain(SECRET);
          // forge never signalled, never started again; anvil revived once, never twice alive.
          const after = await getStatus(daemon.url);
          expect(after.agents.find((agent) => agent.agent === 'forge')?.pid).toBe(forgePid);
          expect((await liveAgents(fleet.marker)).get('forge')).toEqual([forgePid]);
          const events = await cellEvents(forgeCell!.dir);
          expect(events.filter((event) => event.event === 'agent_revived')).toEqual([]);
          const revived = (await cellEvents(anvilCell!.dir)).filter(
            (event) => event.event === 'agent_revived',
          );
          expect(revived).toHaveLength(1);
        } catch (error) {
          const log = await fs
            .readFile(join(anvilCell!.dir, 'logs', 'anvil.log'), 'utf8')
            .catch(() => '');
          const sweep = await fs.readFile(join(workspace, 'sweep.out'), 'utf8').catch(() => '');
          const files = [...(await tree(workspace)).entries()].filter(([path]) =>
            path.includes('report'),
          );
          const procs = await Promise.all(
            (await processesWith(fleet.marker)).map(async (pid) =>
              (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8'))
                .replaceAll('\0', ' ')
                .slice(0, 200),
            ),
          );
          throw new Error(
            `${String(error)}\nanvil.log:\n${log.slice(-3000)}\nsweep.out:\n${sweep.slice(-2000)}\nreports: ${JSON.stringify(files)}\nprocesses:\n${procs.join('\n')}\ndaemon:\n${daemon.output().slice(-3000)}`,
          );
        } finally {
          await stopDaemon(daemon);
          if (level === 3)
            spawnSync(
              'podman',
              ['rm', '--force', '--ignore', `pit-anvil-${anvilCell!.uuid.slice(0, 8)}`],
              {
                env: {
                  ...process.env,
                  CONTAINERS_CONF: join(fleet.stateDir, 'podman', 'containers.conf'),
                },
              },
            );
          for (const pid of [...(await attackers(script)), ...(await processesWith(`leak-${tag}`))])
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // gone meanwhile
            }
        }
      },
      level === 3 ? 240_000 : 120_000,
    );
  }
});
