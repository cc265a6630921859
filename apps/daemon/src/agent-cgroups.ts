/**
 * Agent cgroups: one cgroup2 group per agent (levels 1 and 2; level 3 has Podman's), so that
 * everything an agent forks — including children that left its session with `setsid` and exec'd
 * with a cleaned environment, which the marks in `/proc/*\/environ` cannot find — goes with it.
 * Owns detecting whether the host allows it (`[sandbox] agent_cgroups`: a writable cgroup2
 * directory under the daemon's own group, or the one configured), the deterministic path of an
 * agent's group (`<parent>/<instance>/<cell or host>.<agent>`: a restarted daemon finds it
 * again), a start run in the agent's group (the spawn joins it: agent-spawn.ts), and killing a
 * group (`cgroup.kill`, or freeze and SIGKILL every pid on kernels without it) and removing it,
 * and, at start, removing the empty directories other (dead) daemon instances left under the
 * parent. Also freezing a group for a moment (a running agent's log rotated under it), and
 * thawing every group at the daemon's start (a crash in that moment must not leave an agent frozen).
 * Operations on one agent's group run one after another, in the order they were asked for.
 * Never decides when an agent starts or stops: the executor calls it.
 */
import { constants, mkdirSync, readFileSync, rmdirSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { JOIN_SHELL } from './agent-spawn.js';
import { favorDynmods } from './cgroup-favordynmods.js';
import type { Logger } from './logger.js';

/** `statfs(2)` type of a cgroup2 file system. */
const CGROUP2_SUPER_MAGIC = 0x63677270;
/** How long a killed group may take to empty (ms). */
const EMPTY_TIMEOUT_MS = 5_000;
const EMPTY_POLL_MS = 5;

/** The agent cgroups of one daemon instance. */
export interface AgentCgroups {
  /** `<parent>/<instance>`: the groups of this daemon's agents are its children. */
  readonly root: string;
  /** `cgroup.kill` (kernel ≥ 5.14), or freeze and SIGKILL each pid. */
  readonly killBy: 'cgroup.kill' | 'freeze';
  /** The agent's group (deterministic: the same for every daemon on the same state directory). */
  pathOf(cell: string | undefined, agent: string): string;
  /**
   * Kills what is left in the agent's group (a previous start's descendants), creates it when
   * missing, and runs `start` with the group's `cgroup.procs` (which the new process joins before
   * it execs: agent-spawn.ts), in turn with the group's other operations: no release or freeze of
   * the group runs while the process is being put in it.
   */
  startIn<T>(
    cell: string | undefined,
    agent: string,
    start: (cgroupProcs: string) => Promise<T>,
  ): Promise<T>;
  /**
   * Runs `work` with the agent's group frozen (`cgroup.freeze`), once the kernel says every
   * process in it is (`frozen 1` in `cgroup.events`, waited for with a bound), then thaws it,
   * whatever `work` did. In turn with the group's other operations (a start waits for it).
   * @returns `undefined` without running `work` when the group is missing or did not freeze in time.
   */
  whileFrozen<T>(
    cell: string | undefined,
    agent: string,
    work: () => Promise<T>,
  ): Promise<T | undefined>;
  /** Kills everything in the agent's group and removes it. @returns how many processes were in it */
  release(cell: string | undefined, agent: string): Promise<number>;
  /** Waits for the operations asked for, then removes this instance's directory when no agent group is left in it. */
  close(): Promise<void>;
}

/** Options of {@link detectAgentCgroups}. */
export interface DetectAgentCgroupsOptions {
  /** `[sandbox] agent_cgroups`: `auto`, `off`, or an absolute cgroup2 directory to create groups under. */
  setting: string;
  /** The daemon instance (a hash of its state directory). */
  instance: string;
  logger: Logger;
  /** `[sandbox] cgroup_favordynmods`: set the option on the cgroup2 mount (cgroup-favordynmods.ts). @default false */
  favorDynmods?: boolean;
  /**
   * Another instance's empty groups are removed only when none of them (nor the instance
   * directory) was made in the last this many ms (see {@link pruneEmptyInstances}).
   * @default PRUNE_MIN_AGE_MS
   */
  pruneMinAgeMs?: number;
}

/**
 * A group younger than this (ms) may belong to a live daemon that has just made it for a start
 * (the agent's shell joins it a moment later): its instance is not pruned.
 */
export const PRUNE_MIN_AGE_MS = 60_000;

/**
 * Finds where agent cgroups can be made, says so in the log (or why not, falling back to the
 * marks), and returns them, or `undefined` when they are off or unavailable.
 */
export async function detectAgentCgroups(
  options: DetectAgentCgroupsOptions,
): Promise<AgentCgroups | undefined> {
  const { setting, instance, logger } = options;
  if (setting === 'off') {
    logger.info('agent cgroups off; an agent’s descendants are found by their marks', {
      setting: 'agent_cgroups = "off"',
    });
    return undefined;
  }
  const parent = setting === 'auto' ? await defaultParent() : setting;
  const problem =
    parent === undefined
      ? 'no cgroup2 file system is mounted (or the daemon’s own group is unknown)'
      : await unusable(parent, instance);
  if (parent === undefined || problem !== undefined) {
    logger.warn('agent cgroups unavailable; an agent’s descendants are found by their marks', {
      setting: `agent_cgroups = ${JSON.stringify(setting)}`,
      ...(parent !== undefined ? { parent } : {}),
      reason: problem,
      consequence:
        'a descendant that execs with a cleaned environment escapes the leftover sweep and survives restarts',
    });
    return undefined;
  }
  const root = join(parent, instance);
  const pruned = await pruneEmptyInstances(
    parent,
    instance,
    options.pruneMinAgeMs ?? PRUNE_MIN_AGE_MS,
  );
  if (pruned.length > 0)
    logger.info('removed the empty agent cgroups of other daemon instances', {
      parent,
      instances: pruned,
    });
  const killBy = await fs.access(join(root, 'cgroup.kill')).then(
    () => 'cgroup.kill' as const,
    () => 'freeze' as const,
  );
  logger.info('agent cgroups on: every agent start gets its own group', { root, killBy });
  if (options.favorDynmods) await favorDynmods(root, logger);
  await thawAll(root, logger);
  return createAgentCgroups(root, killBy, logger);
}

/**
 * Removes the instance directories under `parent` (other than `instance`) in which no process
 * runs, with their empty agent groups: what daemons that died (or stopped with agent cgroups
 * on) left behind. A group with a process, or with groups below it, is not removable
 * (`EBUSY`) and stays, and so does its instance. An instance with a group (or itself) made less
 * than `minAgeMs` ago is left alone: a live daemon with no agent running makes a group right
 * before a start, and its agent's shell joins it a moment later (removed in between, the start
 * failed: two daemons starting on one machine broke each other's first starts). A live daemon
 * whose older, empty directory is removed makes it again at its next start (`prepare`).
 * @returns the instances removed
 */
export async function pruneEmptyInstances(
  parent: string,
  instance: string,
  minAgeMs = PRUNE_MIN_AGE_MS,
): Promise<string[]> {
  const removed: string[] = [];
  const entries = await fs.readdir(parent, { withFileTypes: true }).catch(() => []);
  const young = async (dir: string) => {
    const stat = await fs.stat(dir).catch(() => undefined);
    return stat !== undefined && Date.now() - Math.max(stat.mtimeMs, stat.ctimeMs) < minAgeMs;
  };
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name === instance || !/^[0-9a-f]{16}$/.test(entry.name))
      continue;
    const dir = join(parent, entry.name);
    const events = await fs.readFile(join(dir, 'cgroup.events'), 'utf8').catch(() => '');
    if (!/^populated 0$/m.test(events)) continue;
    const groups = (await fs.readdir(dir, { withFileTypes: true }).catch(() => [])).filter(
      (group) => group.isDirectory(),
    );
    if (minAgeMs > 0) {
      const ages = await Promise.all(
        [dir, ...groups.map((group) => join(dir, group.name))].map(young),
      );
      if (ages.some(Boolean)) continue;
    }
    for (const group of groups) await fs.rmdir(join(dir, group.name)).catch(() => undefined);
    await fs.rmdir(dir).then(
      () => removed.push(entry.name),
      () => undefined,
    );
  }
  return removed;
}

/** `<cgroup2 mount><the daemon's own group>/pit-agents`, or `undefined` without cgroup2. */
async function defaultParent(): Promise<string | undefined> {
  const mountinfo = await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  let mount: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    if (after?.split(' ')[0] === 'cgroup2') {
      mount = before?.split(' ')[4];
      break;
    }
  }
  const own = (await fs.readFile('/proc/self/cgroup', 'utf8').catch(() => ''))
    .split('\n')
    .find((line) => line.startsWith('0::'))
    ?.slice(3);
  if (mount === undefined || own === undefined) return undefined;
  return join(mount, own, 'pit-agents');
}

/** Why groups cannot be made under `parent` (after trying), or `undefined` when they can. */
async function unusable(parent: string, instance: string): Promise<string | undefined> {
  const root = join(parent, instance);
  try {
    await fs.mkdir(root, { recursive: true, mode: 0o755 });
    const stats = await fs.statfs(root);
    if (stats.type !== CGROUP2_SUPER_MAGIC) return `${parent} is not on a cgroup2 file system`;
    await fs.access(join(root, 'cgroup.procs'), constants.W_OK);
    // A start from the daemon itself (no agent launcher ready) joins through this shell.
    await fs.access(JOIN_SHELL, constants.X_OK);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** The agent cgroups under `root` (which exists). */
function createAgentCgroups(
  root: string,
  killBy: AgentCgroups['killBy'],
  logger: Logger,
): AgentCgroups {
  const queues = new Map<string, Promise<unknown>>();
  const pathOf = (cell: string | undefined, agent: string) =>
    join(root, `${cell ?? 'host'}.${agent}`);
  /** Runs `work` after every earlier operation on the same group. */
  const inTurn = <T>(path: string, work: () => Promise<T>): Promise<T> => {
    const next = (queues.get(path) ?? Promise.resolve()).then(work, work);
    const settled = next.catch(() => undefined);
    queues.set(path, settled);
    void settled.then(() => {
      if (queues.get(path) === settled) queues.delete(path);
    });
    return next;
  };
  const report = (path: string, agent: string, killed: number, why: string) => {
    if (killed > 0)
      logger.warn('killed the leftover processes of an agent (its cgroup)', {
        agent,
        cgroup: path,
        processes: killed,
        reason: why,
      });
  };
  return {
    root,
    killBy,
    pathOf,
    startIn: (cell, agent, start) => {
      const path = pathOf(cell, agent);
      return inTurn(path, async () => {
        report(path, agent, await killGroup(path, killBy), 'left in its group by an earlier start');
        // Recursive: the instance directory may have been pruned while this daemon had no agent.
        // Synchronous: a cgroup2 directory is made in microseconds (see groupPids).
        mkdirSync(path, { recursive: true, mode: 0o755 });
        return start(join(path, 'cgroup.procs'));
      });
    },
    whileFrozen: (cell, agent, work) => {
      const path = pathOf(cell, agent);
      return inTurn(path, () => frozen(path, work));
    },
    release: (cell, agent) => {
      const path = pathOf(cell, agent);
      return inTurn(path, async () => {
        const killed = await killGroup(path, killBy);
        report(path, agent, killed, 'the agent has exited: its descendants go with it');
        try {
          rmdirSync(path);
        } catch (error) {
          const { code, message } = error as NodeJS.ErrnoException;
          if (code !== 'ENOENT')
            logger.warn('cannot remove an agent cgroup', { cgroup: path, error: message });
        }
        return killed;
      });
    },
    close: async () => {
      await Promise.all(queues.values());
      await fs.rmdir(root).catch(() => undefined);
    },
  };
}

/** How long a group may take to freeze (ms): a task in uninterruptible sleep delays it. */
const FREEZE_TIMEOUT_MS = 2_000;

/** Runs `work` with the group at `path` frozen (see {@link AgentCgroups.whileFrozen}). */
async function frozen<T>(path: string, work: () => Promise<T>): Promise<T | undefined> {
  const control = join(path, 'cgroup.freeze');
  if (groupPids(path).length === 0) return undefined;
  await fs.writeFile(control, '1');
  try {
    const deadline = Date.now() + FREEZE_TIMEOUT_MS;
    const isFrozen = async () =>
      /^frozen 1$/m.test(await fs.readFile(join(path, 'cgroup.events'), 'utf8').catch(() => ''));
    while (!(await isFrozen())) {
      if (Date.now() >= deadline) return undefined;
      await new Promise((resolve) => setTimeout(resolve, EMPTY_POLL_MS));
    }
    return await work();
  } finally {
    await fs.writeFile(control, '0').catch(() => undefined);
  }
}

/** Thaws every agent group under `root`: one a crashed daemon left frozen runs again. */
async function thawAll(root: string, logger: Logger): Promise<void> {
  const entries = await fs.readdir(root, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const path = join(root, entry.name);
    const events = await fs.readFile(join(path, 'cgroup.events'), 'utf8').catch(() => '');
    const freeze = await fs.readFile(join(path, 'cgroup.freeze'), 'utf8').catch(() => '0');
    if (!/^frozen 1$/m.test(events) && freeze.trim() !== '1') continue;
    await fs.writeFile(join(path, 'cgroup.freeze'), '0').then(
      () =>
        logger.warn(
          'thawed an agent cgroup left frozen (a daemon stopped while rotating its log)',
          { cgroup: path },
        ),
      (error: unknown) =>
        logger.warn('cannot thaw an agent cgroup', { cgroup: path, error: String(error) }),
    );
  }
}

/** The pids in a group (none when it does not exist). */
/**
 * The pids in the group (none when it is missing). Read synchronously, as the group is made and
 * removed on the start path: a cgroup2 file is the kernel's (a read takes microseconds here),
 * while each round trip through the thread pool waits for the event loop (milliseconds).
 */
function groupPids(path: string): number[] {
  let text: string;
  try {
    text = readFileSync(join(path, 'cgroup.procs'), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).map(Number);
}

/**
 * Kills every process in the group at `path` and waits (bounded) until it is empty.
 * @returns how many processes it held
 */
export async function killGroup(path: string, killBy: AgentCgroups['killBy']): Promise<number> {
  const pids = groupPids(path);
  if (pids.length === 0) return 0;
  if (killBy === 'cgroup.kill') await fs.writeFile(join(path, 'cgroup.kill'), '1');
  else {
    // Frozen, nothing in the group can fork while its pids are read and killed.
    await fs.writeFile(join(path, 'cgroup.freeze'), '1');
    for (const pid of groupPids(path)) {
      try {
        if (pid > 1) process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await fs.writeFile(join(path, 'cgroup.freeze'), '0');
  }
  const deadline = Date.now() + EMPTY_TIMEOUT_MS;
  while (groupPids(path).length > 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, EMPTY_POLL_MS));
  return pids.length;
}
