/**
 * The cgroup2 mount option `favordynmods` (`[sandbox] cgroup_favordynmods`, off by default):
 * owns reading whether the cgroup2 file system that holds the agent groups has it, and setting
 * or clearing it by remounting that file system. Why it matters: every agent start joins its
 * group through a task migration (the agent launcher moves itself into the group for the fork:
 * launcher-program.mjs), and without the option the first migration after a quiet moment waits
 * for an RCU grace period (6–19 ms measured here, p50 11 ms; 0.25 ms with it), which a
 * restart pays between the exit and the fork. The kernel's price is that every fork and exit on
 * the host takes a slightly slower path. A host-wide setting: the daemon sets it only when told
 * to, says so in its log, and leaves it as it is when it exits. Never decides anything else.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import { promisify } from 'node:util';
import type { Logger } from './logger.js';

const run = promisify(execFile);
const OPTION = 'favordynmods';

/** mount(8) at a fixed path (util-linux), never whatever `mount` the daemon's PATH finds first. */
const mountBinary = (): string =>
  ['/usr/bin/mount', '/bin/mount'].find((path) => existsSync(path)) ?? '/usr/bin/mount';

/** A cgroup2 mount, from `/proc/self/mountinfo`. */
export interface Cgroup2Mount {
  /** Where it is mounted. */
  point: string;
  /** The mount's own options (field 6: `rw,nosuid,…`). */
  mountOptions: string[];
  /** The file system's options (after ` - `: `rw,nsdelegate,favordynmods,…`). */
  superOptions: string[];
}

/** The cgroup2 mount that holds `path` (the longest mount point above it), or `undefined`. */
export async function cgroup2MountOf(path: string): Promise<Cgroup2Mount | undefined> {
  const mountinfo = await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  let found: Cgroup2Mount | undefined;
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    const fields = before?.split(' ') ?? [];
    const [type, , superOptions] = after?.split(' ') ?? [];
    const point = fields[4]?.replace(/\\040/g, ' ');
    if (type !== 'cgroup2' || point === undefined || superOptions === undefined) continue;
    const above = point === '/' || path === point || path.startsWith(`${point}/`);
    if (above && (found === undefined || point.length > found.point.length))
      found = {
        point,
        mountOptions: (fields[5] ?? '').split(','),
        superOptions: superOptions.split(','),
      };
  }
  return found;
}

/**
 * Remounts `mount` with `favordynmods` set (`on`) or cleared, keeping every other option of the
 * mount and of the file system (they are all passed: a remount with an explicit source applies
 * exactly the options it is given). Needs root in the initial cgroup namespace and mount(8).
 * @returns the mount as it is afterwards
 * @throws Error naming the mount when mount(8) fails or the option did not change
 */
export async function setFavorDynmods(mount: Cgroup2Mount, on: boolean): Promise<Cgroup2Mount> {
  const keep = [...new Set([...mount.mountOptions, ...mount.superOptions])].filter(
    (option) => option !== OPTION && option !== '',
  );
  const options = ['remount', ...keep, ...(on ? [OPTION] : [])].join(',');
  try {
    await run(mountBinary(), ['-t', 'cgroup2', '-o', options, 'none', mount.point], {
      timeout: 10_000,
    });
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(
      `mount -o ${options} none ${mount.point}: ${stderr || (error as Error).message}`,
      { cause: error },
    );
  }
  const after = await cgroup2MountOf(mount.point);
  if (after === undefined || after.superOptions.includes(OPTION) !== on)
    throw new Error(
      `${mount.point}: the remount left ${OPTION} ${on ? 'unset' : 'set'} (options now: ${after?.superOptions.join(',') ?? 'not mounted'})`,
    );
  return after;
}

/** What {@link favorDynmods} found or did. */
export type FavorDynmodsOutcome = 'already' | 'set' | 'failed';

/**
 * Makes sure the cgroup2 file system holding `groupDir` has `favordynmods`, and says in the log
 * what it found or did (a failure is a warning: agent cgroups work without it, restarts are
 * slower).
 */
export async function favorDynmods(groupDir: string, logger: Logger): Promise<FavorDynmodsOutcome> {
  const setting = 'cgroup_favordynmods = true';
  const mount = await cgroup2MountOf(groupDir);
  if (mount === undefined) {
    logger.warn('cgroup2 favordynmods not set: no cgroup2 mount holds the agent groups', {
      setting,
      groups: groupDir,
    });
    return 'failed';
  }
  if (mount.superOptions.includes(OPTION)) {
    logger.info('cgroup2 favordynmods already set: agent starts join their group fast', {
      setting,
      mount: mount.point,
    });
    return 'already';
  }
  try {
    await setFavorDynmods(mount, true);
  } catch (error) {
    logger.warn(
      'cgroup2 favordynmods not set; each agent start may wait ~10 ms to join its group',
      {
        setting,
        mount: mount.point,
        reason: (error as Error).message,
      },
    );
    return 'failed';
  }
  logger.info('cgroup2 remounted with favordynmods: agent starts join their group fast', {
    setting,
    mount: mount.point,
    consequence: 'host-wide: forks and exits take a slightly slower path; left set at exit',
  });
  return 'set';
}
