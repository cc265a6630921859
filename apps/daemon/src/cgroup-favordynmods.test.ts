import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { cleanup } from '@pit/test-kit';
import { afterAll, describe, expect, it } from 'vitest';
import { recordingLogger } from '../test/helpers.js';
import { detectAgentCgroups, type AgentCgroups } from './agent-cgroups.js';
import { cgroup2MountOf, setFavorDynmods, type Cgroup2Mount } from './cgroup-favordynmods.js';

const recording = recordingLogger;

const own = (await fs.readFile('/proc/self/cgroup', 'utf8').catch(() => ''))
  .split('\n')
  .find((line) => line.startsWith('0::'));
const point = (await fs.readFile('/proc/self/mountinfo', 'utf8'))
  .split('\n')
  .find((line) => line.split(' - ')[1]?.startsWith('cgroup2 '))
  ?.split(' ')[4];
const mount = point === undefined ? undefined : await cgroup2MountOf(point);
const canRemount = process.getuid?.() === 0 && own !== undefined && mount !== undefined;
// The mount as it was before this file ran: put back whatever the tests did to it.
const original: Cgroup2Mount | undefined = mount;
const opened: AgentCgroups[] = [];
afterAll(async () => {
  for (const cgroups of opened) await cgroups.close();
  const now = original && (await cgroup2MountOf(original.point));
  if (
    original &&
    now &&
    now.superOptions.includes('favordynmods') !== original.superOptions.includes('favordynmods')
  )
    await setFavorDynmods(now, original.superOptions.includes('favordynmods'));
  await cleanup();
});

const detect = async (favorDynmods: boolean) => {
  const { logger, lines } = recording();
  const cgroups = await detectAgentCgroups({
    setting: 'auto',
    instance: randomBytes(8).toString('hex'),
    logger,
    favorDynmods,
  });
  if (cgroups) opened.push(cgroups);
  return { cgroups, lines };
};

describe.skipIf(!canRemount)('[sandbox] cgroup_favordynmods (root, cgroup2)', () => {
  it('is left alone by default, set at start when asked (other options kept), and found set the next time', async () => {
    const before = await setFavorDynmods((await cgroup2MountOf(mount!.point))!, false);
    expect(before.superOptions).not.toContain('favordynmods');

    const untouched = await detect(false);
    expect(untouched.cgroups).toBeDefined();
    expect((await cgroup2MountOf(mount!.point))!.superOptions).not.toContain('favordynmods');
    expect(untouched.lines.join('\n')).not.toMatch(/favordynmods/);

    const asked = await detect(true);
    expect(asked.lines.join('\n')).toMatch(/info cgroup2 remounted with favordynmods/);
    const after = (await cgroup2MountOf(mount!.point))!;
    expect(after.superOptions).toContain('favordynmods');
    // Nothing else about the mount changed (nosuid, nodev, noexec, nsdelegate … stay as they were).
    expect(after.mountOptions).toEqual(before.mountOptions);
    expect(after.superOptions.filter((option) => option !== 'favordynmods')).toEqual(
      before.superOptions,
    );

    const again = await detect(true);
    expect(again.lines.join('\n')).toMatch(/info cgroup2 favordynmods already set/);
  });
});
