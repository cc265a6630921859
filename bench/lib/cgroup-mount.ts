/**
 * The host's cgroup2 mount as a bench found it, and putting its `favordynmods` back after a run
 * whose Pit set it (`[sandbox] cgroup_favordynmods`; the daemon leaves it set when it exits), so
 * that the benchmarks after it run on the host as it was. Uses the daemon's own remount.
 */
import { promises as fs } from 'node:fs';
import { cgroup2MountOf, setFavorDynmods, type Cgroup2Mount } from '@pit/daemon';

/** The first cgroup2 mount in `/proc/self/mountinfo`, or `undefined`. */
export async function cgroupMount(): Promise<Cgroup2Mount | undefined> {
  const point = (await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => ''))
    .split('\n')
    .find((line) => line.split(' - ')[1]?.startsWith('cgroup2 '))
    ?.split(' ')[4];
  return point === undefined ? undefined : cgroup2MountOf(point);
}

/** Puts `favordynmods` back as it was in `before` (when it changed); says so on stderr. */
export async function restoreCgroupMount(before: Cgroup2Mount | undefined): Promise<void> {
  if (!before) return;
  const now = await cgroup2MountOf(before.point);
  const was = before.superOptions.includes('favordynmods');
  if (!now || now.superOptions.includes('favordynmods') === was) return;
  await setFavorDynmods(now, was).then(
    () =>
      process.stderr.write(`${before.point}: favordynmods put back to ${was ? 'set' : 'unset'}\n`),
    (error: unknown) =>
      process.stderr.write(
        `${before.point}: favordynmods not put back: ${(error as Error).message}\n`,
      ),
  );
}
