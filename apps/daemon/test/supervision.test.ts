import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import {
  cleanup,
  reapLater,
  startIssuesApi,
  startTelegramBotApi,
  tempDir,
  testAgentPath,
  waitFor,
} from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { transitionCell, writeHeartbeat } from '@pit/cell-spec';
import { createSnapshotStore } from '@pit/snapshot';
import { createSupervisor, type Supervisor } from '../src/supervisor.js';
import { createLogger } from '../src/logger.js';
import { createNotifier } from '../src/notifier.js';
import { startChannels } from '../src/channels.js';
import { makeCell } from './helpers.js';
import { cellEvents, storyOf, testConfig } from './fleet.js';
import { agentStatePath, readAgentStates } from '../src/state-store.js';

/** The daemon's records of a cell's agents (its state directory is `state/` beside `missions/`). */
const daemonState = (cellDir: string) =>
  readAgentStates(join(cellDir, '..', '..', 'state'), cellDir);

let supervisor: Supervisor | undefined;
const started: number[] = [];
const closers: Array<() => Promise<void>> = [];

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

/** A fleet: a temp dir with a cells root, a state dir and a config for one cell whose agents run the test agent. */
async function fleet(agents: string[], extra = '', agentExtra: Record<string, string> = {}) {
  const base = await tempDir('pit-fleet-');
  const cell = await makeCell(
    agents.map((name) => ({ name })),
    join(base, 'missions'),
  );
  const toml = [
    '[daemon]',
    'state_dir = "state"',
    '[daemon.http]',
    'enabled = false',
    '[cells]',
    'root = "missions"',
    'heartbeat_stale_s = 15', // generous: a loaded 2-core machine delays heartbeats; deaths here are seen by the process probe
    'poll_interval_s = 0.2',
    'resurrect_after_s = 0',
    ...(extra.includes('[checkpoints]') ? [] : ['[checkpoints]', 'interval_s = 0']),
    '[policy.defaults]',
    'backoff = { initial = "200ms", cap = "1s", jitter = 0 }',
    extra,
    ...agents.flatMap((name) => [
      `[agents.${name}]`,
      'startup_grace_s = 10',
      'stop_grace_s = 2',
      agentExtra[name] ?? `argv = ["${process.execPath}", "${testAgentPath}"]`,
      `[agents.${name}.probes]`,
      'failure_threshold = 1',
    ]),
  ].join('\n');
  const { config, policyInput } = testConfig(toml, base);
  return { base, cell, config, policyInput };
}

const statusOf = async (key: string) =>
  (await supervisor!.status()).agents.find((agent) => agent.key === key);
/** Waits until the agent `key` is healthy with a pid (other than `not`: a replacement). */
const healthyStatus = (key: string, timeoutMs: number, what: string, not?: number) =>
  waitFor(
    async () => {
      const status = await statusOf(key);
      return status?.health === 'healthy' && status.pid && status.pid !== not ? status : undefined;
    },
    timeoutMs,
    what,
  );

describe('the supervision loop', () => {
  it('starts a configured agent, sees it healthy, and revives it after SIGKILL; the event log tells the story', async () => {
    const { cell, config, policyInput } = await fleet(['forge']);
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    expect(supervisor.health()).toMatchObject({ ok: false, reason: 'no discovery yet' });
    await supervisor.start();
    expect(supervisor.health()).toMatchObject({ ok: true, last_discovery: expect.any(String) });
    const key = `${cell.uuid}/forge`;
    const first = await healthyStatus(key, 20_000, 'forge healthy');
    started.push(first.pid!);
    process.kill(first.pid!, 'SIGKILL');
    const second = await healthyStatus(key, 20_000, 'forge revived and healthy', first.pid);
    started.push(second.pid!);
    expect(second.restarts).toBe(1);
    // Events are appended in order but without holding up the loop: wait for the last one.
    const story = await waitFor(
      async () => {
        const kinds = await storyOf(cell.dir, 'forge');
        return kinds.includes('agent_revived') &&
          kinds.lastIndexOf('agent_healthy') > kinds.indexOf('agent_revived')
          ? kinds
          : undefined;
      },
      10_000,
      'agent_healthy logged after the revive',
    );
    expect(story).toEqual(
      expect.arrayContaining(['agent_started', 'agent_healthy', 'agent_dead', 'agent_revived']),
    );
    // The built-in policy rolls the config back before restarting, but with no config files there
    // is nothing to roll back: a plain restart, with no claim of a rollback.
    expect(story).toContain('decision:restart');
    expect(story).not.toContain('decision:rollback_and_restart');
    expect(story.indexOf('agent_dead')).toBeLessThan(story.indexOf('agent_revived'));
    expect(story.lastIndexOf('agent_healthy')).toBeGreaterThan(story.indexOf('agent_revived'));
    const dead = await waitFor(
      async () => (await cellEvents(cell.dir)).find((event) => event.event === 'agent_dead'),
      10_000,
      'agent_dead in the log',
    );
    expect(String(dead?.reason)).toContain('SIGKILL');
    await waitFor(
      async () => {
        const state = await daemonState(cell.dir);
        return state.agents.forge?.health === 'healthy' && state.agents.forge.pid === second.pid;
      },
      10_000,
      'the state persisted',
    );
  });

  it("never declares a started agent healthy on its previous incarnation's heartbeat: it crashes on start, and only dies", async () => {
    // The agent lives 5 s and exits 78 (a corrupt config) without writing a heartbeat; the one in
    // the cell is fresh by the clock but older than this process, so it proves nothing.
    const { cell, config, policyInput } = await fleet(['forge'], 'mode = "never"', {
      forge: 'argv = ["/bin/sh", "-c", "sleep 5; exit 78"]',
    });
    await writeHeartbeat(cell.dir, {
      agent: 'forge',
      cell_uuid: cell.uuid,
      cycle: 9,
      status: 'working',
      pid: process.pid,
      timestamp: Date.now() / 1000,
    });
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const starting = await waitFor(async () => (await statusOf(key))?.pid, 10_000, 'forge started');
    started.push(starting);
    // Running, not proved: the status says starting, not healthy (nor its previous verdict).
    expect((await statusOf(key))?.health).toBe('starting');
    const story = await waitFor(
      async () => {
        const kinds = await storyOf(cell.dir, 'forge');
        return kinds.includes('agent_dead') ? kinds : undefined;
      },
      20_000,
      'forge dead after exit 78',
    );
    expect(story).not.toContain('agent_healthy');
    expect(
      (await cellEvents(cell.dir)).find((event) => event.event === 'agent_dead')?.reason,
    ).toMatch(/78/);
  });

  it('rolls a corrupted config back to last known good (hashes in the log) and restarts the agent', async () => {
    const base = await tempDir('pit-fleet-');
    const { cell, config, policyInput } = await fleet(['forge'], '', {
      forge: `argv = ["${process.execPath}", "${testAgentPath}", "--config", "forge.json"]\nconfig_files = [{ path = "workspace/forge.json" }]`,
    });
    void base;
    const configFile = join(cell.dir, 'workspace', 'forge.json');
    await fs.writeFile(configFile, '{"model":"good"}\n');
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const first = await healthyStatus(key, 20_000, 'forge healthy');
    started.push(first.pid!);
    // The healthy verdict snapshotted the config as last known good.
    const store = createSnapshotStore({ stateDir: config.daemon.state_dir });
    await waitFor(async () => (await store.history('forge')).length > 0, 10_000, 'a snapshot');
    await fs.writeFile(configFile, '{"model": broken');
    process.kill(first.pid!, 'SIGKILL');
    const revived = await healthyStatus(key, 30_000, 'forge rolled back and healthy', first.pid);
    started.push(revived.pid!);
    expect(await fs.readFile(configFile, 'utf8')).toBe('{"model":"good"}\n');
    const rolledBack = await waitFor(
      async () =>
        (await cellEvents(cell.dir)).find((event) => event.event === 'config_rolled_back'),
      10_000,
      'config_rolled_back in the log',
    );
    expect(rolledBack).toBeDefined();
    const files = rolledBack!.files as Array<{
      path: string;
      old_sha256: string;
      new_sha256: string;
    }>;
    expect(files[0]).toMatchObject({
      path: configFile,
      old_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      new_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(files[0]!.old_sha256).not.toBe(files[0]!.new_sha256);
  });

  it('does not take a config edited while the agent runs as last known good: a kill rolls back to the version it started with', async () => {
    const { cell, config, policyInput } = await fleet(['forge'], '', {
      forge: `argv = ["${process.execPath}", "${testAgentPath}", "--config", "forge.json"]\nconfig_files = [{ path = "workspace/forge.json" }]`,
    });
    const configFile = join(cell.dir, 'workspace', 'forge.json');
    await fs.writeFile(configFile, '{"model":"good"}\n');
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const first = await healthyStatus(key, 20_000, 'forge healthy');
    started.push(first.pid!);
    const store = createSnapshotStore({ stateDir: config.daemon.state_dir });
    await waitFor(async () => (await store.history('forge')).length > 0, 10_000, 'a snapshot');
    // The agent switches its own config at runtime and keeps running on the old one for a while.
    await fs.writeFile(configFile, '{"model":"untested"}\n');
    const healthyChecksAfter = Date.now();
    await waitFor(
      async () => {
        const status = await statusOf(key);
        return status?.health === 'healthy' &&
          Date.now() - healthyChecksAfter > 4 * config.cells.poll_interval_s * 1000
          ? true
          : undefined;
      },
      20_000,
      'several healthy checks after the edit',
    );
    expect(await store.history('forge')).toHaveLength(1);
    process.kill(first.pid!, 'SIGKILL');
    const revived = await healthyStatus(key, 30_000, 'forge restarted', first.pid);
    started.push(revived.pid!);
    // rollback_before_restart (the default) restored what the agent had proven, not the runtime edit.
    expect(await fs.readFile(configFile, 'utf8')).toBe('{"model":"good"}\n');
  });

  it('does not restart an agent whose policy is never, records why, and opens an issue on the (local) issues API', async () => {
    const api = await startIssuesApi({
      flavour: 'gitea',
      token: 'issues-token-1',
      owner: 'ops',
      repo: 'fleet',
    });
    closers.push(() => api.close());
    const { cell, config, policyInput } = await fleet(
      ['forge'],
      `[policy.agents.forge]\nmode = "never"\n[issues]\nprovider = "gitea"\nbase_url = "${api.baseUrl}"\nowner = "ops"\nrepo = "fleet"\ntoken_env = "PIT_TEST_ISSUES_TOKEN"`,
    );
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
    const first = await healthyStatus(key, 20_000, 'forge healthy');
    started.push(first.pid!);
    process.kill(first.pid!, 'SIGKILL');
    const dead = await waitFor(
      async () => {
        const status = await statusOf(key);
        return status?.health === 'dead' && status.last_decision ? status : undefined;
      },
      20_000,
      'forge dead with a decision',
    );
    expect(dead.last_decision?.action).toBe('record_only');
    expect(dead.pid).toBeUndefined();
    const story = await waitFor(
      async () => {
        const kinds = await storyOf(cell.dir, 'forge');
        return kinds.includes('decision:record_only') ? kinds : undefined;
      },
      10_000,
      'the record_only decision in the log',
    );
    expect(story).not.toContain('agent_revived');
    expect(story).toContain('decision:record_only');
    const issue = await waitFor(
      () =>
        api.issues.find((item) => item.title.startsWith(`[pit] ${cell.uuid.slice(0, 8)}/forge:`)),
      20_000,
      'the death issue',
    );
    expect(issue.state).toBe('open');
    expect(issue.body).toContain('SIGKILL');
    // The post-mortem's log lines end with the stderr log's tail (each run's header, at least).
    expect(issue.body).toMatch(/--- stderr \(forge\.err\.log\) ---\n--- pit: starting forge/);
    // The title names the cell and its mission: two cells' `forge`s are two issues.
    expect(issue.title).toContain(`dead in ${cell.manifest.mission}`);
    expect(api.issues.filter((item) => item.title.startsWith('[pit] '))).toHaveLength(1);
  });

  it('substitutes a dead agent: the substitute joins the cell with its role, gets a handoff and a resume packet, and runs', async () => {
    const { cell, config, policyInput } = await fleet(
      ['forge'],
      `[policy.agents.forge]\nmode = "substitute"\n[agents.anvil]\nargv = ["${process.execPath}", "${testAgentPath}"]\nstartup_grace_s = 10`,
      {
        forge: `argv = ["${process.execPath}", "${testAgentPath}"]\nsubstitutes = ["anvil"]`,
      },
    );
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const forge = await waitFor(
      async () => {
        const status = await statusOf(`${cell.uuid}/forge`);
        return status?.health === 'healthy' && status.pid ? status : undefined;
      },
      20_000,
      'forge healthy',
    );
    started.push(forge.pid!);
    process.kill(forge.pid!, 'SIGKILL');
    const anvil = await waitFor(
      async () => {
        const status = await statusOf(`${cell.uuid}/anvil`);
        return status?.health === 'healthy' && status.pid ? status : undefined;
      },
      30_000,
      'anvil substituted and healthy',
    );
    started.push(anvil.pid!);
    expect((await statusOf(`${cell.uuid}/forge`))?.substituted_by).toBe('anvil');
    const manifest = JSON.parse(await fs.readFile(join(cell.dir, 'cell.json'), 'utf8')) as {
      agents: Array<{ name: string; role: string }>;
    };
    expect(manifest.agents.find((agent) => agent.name === 'anvil')?.role).toBe('write');
    const substituted = await waitFor(
      async () => (await cellEvents(cell.dir)).find((event) => event.event === 'agent_substituted'),
      10_000,
      'agent_substituted in the log',
    );
    expect(substituted).toMatchObject({
      agent: 'forge',
      substitute: 'anvil',
      role: 'write',
      handoff: expect.any(String),
    });
    const packet = JSON.parse(
      await fs.readFile(join(cell.dir, '.lazarus', 'resume', 'anvil.json'), 'utf8'),
    ) as { from: string; recipient: string; handoff: { id: string } };
    expect(packet).toMatchObject({
      from: 'forge',
      recipient: 'anvil',
      handoff: { id: substituted!.handoff },
    });
    await waitFor(
      async () =>
        (await fs.readFile(join(cell.dir, 'logs', 'anvil.log'), 'utf8')).includes(
          `resuming the work of forge (handoff ${String(substituted!.handoff)})`,
        ),
      10_000,
      'anvil to read its resume packet',
    ).catch(async (error: unknown) => {
      throw new Error(
        `${String(error)}; log: ${await fs.readFile(join(cell.dir, 'logs', 'anvil.log'), 'utf8')}`,
      );
    });
    // The next sweep of forge does nothing more: a live substitute stands in for it.
    expect(
      (await storyOf(cell.dir, 'forge')).filter((kind) => kind === 'agent_substituted'),
    ).toHaveLength(1);
  });

  it('asks on Telegram (the real grammY client against a local Bot API) and revives the agent when an approver presses Approve', async () => {
    const api = await startTelegramBotApi({ token: 'tg-test-token-123456' });
    closers.push(() => api.close());
    const chatId = -100123;
    const approver = { id: 4242, is_bot: false, first_name: 'Ops' };
    const { cell, config, policyInput } = await fleet(
      ['forge'],
      `[policy.agents.forge]\nmode = "ask"\napproval = { channels = ["telegram"], timeout = "10m" }\n[telegram]\ntoken_env = "PIT_TEST_TG"\nchat_id = ${chatId}\napprovers = [${approver.id}]\napi_root = "${api.apiRoot}"\npoll_timeout_seconds = 1`,
    );
    const env = { ...process.env, PIT_TEST_TG: 'tg-test-token-123456' };
    const channels = await startChannels(config, env, logger);
    closers.unshift(() => channels.stop());
    expect(channels.approvals.map((channel) => channel.name)).toEqual(['telegram']);
    supervisor = await createSupervisor({
      config,
      policyInput,
      env,
      logger,
      approvalChannels: channels.approvals,
      notifier: createNotifier(config, env, logger, channels.alerts),
    });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const first = await healthyStatus(key, 20_000, 'forge healthy');
    started.push(first.pid!);
    process.kill(first.pid!, 'SIGKILL');
    const request = await api.waitForMessage(
      chatId,
      (message) =>
        (message.reply_markup?.inline_keyboard.flat() ?? []).some((button) =>
          button.callback_data?.startsWith('a:'),
        ),
      20_000,
    );
    expect(request.text).toContain('forge');
    const approve = request
      .reply_markup!.inline_keyboard.flat()
      .find((button) => button.callback_data?.startsWith('a:'))!;
    api.pressButton({
      from: approver,
      chatId,
      messageId: request.message_id,
      data: approve.callback_data!,
    });
    const revived = await healthyStatus(
      key,
      20_000,
      'forge revived after the Telegram approval',
      first.pid,
    );
    started.push(revived.pid!);
    // Events are appended off the restart's path: wait for the line rather than race the log.
    const approved = await waitFor(
      async () => (await cellEvents(cell.dir)).find((event) => event.event === 'revive_approved'),
      10_000,
      'revive_approved in the log',
    );
    expect(approved).toMatchObject({
      channel: 'telegram',
      by: expect.stringContaining(String(approver.id)),
    });
    // The death also went out as an alert.
    await api.waitForMessage(chatId, (message) => message.text.includes('forge is dead'), 20_000);
  });

  it('supervises an agent outside cells (cell = "none"): started in its cwd, revived, its events in the state dir', async () => {
    const { base, config, policyInput } = await fleet(
      [],
      '[agents.gateway]\ncell = "none"\ncwd = "."\nargv = ["sleep", "60"]\nstartup_grace_s = 5\nprobes = { heartbeat = false, failure_threshold = 1 }',
    );
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const first = await waitFor(
      async () => {
        const status = await statusOf('host/gateway');
        return status?.pid && status.health !== 'dead' ? status : undefined;
      },
      20_000,
      'gateway running',
    );
    started.push(first.pid!);
    expect(first.cell).toBeUndefined();
    process.kill(first.pid!, 'SIGKILL');
    const second = await waitFor(
      async () => {
        const status = await statusOf('host/gateway');
        return status?.pid && status.pid !== first.pid ? status : undefined;
      },
      20_000,
      'gateway revived',
    );
    started.push(second.pid!);
    await waitFor(
      async () =>
        (await fs.readFile(join(config.daemon.state_dir, 'logs', 'events.jsonl'), 'utf8')).includes(
          '"event":"agent_revived"',
        ),
      10_000,
      'agent_revived in the state dir’s event log',
    );
    expect(
      await fs.readFile(join(config.daemon.state_dir, 'logs', 'gateway.log'), 'utf8'),
    ).toContain('starting gateway');
    void base;
  });

  it('takes periodic workspace checkpoints, and restores the latest before a revive when the agent asks for it', async () => {
    const { cell, config, policyInput } = await fleet(
      ['forge'],
      '[checkpoints]\ninterval_s = 0.3\nretention = 2',
      {
        forge: `argv = ["${process.execPath}", "${testAgentPath}"]\nrestore_checkpoint = true`,
      },
    );
    const notes = join(cell.dir, 'workspace', 'notes.md');
    await fs.writeFile(notes, 'good work\n');
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const first = await waitFor(
      async () => {
        const status = await statusOf(`${cell.uuid}/forge`);
        return status?.health === 'healthy' && status.pid ? status : undefined;
      },
      20_000,
      'forge healthy',
    );
    started.push(first.pid!);
    await waitFor(
      async () =>
        (await cellEvents(cell.dir)).some((event) => event.event === 'checkpoint_created'),
      20_000,
      'a periodic checkpoint',
    );
    await fs.writeFile(notes, 'half-written garbage\n');
    process.kill(first.pid!, 'SIGKILL');
    const revived = await waitFor(
      async () => {
        const status = await statusOf(`${cell.uuid}/forge`);
        return status?.health === 'healthy' && status.pid && status.pid !== first.pid
          ? status
          : undefined;
      },
      20_000,
      'forge revived',
    );
    started.push(revived.pid!);
    expect(await fs.readFile(notes, 'utf8')).toBe('good work\n');
    const kinds = await waitFor(
      async () => {
        const seen = (await cellEvents(cell.dir)).map((event) => event.event);
        return seen.includes('checkpoint_restored') && seen.includes('agent_revived')
          ? seen
          : undefined;
      },
      10_000,
      'the restore and the revive in the log',
    );
    expect(kinds.lastIndexOf('checkpoint_restored')).toBeLessThan(
      kinds.lastIndexOf('agent_revived'),
    );
    expect(kinds).toContain('checkpoint_restored');
  });

  it('stops a crash loop: restarts back off, then the restart intensity is exceeded and the death escalates', async () => {
    const { cell, config, policyInput } = await fleet(
      ['forge'],
      '[policy.agents.forge]\nrestart_intensity = { max_restarts = 3, window = "10m" }\nrollback_before_restart = false',
      {
        forge: `argv = ["${process.execPath}", "${testAgentPath}", "--exit-after", "50"]`,
      },
    );
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const escalated = await waitFor(
      async () => {
        const status = await statusOf(key);
        return status?.last_decision?.action === 'escalate' ||
          status?.last_decision?.action === 'record_only'
          ? status
          : undefined;
      },
      30_000,
      'the escalation',
    );
    expect(escalated.health).toBe('dead');
    // The status changes the moment the decision is taken; its event line follows on the append queue.
    const story = await waitFor(
      async () => {
        const kinds = await storyOf(cell.dir, 'forge');
        return kinds.includes('decision:escalate') ? kinds : undefined;
      },
      10_000,
      'the escalation in the log',
    );
    expect(story.filter((kind) => kind === 'agent_revived')).toHaveLength(3);
    expect(story).toContain('decision:escalate');
    const waits = (await cellEvents(cell.dir)).filter(
      (event) => event.event === 'decision' && event.action === 'wait' && event.rule === 'backoff',
    );
    expect(waits.length).toBeGreaterThan(0);
  });

  it('carries out the default when nobody answers an approval request in time (on_timeout = proceed)', async () => {
    const { cell, config, policyInput } = await fleet(
      ['forge'],
      '[policy.agents.forge]\nmode = "ask"\napproval = { channels = ["http"], timeout = "1s", on_timeout = "proceed" }',
    );
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const first = await healthyStatus(key, 20_000, 'forge healthy');
    started.push(first.pid!);
    process.kill(first.pid!, 'SIGKILL');
    const asked = await waitFor(
      async () => (await statusOf(key))?.pending_approval,
      20_000,
      'an approval request',
    );
    const revived = await healthyStatus(
      key,
      20_000,
      'forge revived once the request expired',
      first.pid,
    );
    started.push(revived.pid!);
    const decisions = await waitFor(
      async () => {
        const found = (await cellEvents(cell.dir)).filter(
          (event) => event.event === 'decision' && event.agent === 'forge',
        );
        return found.some((event) => event.rule === 'approval.expired') ? found : undefined;
      },
      10_000,
      'the expiry decision in the log',
    );
    expect(decisions.map((event) => event.rule)).toContain('approval.expired');
    // The request leaves the pending list once its expiry is stored (written after the decision
    // is logged: the two are not ordered, so the test waits for it, bounded).
    await waitFor(
      async () =>
        !(await supervisor!.status()).approvals.some((approval) => approval.id === asked) ||
        undefined,
      10_000,
      'the expired request to leave the pending list',
    );
  });

  it('watches a frozen cell but acts on nothing in it', async () => {
    const { cell, config, policyInput } = await fleet(['forge']);
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const first = await healthyStatus(key, 20_000, 'forge healthy');
    started.push(first.pid!);
    await transitionCell(cell.dir, 'frozen', { reason: 'test' });
    await waitFor(
      async () =>
        (await supervisor!.status()).cells.find((item) => item.uuid === cell.uuid)?.status ===
        'frozen',
      10_000,
      'the freeze seen',
    );
    process.kill(first.pid!, 'SIGKILL');
    await waitFor(
      async () => (await daemonState(cell.dir)).agents.forge?.health === 'dead',
      20_000,
      'the death recorded',
    );
    const story = await waitFor(
      async () => {
        const kinds = await storyOf(cell.dir, 'forge');
        return kinds.includes('agent_dead') ? kinds : undefined;
      },
      10_000,
      'agent_dead in the log',
    );
    expect(story).toContain('agent_dead');
    expect(story).not.toContain('agent_revived');
    expect(story.filter((kind) => kind.startsWith('decision:'))).toEqual([]);
  });

  it('keys the fleet by cell and name: two cells with agents of the same names are four agents to the fleet brake', async () => {
    const base = await tempDir('pit-fleet-');
    const root = join(base, 'missions');
    const cells = [
      await makeCell([{ name: 'forge' }, { name: 'smith' }], root),
      await makeCell([{ name: 'forge' }, { name: 'smith' }], root),
    ];
    // Two deaths of four agents is 50 %: under max_percent = 60 the brake stays off. Keyed by name
    // alone the fleet would be two agents and the same deaths 100 % ("2 of 2 agents").
    const toml = [
      '[daemon]',
      'state_dir = "state"',
      '[daemon.http]',
      'enabled = false',
      '[cells]',
      'root = "missions"',
      'heartbeat_stale_s = 15',
      'poll_interval_s = 0.2',
      'resurrect_after_s = 0',
      '[checkpoints]',
      'interval_s = 0',
      '[policy.defaults]',
      'backoff = { initial = "200ms", cap = "1s", jitter = 0 }',
      'dead_after = "1500ms"', // both deaths are on the books before either is acted on
      '[policy.fleet_brake]',
      'max_deaths = 10',
      'max_percent = 60',
      'min_agents = 2',
      'restart_interval = "10m"',
      ...['forge', 'smith'].flatMap((name) => [
        `[agents.${name}]`,
        'startup_grace_s = 10',
        'stop_grace_s = 2',
        `argv = ["${process.execPath}", "${testAgentPath}"]`,
        `[agents.${name}.probes]`,
        'failure_threshold = 1',
      ]),
    ].join('\n');
    const { config, policyInput } = testConfig(toml, base);
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const healthyPid = (key: string) => async () => {
      const status = await statusOf(key);
      return status?.health === 'healthy' && status.pid ? status.pid : undefined;
    };
    const keys = cells.flatMap((cell) => [`${cell.uuid}/forge`, `${cell.uuid}/smith`]);
    const pids = new Map<string, number>();
    for (const key of keys) pids.set(key, await waitFor(healthyPid(key), 30_000, `${key} healthy`));
    for (const pid of pids.values()) started.push(pid);
    expect((await supervisor.status()).agents.map((agent) => agent.key).sort()).toEqual(
      [...keys].sort(),
    );
    for (const cell of cells) process.kill(pids.get(`${cell.uuid}/forge`)!, 'SIGKILL');
    for (const cell of cells) {
      const key = `${cell.uuid}/forge`;
      const revived = await waitFor(
        async () => {
          const pid = await healthyPid(key)();
          return pid !== undefined && pid !== pids.get(key) ? pid : undefined;
        },
        30_000,
        `${key} revived`,
      );
      started.push(revived);
      const decisions = (await cellEvents(cell.dir)).filter(
        (event) => event.event === 'decision' && event.agent === 'forge',
      );
      expect(decisions.length).toBeGreaterThan(0);
      for (const decision of decisions) expect(String(decision.reason)).not.toMatch(/fleet brake/);
      expect(await storyOf(cell.dir, 'smith')).not.toContain('agent_dead');
    }
  });

  it('engages the fleet brake when agents die together: their deaths are decided as one storm, starts spaced', async () => {
    const names = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
    const { cell, config, policyInput } = await fleet(
      names,
      '[policy.fleet_brake]\nmax_deaths = 3\nrestart_interval = "300ms"',
    );
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const pids = new Map<string, number>();
    for (const name of names) {
      const status = await waitFor(
        async () => {
          const agent = await statusOf(`${cell.uuid}/${name}`);
          return agent?.health === 'healthy' && agent.pid ? agent : undefined;
        },
        30_000,
        `${name} healthy`,
      );
      pids.set(name, status.pid!);
      started.push(status.pid!);
    }
    for (const pid of pids.values()) process.kill(pid, 'SIGKILL');
    for (const name of names) {
      const revived = await waitFor(
        async () => {
          const agent = await statusOf(`${cell.uuid}/${name}`);
          return agent?.health === 'healthy' && agent.pid && agent.pid !== pids.get(name)
            ? agent
            : undefined;
        },
        30_000,
        `${name} revived`,
      );
      started.push(revived.pid!);
    }
    const braked = await waitFor(
      async () => {
        const found = (await cellEvents(cell.dir)).filter(
          (event) => event.event === 'decision' && /fleet brake/.test(String(event.reason)),
        );
        return found.length > 0 ? found : undefined;
      },
      10_000,
      'a fleet-brake decision in the log',
    );
    expect(braked.length).toBeGreaterThan(0);
  });

  // Found by the fault suite (daemon-kill, seed 221588073, iteration 20): the approval request was
  // stored, but the daemon was SIGKILLed before the agent's state named it; the next daemon waited
  // on the request without linking it, so the status showed no pending approval (and housekeeping,
  // which follows the state's pending_approval, did not watch it).
  it('links a stored pending approval again when the state file lost it, and acts on its answer', async () => {
    const { cell, config, policyInput } = await fleet(
      ['forge'],
      '[policy.agents.forge]\nmode = "ask"\napproval = { channels = ["http"], timeout = "10m" }',
    );
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const first = await healthyStatus(key, 20_000, 'forge healthy');
    started.push(first.pid!);
    process.kill(first.pid!, 'SIGKILL');
    const asked = await waitFor(
      async () => (await statusOf(key))?.pending_approval,
      20_000,
      'an approval request',
    );
    await supervisor.stop();
    supervisor = undefined;
    // The state write that named the request is lost (as after a SIGKILL before it landed).
    const statePath = agentStatePath(config.daemon.state_dir, cell.dir);
    const state = JSON.parse(await fs.readFile(statePath, 'utf8')) as {
      agents: Record<string, Record<string, unknown>>;
    };
    delete state.agents.forge!.pending_approval;
    await fs.writeFile(statePath, JSON.stringify(state));
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    expect((await statusOf(key))?.pending_approval).toBe(asked);
    expect((await supervisor.status()).approvals.map((approval) => approval.id)).toEqual([asked]);
    // Answered (as `pit approve` does through the daemon's HTTP API): acted on.
    expect(
      await supervisor.decideApproval(asked, 'approve', { by: 'ops', channel: 'http' }),
    ).toMatchObject({ ok: true });
    const revived = await healthyStatus(key, 20_000, 'forge revived after the answer', first.pid);
    started.push(revived.pid!);
  });

  it('asks once per cell for two cells with an ask-policy agent of one name, and an answer revives only its own', async () => {
    const { base, cell, config, policyInput } = await fleet(
      ['gamma'],
      '[policy.agents.gamma]\nmode = "ask"\napproval = { channels = ["http"], timeout = "10m" }',
    );
    const other = await makeCell([{ name: 'gamma' }], join(base, 'missions'));
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const keys = [`${cell.uuid}/gamma`, `${other.uuid}/gamma`];
    const first = await Promise.all(
      keys.map((key) => healthyStatus(key, 20_000, `${key} healthy`)),
    );
    for (const status of first) started.push(status.pid!);
    for (const status of first) process.kill(status.pid!, 'SIGKILL');
    const asked = await Promise.all(
      keys.map((key) =>
        waitFor(async () => (await statusOf(key))?.pending_approval, 20_000, `${key} asks`),
      ),
    );
    expect(new Set(asked).size).toBe(2);
    const approvals = (await supervisor.status()).approvals;
    expect(approvals.map((approval) => [approval.id, approval.cell_uuid]).sort()).toEqual(
      [
        [asked[0], cell.uuid],
        [asked[1], other.uuid],
      ].sort(),
    );
    expect(
      await supervisor.decideApproval(asked[1]!, 'approve', { channel: 'http' }),
    ).toMatchObject({
      ok: true,
    });
    const revived = await healthyStatus(
      keys[1]!,
      20_000,
      "the other cell's gamma revived",
      first[1]!.pid,
    );
    started.push(revived.pid!);
    // The first cell's gamma still waits on its own request, unrevived.
    expect(await statusOf(keys[0]!)).toMatchObject({ pending_approval: asked[0] });
    expect((await statusOf(keys[0]!))?.pid).toBeUndefined();
  });

  it('asks a human under policy ask, and revives the agent once the request is approved', async () => {
    const { cell, config, policyInput } = await fleet(
      ['forge'],
      '[policy.agents.forge]\nmode = "ask"\napproval = { channels = ["http"], timeout = "10m" }',
    );
    supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
    await supervisor.start();
    const key = `${cell.uuid}/forge`;
    const first = await healthyStatus(key, 20_000, 'forge healthy');
    started.push(first.pid!);
    process.kill(first.pid!, 'SIGKILL');
    const asked = await waitFor(
      async () => (await statusOf(key))?.pending_approval,
      20_000,
      'an approval request',
    );
    expect((await supervisor.status()).approvals.map((approval) => approval.id)).toEqual([asked]);
    expect((await statusOf(key))?.pid).toBeUndefined();
    expect(await supervisor.decideApproval('apr-nope', 'approve', {})).toMatchObject({
      ok: false,
      reason: 'not_found',
    });
    expect(
      await supervisor.decideApproval(asked, 'approve', { by: 'ops', channel: 'http' }),
    ).toMatchObject({ ok: true });
    expect(await supervisor.decideApproval(asked, 'deny', {})).toMatchObject({
      ok: false,
      reason: 'already_decided',
    });
    const revived = await healthyStatus(key, 20_000, 'forge revived after approval');
    started.push(revived.pid!);
    // Appends are queued off the restart path: wait for the revive's line.
    const story = await waitFor(
      async () => {
        const kinds = await storyOf(cell.dir, 'forge');
        return kinds.includes('agent_revived') ? kinds : undefined;
      },
      10_000,
      'agent_revived in the log',
    );
    expect(story).toEqual(
      expect.arrayContaining(['revive_requested', 'revive_approved', 'agent_revived']),
    );
    const approved = await waitFor(
      async () => (await cellEvents(cell.dir)).find((event) => event.event === 'revive_approved'),
      10_000,
      'revive_approved in the log',
    );
    expect(approved).toMatchObject({ approval_id: asked, by: 'ops', channel: 'http' });
  });
});
