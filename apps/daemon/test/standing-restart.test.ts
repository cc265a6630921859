/**
 * Standing restarts through the whole daemon (`[daemon] standing_restarts`): the agent launcher
 * starts the agent again at its exit, and the daemon's decision about that death keeps the
 * process (a restart) or kills it (any other decision).
 */
import { join } from 'node:path';
import { cleanup, reapLater, tempDir, testAgentPath, waitFor } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { createSupervisor, type Supervisor } from '../src/supervisor.js';
import { isGoneOrZombie, makeCell, recordingLogger } from './helpers.js';
import { cellEvents, storyOf, testConfig } from './fleet.js';

let supervisor: Supervisor | undefined;

afterEach(async () => {
  if (supervisor) {
    const status = await supervisor.status().catch(() => undefined);
    for (const agent of status?.agents ?? []) reapLater(agent.pid);
    await supervisor.stop({ stopAgents: true }).catch(() => undefined);
  }
  supervisor = undefined;
  await cleanup();
});

/** One cell with the agent `forge` running `argv`, standing restarts on, the mission bus off. */
async function daemon(argv: string[], policy = '') {
  delete process.env.PIT_STANDING_TEST_UNSET;
  const base = await tempDir('pit-standing-');
  const cell = await makeCell([{ name: 'forge' }], join(base, 'missions'));
  const toml = [
    '[daemon]',
    'state_dir = "state"',
    'standing_restarts = true',
    '[daemon.http]',
    'enabled = false',
    '[bus]',
    'enabled = false',
    '[cells]',
    'root = "missions"',
    'heartbeat_stale_s = 15',
    'poll_interval_s = 0.2',
    '[checkpoints]',
    'interval_s = 0',
    '[policy.defaults]',
    'backoff = { initial = 0, jitter = 0 }',
    policy,
    '[policy.fleet_brake]',
    'enabled = false',
    '[agents.forge]',
    'startup_grace_s = 10',
    'stop_grace_s = 2',
    // Not in the daemon's environment: warned about once per start, not again for the order.
    'env_from = ["PIT_STANDING_TEST_UNSET"]',
    `argv = ${JSON.stringify(argv)}`,
  ].join('\n');
  const { config, policyInput } = testConfig(toml, base);
  const { logger, lines } = recordingLogger();
  supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
  await supervisor.start();
  const key = `${cell.uuid}/forge`;
  const pidOf = async () =>
    (await supervisor!.status()).agents.find((agent) => agent.key === key)?.pid;
  const started = async (not?: number) => {
    const pid = await waitFor(
      async () => {
        const now = await pidOf();
        return now !== undefined && now !== not ? now : undefined;
      },
      20_000,
      'forge started',
    );
    reapLater(pid);
    return pid;
  };
  // The first start waits for the agent launcher (up to 2 s after it was started, else it is
  // made from the daemon, with no order): the restart after a SIGKILL is the launcher's either way.
  const zeroth = await started();
  process.kill(zeroth, 'SIGKILL');
  const first = await started(zeroth);
  // The order is left once the start's record (the next start's nonce) is on disk.
  await waitFor(
    () =>
      lines.some((line) =>
        line.includes(`standing restart {"agent":"${key}","pid":${first},"stands":true}`),
      ),
    10_000,
    'the standing order left',
  );
  return { cell, lines, pidOf, first, started };
}

describe('standing restarts (the daemon)', () => {
  it('a killed agent is restarted by the launcher at its exit, and the daemon keeps that process as its restart', async () => {
    const { cell, lines, first, started } = await daemon([process.execPath, testAgentPath]);
    process.kill(first, 'SIGKILL');
    const second = await started(first);
    expect(lines.some((line) => /agent started .*"standing_order":true/.test(line))).toBe(true);
    expect(lines.some((line) => line.includes('killed the restart a standing order made'))).toBe(
      false,
    );
    const revived = await waitFor(
      async () =>
        (await cellEvents(cell.dir)).find(
          (event) => event.event === 'agent_revived' && event.pid === second,
        ),
      10_000,
      'agent_revived',
    );
    expect(revived).toMatchObject({ agent: 'forge', pid: second });
    const starts = lines.filter((line) => line.includes('agent started')).length;
    expect(starts).toBe(3);
    expect(lines.filter((line) => line.includes('env_from variables not set'))).toHaveLength(
      starts,
    );
    const story = await storyOf(cell.dir, 'forge');
    expect(story.lastIndexOf('agent_dead')).toBeLessThan(story.lastIndexOf('decision:restart'));
    expect(story.lastIndexOf('decision:restart')).toBeLessThan(story.lastIndexOf('agent_revived'));
    expect(await isGoneOrZombie(second)).toBe(false);
  });

  it('a death the policy does not answer with a restart (exit 78: bad_config, record only) kills what the order started', async () => {
    const { cell, lines, pidOf, first } = await daemon(
      ['/bin/sh', '-c', "trap 'exit 78' TERM; sleep 1000 & wait"],
      'on_failure = { bad_config = "record_only" }',
    );
    process.kill(first, 'SIGTERM');
    const killed = await waitFor(
      () => lines.find((line) => line.includes('killed the restart a standing order made')),
      20_000,
      'the standing restart killed',
    );
    const pid = Number(/"pid":(\d+)/.exec(killed)?.[1]);
    reapLater(pid);
    await waitFor(() => isGoneOrZombie(pid), 5000, 'the process the order started gone');
    // Events are appended without holding up the loop: wait for the decision.
    const story = await waitFor(
      async () => {
        const kinds = await storyOf(cell.dir, 'forge');
        return kinds.includes('decision:record_only') ? kinds : undefined;
      },
      10_000,
      'the record_only decision in the log',
    );
    expect(story.lastIndexOf('agent_revived')).toBeLessThan(story.lastIndexOf('agent_dead'));
    expect(await pidOf()).toBeUndefined();
  });
});
