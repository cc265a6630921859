/**
 * The rule the built-in defaults keep, with a real daemon and real agents: an agent the Pit sees
 * exit is restarted at once (subject only to backoff and the restart budget), whatever
 * `dead_after` says; `dead_after` delays only a death the Pit infers (here a stale heartbeat).
 */
import { join } from 'node:path';
import { cleanup, reapLater, tempDir, testAgentPath, waitFor } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { createSupervisor, type Supervisor } from '../src/supervisor.js';
import { createLogger } from '../src/logger.js';
import { makeCell } from './helpers.js';
import { cellEvents, testConfig } from './fleet.js';

let supervisor: Supervisor | undefined;
const started: number[] = [];

afterEach(async () => {
  if (supervisor) {
    const status = await supervisor.status().catch(() => undefined);
    for (const agent of status?.agents ?? []) reapLater(agent.pid);
    await supervisor.stop({ stopAgents: true }).catch(() => undefined);
  }
  supervisor = undefined;
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    reapLater(pid);
  }
  await cleanup();
});

const logger = createLogger({ level: process.env.PIT_TEST_LOG ? 'debug' : 'error' });

/** A cell with `agents` running the test agent; `policy` is appended as is (nothing by default). */
async function start(agents: string[], cells: string[], policy: string[] = []) {
  const base = await tempDir('pit-defaults-');
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
    'poll_interval_s = 0.2',
    ...cells,
    '[checkpoints]',
    'interval_s = 0',
    ...policy,
    ...agents.flatMap((name) => [
      `[agents.${name}]`,
      'startup_grace_s = 10',
      'stop_grace_s = 1',
      `argv = ["${process.execPath}", "${testAgentPath}"]`,
      `[agents.${name}.probes]`,
      'failure_threshold = 1',
    ]),
  ].join('\n');
  const { config, policyInput } = testConfig(toml, base);
  supervisor = await createSupervisor({ config, policyInput, env: process.env, logger });
  await supervisor.start();
  return cell;
}

/** The agent `key` healthy with a pid other than `not`. */
const healthy = (key: string, timeoutMs: number, what: string, not?: number) =>
  waitFor(
    async () => {
      const status = (await supervisor!.status()).agents.find((agent) => agent.key === key);
      return status?.health === 'healthy' && status.pid && status.pid !== not ? status : undefined;
    },
    timeoutMs,
    what,
  );

describe('the defaults: seen exits at once, inferred deaths after dead_after', () => {
  it('restarts a kill -9ed agent at once with nothing configured, and also under dead_after = "2m"', async () => {
    // plain: no [policy] at all; patient: dead_after = "2m", which must not delay a seen exit.
    const cell = await start(
      ['plain', 'patient'],
      ['heartbeat_stale_s = 30'],
      ['[policy.agents.patient]', 'dead_after = "2m"'],
    );
    for (const name of ['plain', 'patient']) {
      const key = `${cell.uuid}/${name}`;
      const first = await healthy(key, 20_000, `${name} healthy`);
      started.push(first.pid!);
      const killedAt = Date.now();
      process.kill(first.pid!, 'SIGKILL');
      // Far below the 2 minutes of dead_after: the exit is a fact, acted on at once.
      const second = await healthy(key, 20_000, `${name} back after SIGKILL`, first.pid);
      started.push(second.pid!);
      expect(Date.now() - killedAt).toBeLessThan(20_000);
      const events = await cellEvents(cell.dir);
      const decisions = events.filter(
        (event) => event.agent === name && event.event === 'decision',
      );
      expect(decisions.map((event) => event.rule)).not.toContain('dead_after');
    }
  });

  it('waits dead_after before acting on an agent whose heartbeat went stale', async () => {
    const cell = await start(
      ['stale'],
      ['heartbeat_stale_s = 1'],
      ['[policy.defaults]', 'dead_after = "3s"'],
    );
    const key = `${cell.uuid}/stale`;
    const first = await healthy(key, 20_000, 'stale healthy');
    started.push(first.pid!);
    // Alive but silent: its heartbeat stops, the process stays. The Pit can only infer the death.
    process.kill(first.pid!, 'SIGSTOP');
    const second = await healthy(key, 30_000, 'stale replaced after dead_after', first.pid);
    started.push(second.pid!);
    // agent_revived is appended just after the start is recorded: under load the new agent can
    // be reported before the line is written.
    const events = await waitFor(
      async () => {
        const all = (await cellEvents(cell.dir)).filter((event) => event.agent === 'stale');
        return all.some((event) => event.event === 'agent_revived') ? all : undefined;
      },
      10_000,
      'agent_revived written',
    );
    const dead = events.find((event) => event.event === 'agent_dead');
    const waited = events.find(
      (event) => event.event === 'decision' && event.rule === 'dead_after',
    );
    const revived = events.find((event) => event.event === 'agent_revived');
    expect(dead, 'agent_dead logged').toBeDefined();
    expect(waited, 'a wait on dead_after logged').toBeDefined();
    expect(String(waited?.reason)).toContain('dead_after=3s (defaults)');
    expect(revived, 'agent_revived logged').toBeDefined();
    // Not before dead_after had passed since the death (ms resolution of the log; small slack).
    expect(Date.parse(revived!.ts) - Date.parse(dead!.ts)).toBeGreaterThanOrEqual(3_000 - 250);
  }, 60_000);
});
