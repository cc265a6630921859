import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { cleanup, reapLater, startIssuesApi, tempDir, testAgentPath, waitFor } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { writeHeartbeat } from '@pit/cell-spec';
import { createSupervisor, type Supervisor } from '../src/supervisor.js';
import { createLogger } from '../src/logger.js';
import { createNotifier } from '../src/notifier.js';
import { readAgentStates } from '../src/state-store.js';
import { makeCell } from './helpers.js';
import { cellEvents, storyOf, testConfig } from './fleet.js';

let supervisor: Supervisor | undefined;
const closers: Array<() => Promise<void>> = [];
const started: number[] = [];

afterEach(async () => {
  if (supervisor) {
    const status = await supervisor.status().catch(() => undefined);
    for (const agent of status?.agents ?? []) reapLater(agent.pid);
    await supervisor.stop({ stopAgents: true }).catch(() => undefined);
  }
  supervisor = undefined;
  for (const pid of started.splice(0)) reapLater(pid);
  for (const close of closers.splice(0)) await close();
  await cleanup();
});

const logger = createLogger({ level: process.env.PIT_TEST_LOG ? 'debug' : 'error' });

async function neverFleet(issuesUrl: string) {
  const base = await tempDir('pit-recovery-');
  const cell = await makeCell([{ name: 'forge' }], join(base, 'missions'));
  const toml = [
    '[daemon]',
    'state_dir = "state"',
    '[daemon.http]',
    'enabled = false',
    '[cells]',
    'root = "missions"',
    'heartbeat_stale_s = 15',
    'poll_interval_s = 0.2',
    '[checkpoints]',
    'interval_s = 0',
    '[policy.agents.forge]',
    'mode = "never"',
    '[issues]',
    'provider = "gitea"',
    `base_url = "${issuesUrl}"`,
    'owner = "ops"',
    'repo = "fleet"',
    'token_env = "PIT_TEST_ISSUES_TOKEN"',
    '[agents.forge]',
    'startup_grace_s = 10',
    'stop_grace_s = 2',
    `argv = ["${process.execPath}", "${testAgentPath}"]`,
    '[agents.forge.probes]',
    'failure_threshold = 1',
  ].join('\n');
  return { cell, ...testConfig(toml, base) };
}

/** Starts the test agent by hand in the cell's workspace, as an operator would. */
function startByHand(cell: { dir: string; uuid: string }, agent: string): number {
  const child = spawn(process.execPath, [testAgentPath], {
    cwd: join(cell.dir, 'workspace'),
    env: { PATH: process.env.PATH, LAZARUS_CELL_UUID: cell.uuid, LAZARUS_AGENT: agent },
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  started.push(child.pid!);
  return child.pid!;
}

describe('recovery by hand', () => {
  it('takes up an agent started by hand under policy never: recorded as recovered, supervised again, its death issue commented and closed', async () => {
    const api = await startIssuesApi({
      flavour: 'gitea',
      token: 'issues-token-1',
      owner: 'ops',
      repo: 'fleet',
    });
    closers.push(() => api.close());
    const { cell, config, policyInput } = await neverFleet(api.baseUrl);
    const env = { ...process.env, PIT_TEST_ISSUES_TOKEN: 'issues-token-1' };
    supervisor = await createSupervisor({
      config,
      policyInput,
      env,
      logger,
      notifier: createNotifier(config, env, logger),
    });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const statusOf = async () =>
      (await supervisor!.status()).agents.find((agent) => agent.key === key);
    const first = await waitFor(
      async () => {
        const status = await statusOf();
        return status?.health === 'healthy' ? status.pid : undefined;
      },
      20_000,
      'forge healthy',
    );
    started.push(first!);
    process.kill(first!, 'SIGKILL');
    const issue = await waitFor(
      () =>
        api.issues.find((item) => item.title.startsWith(`[pit] ${cell.uuid.slice(0, 8)}/forge:`)),
      20_000,
      'the death issue',
    );
    expect(issue.state).toBe('open');

    const byHand = startByHand(cell, 'forge');
    const back = await waitFor(
      async () => {
        const status = await statusOf();
        return status?.health === 'healthy' && status.pid === byHand ? status : undefined;
      },
      20_000,
      'forge supervised again with the pid started by hand',
    );
    expect(back.pid).toBe(byHand);
    await waitFor(() => issue.state === 'closed', 20_000, 'the death issue closed');
    expect(issue.comments.at(-1)?.body).toContain(`pid ${byHand}`);
    const recovered = (await cellEvents(cell.dir)).filter(
      (event) => event.event === 'agent_recovered',
    );
    expect(recovered).toHaveLength(1);
    expect(recovered[0]).toMatchObject({ agent: 'forge', pid: byHand });

    // Supervised again under its policy: its next death is seen and recorded (never: not restarted).
    process.kill(byHand, 'SIGKILL');
    await waitFor(
      async () => ((await statusOf())?.health === 'dead' ? true : undefined),
      20_000,
      'the hand-started agent seen dead',
    );
    const story = await waitFor(
      async () => {
        const kinds = await storyOf(cell.dir, 'forge');
        return kinds.filter((kind) => kind === 'agent_dead').length === 2 ? kinds : undefined;
      },
      10_000,
      'the second death in the log',
    );
    expect(story).not.toContain('agent_revived');
  }, 90_000);

  it('in cron mode too: a sweep after the agent was started by hand records it as recovered and supervises it', async () => {
    const api = await startIssuesApi({
      flavour: 'gitea',
      token: 'issues-token-1',
      owner: 'ops',
      repo: 'fleet',
    });
    closers.push(() => api.close());
    const { cell, config, policyInput } = await neverFleet(api.baseUrl);
    const env = { ...process.env, PIT_TEST_ISSUES_TOKEN: 'issues-token-1' };
    /** One `pit sweep --once`: a fresh supervisor over the same state, one sweep, stopped. */
    const sweep = async () => {
      const once = await createSupervisor({ config, policyInput, env, logger });
      try {
        return await once.sweep();
      } finally {
        await once.stop({ stopAgents: false });
      }
    };
    const key = `${cell.uuid}/forge`;
    await sweep(); // first sight: started
    const pid = await waitFor(
      async () => {
        const state = await readAgentStates(join(cell.dir, '..', '..', 'state'), cell.dir);
        return state.agents.forge?.pid;
      },
      10_000,
      'the started pid recorded',
    );
    started.push(pid);
    process.kill(pid, 'SIGKILL');
    await waitFor(
      async () =>
        (await sweep()).agents.find((agent) => agent.key === key)?.health === 'dead'
          ? true
          : undefined,
      20_000,
      'a sweep seeing it dead',
    );
    const byHand = startByHand(cell, 'forge');
    await waitFor(
      async () => {
        await sweep();
        const recovered = (await cellEvents(cell.dir)).find(
          (event) => event.event === 'agent_recovered',
        );
        return recovered;
      },
      20_000,
      'a sweep recording the recovery',
    );
    const state = await readAgentStates(join(cell.dir, '..', '..', 'state'), cell.dir);
    expect(state.agents.forge?.pid).toBe(byHand);
  }, 90_000);

  it('does not take up a process a heartbeat names that is not the agent', async () => {
    const api = await startIssuesApi({
      flavour: 'gitea',
      token: 'issues-token-1',
      owner: 'ops',
      repo: 'fleet',
    });
    closers.push(() => api.close());
    const { cell, config, policyInput } = await neverFleet(api.baseUrl);
    const env = { ...process.env, PIT_TEST_ISSUES_TOKEN: 'issues-token-1' };
    const lines: string[] = [];
    const capturing = createLogger({
      level: 'info',
      format: 'json',
      stream: { write: (chunk: string) => lines.push(chunk) },
    });
    supervisor = await createSupervisor({
      config,
      policyInput,
      env,
      logger: capturing,
      notifier: createNotifier(config, env, capturing),
    });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const statusOf = async () =>
      (await supervisor!.status()).agents.find((agent) => agent.key === key);
    const first = await waitFor(
      async () => {
        const status = await statusOf();
        return status?.health === 'healthy' ? status.pid : undefined;
      },
      20_000,
      'forge healthy',
    );
    started.push(first!);
    process.kill(first!, 'SIGKILL');
    await waitFor(
      async () => ((await statusOf())?.last_decision ? true : undefined),
      20_000,
      'forge dead',
    );
    // A bystander without the agent's marks (this test's own process), named by a forged heartbeat.
    const bystander = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
      detached: true,
      stdio: 'ignore',
    });
    started.push(bystander.pid!);
    for (const pid of [bystander.pid!, process.pid]) {
      await writeHeartbeat(cell.dir, {
        agent: 'forge',
        pid,
        timestamp: Date.now() / 1000,
        cycle: 1,
        status: 'ok',
        cell_uuid: cell.uuid,
      });
      await waitFor(
        () => lines.find((line) => line.includes('not adopted') && line.includes(`"pid":${pid}`)),
        10_000,
        `pid ${pid} refused`,
      );
    }
    // Refused: the agent is still dead and nothing was taken up.
    const status = await statusOf();
    expect(status?.health).toBe('dead');
    expect(status?.pid).toBeUndefined();
    expect((await cellEvents(cell.dir)).some((event) => event.event === 'agent_recovered')).toBe(
      false,
    );
    expect(bystander.exitCode).toBeNull();
  }, 60_000);
});
