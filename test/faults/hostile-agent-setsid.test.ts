/**
 * Hostile agent, issue #13 point 7 (leaked descendants): an agent forks children that leave its
 * process group and session (`setsid`), so that killing the agent's group misses them. Every
 * restart of the agent takes them with it (found by the marks they inherited in
 * `/proc/<pid>/environ`), and after a daemon restart none of them is adopted as the agent — not
 * even when the agent itself died while no daemon ran, leaving only its setsid children with its
 * marks — and they are killed as leftovers. Level 1: at level 2 the agent's pid namespace already
 * dies with it, so the attack only works at level 1.
 *
 * Where the host gives the daemon agent cgroups (`[sandbox] agent_cgroups`, cgroup2), the agent
 * also leaves a child that execs with an empty environment (`env -i`), which no mark can find:
 * it goes with the agent's cgroup at every restart and at the start after a daemon restart.
 */
import { promises as fs } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { testAgentPath, waitFor } from '@pit/test-kit';
import {
  cleanup,
  getStatus,
  killDaemon,
  liveAgents,
  makeFleet,
  MARKER_FLAG,
  startDaemon,
  stopDaemon,
  type DaemonProcess,
  type Fleet,
} from './harness.js';

const markers: string[] = [];
afterEach(async () => {
  // The harness kills agents by their argv marker; the children carry theirs in another form.
  for (const marker of markers.splice(0))
    for (const kind of ['leak', 'clean'] as const)
      for (const pid of await leakedChildren(marker, kind)) process.kill(pid, 'SIGKILL');
  await cleanup();
});

const CHILDREN = 3;

/** The agent: fork three children in sessions of their own, then run the test agent. */
const leaker = (marker: string, tag: string) =>
  [
    `for i in ${Array.from({ length: CHILDREN }, (_, index) => index + 1).join(' ')}; do`,
    `  setsid /bin/sh -c 'while :; do sleep 1; done' leak-${marker} < /dev/null > /dev/null 2>&1 &`,
    'done',
    `setsid env -i /bin/sh -c 'while :; do sleep 1; done' clean-${marker} < /dev/null > /dev/null 2>&1 &`,
    `exec "${process.execPath}" "${testAgentPath}" ${MARKER_FLAG} ${tag}`,
  ].join('\n');

/** Live processes whose argv names them as leaked children of `marker`'s agent (`clean`: the `env -i` one). */
async function leakedChildren(marker: string, kind: 'leak' | 'clean' = 'leak'): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.split('\0').includes(`${kind}-${marker}`)) continue;
    const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (stat && !/\) [ZX] /.test(stat)) pids.push(Number(entry));
  }
  return pids.sort((a, b) => a - b);
}

/** The daemon reports the agent healthy with a pid other than `not`, running once; resolves with its pid. */
function healthyAgain(daemon: DaemonProcess, fleet: Fleet, what: string, not?: number) {
  return waitFor(
    async () => {
      const agent = (await getStatus(daemon.url)).agents.find((item) => item.agent === 'leaker');
      const live = (await liveAgents(fleet.marker)).get('leaker') ?? [];
      if (live.length > 1) throw new Error(`${what}: leaker runs twice: ${live.join(', ')}`);
      return agent?.health === 'healthy' && agent.pid !== not && live[0] === agent.pid
        ? agent.pid
        : undefined;
    },
    30_000,
    what,
  );
}

/**
 * Exactly the current start's children are alive (none of an earlier start's): resolves with
 * them. With agent cgroups, that holds for the child with an empty environment too.
 */
function onlyChildrenOf(fleet: Fleet, earlier: Set<number>, what: string, cgroups: boolean) {
  return waitFor(
    async () => {
      const children = await leakedChildren(fleet.marker);
      const clean = await leakedChildren(fleet.marker, 'clean');
      const cleanOk = !cgroups || (clean.length === 1 && !earlier.has(clean[0]!));
      return cleanOk && children.length === CHILDREN && children.every((pid) => !earlier.has(pid))
        ? [...children, ...(cgroups ? clean : [])]
        : undefined;
    },
    20_000,
    what,
  );
}

describe('hostile agent: setsid children', () => {
  it('go with the agent at every restart, and after a daemon restart none is adopted and all are killed as leftovers', async () => {
    const fleet = await makeFleet({
      agents: ['leaker'],
      argvOf: (_name, tag) =>
        JSON.stringify(['/bin/sh', '-c', leaker(tag.slice(0, tag.lastIndexOf(':')), tag)]),
      extra: [
        '[policy.defaults]',
        'backoff = { initial = "100ms", cap = "500ms", jitter = 0 }',
      ].join('\n'),
    });
    markers.push(fleet.marker);
    let daemon = await startDaemon(fleet.configPath);
    let pid = await healthyAgain(daemon, fleet, 'leaker healthy');
    // This host may or may not let the daemon make agent cgroups: the daemon says which.
    const cgroups = daemon.output().includes('agent cgroups on');
    const earlier = new Set<number>();
    let children = await onlyChildrenOf(fleet, earlier, 'its first children', cgroups);
    // Three kills of the agent: each time, its children go with it; only the new start's remain.
    for (let kill = 1; kill <= 3; kill++) {
      for (const child of children) earlier.add(child);
      process.kill(pid, 'SIGKILL');
      pid = await healthyAgain(daemon, fleet, `restarted after kill ${kill}`, pid);
      children = await onlyChildrenOf(
        fleet,
        earlier,
        `no leaked child after kill ${kill}`,
        cgroups,
      );
    }

    // The daemon dies, then the agent too: only its setsid children carry its marks now.
    await killDaemon(daemon);
    for (const child of children) earlier.add(child);
    process.kill(pid, 'SIGKILL');
    daemon = await startDaemon(fleet.configPath);
    const adopted = await healthyAgain(daemon, fleet, 'leaker started again, not adopted', pid);
    expect(earlier.has(adopted)).toBe(false);
    await onlyChildrenOf(
      fleet,
      earlier,
      'the children left before the daemon restart killed',
      cgroups,
    );
    const output = daemon.output();
    // With cgroups, the new start empties the agent's group first (before any scan of the marks).
    expect(output).toContain(
      cgroups
        ? 'killed the leftover processes of an agent (its cgroup)'
        : 'killed a leftover process of an agent',
    );
    expect(output).toContain(fleet.uuid);
    await stopDaemon(daemon);
  });
});
