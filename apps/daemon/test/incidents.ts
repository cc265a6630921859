/**
 * Real incidents under a real daemon (`pit daemon` in a child process, real agents): a crash
 * and restart, a corrupted config rolled back, an ask-policy death approved over HTTP, and a
 * crash of an agent outside cells. Leaves behind the logs the daemon wrote, for the tests that
 * check those logs (the event-kind contract here, `pit why` in apps/cli). Call `cleanup()` from
 * @pit/test-kit in afterEach.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cellPaths } from '@pit/cell-spec';
import { createSnapshotStore } from '@pit/snapshot';
import {
  reapLater,
  spawnTsx,
  tempDir,
  testAgentPath as AGENT,
  waitFor,
  within,
} from '@pit/test-kit';
import { makeCell } from './helpers.js';

const RUN_DAEMON = fileURLToPath(new URL('./fixtures/run-daemon.ts', import.meta.url));
const TOKEN = 'incidents-token-0123456789abcdef-0123456789';
const OPS_TOKEN = 'incidents-ops-token-abcdef0123456789-abcdef01';

/** What the incidents left behind. */
export interface IncidentsRun {
  /** The config the daemon ran with (for `pit --config`). */
  configPath: string;
  cellDir: string;
  cellUuid: string;
  /** The cell's `logs/events.jsonl` and the daemon's host log (agents outside cells). */
  cellEvents: string;
  hostEvents: string;
  /** The smith agent's config file (corrupted, then rolled back). */
  smithConfig: string;
  /** The approval that was granted for oracle. */
  approvalId: string;
  /** Everything the daemon printed (JSON log lines at `warn` and above). */
  daemonOutput: string;
}

interface AgentStatus {
  agent: string;
  health: string;
  pid?: number;
  pending_approval?: string;
}

async function writeConfig(base: string): Promise<string> {
  const agent = (name: string, args = '', keys: string[] = []) => [
    `[agents.${name}]`,
    `argv = ["${process.execPath}", "${AGENT}"${args}]`,
    ...keys,
    'startup_grace_s = 10',
    'stop_grace_s = 2',
    `[agents.${name}.probes]`,
    'failure_threshold = 1',
  ];
  const lines = [
    '[daemon]',
    'state_dir = "state"',
    'log_level = "warn"',
    '[daemon.http]',
    'listen = "127.0.0.1:0"',
    'token_env = "PIT_TEST_TOKEN"',
    // A named approver: the audit trail records who answered by the token used, not by a claim.
    '[daemon.http.approvers.ops]',
    'token_env = "PIT_TEST_OPS_TOKEN"',
    '[cells]',
    'root = "missions"',
    'heartbeat_stale_s = 15', // generous: deaths here are seen by the process probe
    'poll_interval_s = 0.2',
    'resurrect_after_s = 0',
    '[checkpoints]',
    'interval_s = 0',
    '[bus]',
    'listen = "127.0.0.1:0"',
    '[policy.defaults]',
    'backoff = { initial = "200ms", cap = "1s", jitter = 0 }',
    '[policy.agents.oracle]',
    'mode = "ask"',
    'approval = { channels = ["http"], timeout = "10m" }',
    ...agent('scout'),
    ...agent('smith', ', "--config", "smith.json"', [
      'config_files = [{ path = "workspace/smith.json" }]',
    ]),
    ...agent('oracle'),
    '[agents.gateway]',
    'cell = "none"',
    'cwd = "."',
    'argv = ["sleep", "600"]',
    'startup_grace_s = 5',
    'probes = { heartbeat = false, failure_threshold = 1 }',
  ];
  const configPath = join(base, 'pit.toml');
  await fs.writeFile(configPath, lines.join('\n'), { mode: 0o600 });
  return configPath;
}

/**
 * Runs the daemon through the incidents and stops it (SIGTERM: its event queues are flushed).
 * @throws when a step does not happen within its bound (with the daemon's output).
 */
export async function runIncidents(): Promise<IncidentsRun> {
  const base = await tempDir('pit-incidents-');
  const cell = await makeCell(
    ['scout', 'smith', 'oracle'].map((name) => ({ name })),
    join(base, 'missions'),
  );
  const smithConfig = join(cell.dir, 'workspace', 'smith.json');
  await fs.writeFile(smithConfig, '{"model":"good"}\n');
  const configPath = await writeConfig(base);
  const daemon = spawnTsx(RUN_DAEMON, [configPath], {
    env: { ...process.env, PIT_TEST_TOKEN: TOKEN, PIT_TEST_OPS_TOKEN: OPS_TOKEN },
  });
  const step = async <T>(what: string, work: () => Promise<T>): Promise<T> =>
    work().catch((error: unknown) => {
      throw new Error(`${what}: ${String(error)}\n--- daemon output ---\n${daemon.output()}`);
    });
  const ready = await step('start', () =>
    waitFor(() => /^(READY|FAILED) .*$/m.exec(daemon.output())?.[0], 30_000, 'the daemon'),
  );
  if (ready.startsWith('FAILED')) throw new Error(`the daemon did not start: ${ready}`);
  const url = ready.split(' ')[1]!;
  const agentOf = async (name: string) =>
    ((await (await fetch(`${url}/api/status`)).json()) as { agents: AgentStatus[] }).agents.find(
      (agent) => agent.agent === name,
    );
  const healthy = (name: string, not?: number) =>
    step(`${name} healthy`, () =>
      waitFor(
        async () => {
          const agent = await agentOf(name);
          if (agent?.health !== 'healthy' || !agent.pid || agent.pid === not) return undefined;
          reapLater(agent.pid);
          return agent.pid;
        },
        60_000,
        `${name} healthy${not ? ` with a pid other than ${not}` : ''}`,
      ),
    );

  // A crash, and the restart.
  const scout = await healthy('scout');
  process.kill(scout, 'SIGKILL');
  await healthy('scout', scout);

  // A corrupted config, rolled back to last known good before the restart.
  const smith = await healthy('smith');
  const store = createSnapshotStore({ stateDir: join(base, 'state') });
  await step('a snapshot of smith', () =>
    waitFor(async () => (await store.history('smith')).length > 0, 30_000, 'a snapshot'),
  );
  await fs.writeFile(smithConfig, '{"model": broken');
  process.kill(smith, 'SIGKILL');
  await healthy('smith', smith);

  // A death under policy ask, approved over HTTP.
  const oracle = await healthy('oracle');
  process.kill(oracle, 'SIGKILL');
  const approvalId = await step('an approval request', () =>
    waitFor(async () => (await agentOf('oracle'))?.pending_approval, 30_000, 'a request'),
  );
  const answer = await fetch(`${url}/api/approvals/${approvalId}/approve`, {
    method: 'POST',
    headers: { authorization: `Bearer ${OPS_TOKEN}` },
    body: JSON.stringify({ reason: 'checked the logs' }),
  });
  if (answer.status !== 200) throw new Error(`approve: HTTP ${answer.status}`);
  await healthy('oracle', oracle);

  // An agent outside cells: its events go to the daemon's host log.
  const gateway = await step('gateway running', () =>
    waitFor(async () => (await agentOf('gateway'))?.pid, 30_000, 'gateway'),
  );
  reapLater(gateway);
  process.kill(gateway, 'SIGKILL');
  await step('gateway restarted', () =>
    waitFor(
      async () => {
        const pid = (await agentOf('gateway'))?.pid;
        return pid && pid !== gateway ? (reapLater(pid), pid) : undefined;
      },
      30_000,
      'gateway restarted',
    ),
  );

  const exited = new Promise<number | null>((resolve) =>
    daemon.exitCode !== null ? resolve(daemon.exitCode) : daemon.once('exit', resolve),
  );
  daemon.kill('SIGTERM');
  const code = await within(exited, 30_000, 'the daemon to stop');
  if (code !== 0) throw new Error(`the daemon exited ${code}\n${daemon.output()}`);
  return {
    configPath,
    cellDir: cell.dir,
    cellUuid: cell.uuid,
    cellEvents: cellPaths(cell.dir).events,
    hostEvents: join(base, 'state', 'logs', 'events.jsonl'),
    smithConfig,
    approvalId,
    daemonOutput: daemon.output(),
  };
}
