import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cellPaths } from '@pit/cell-spec';
import { cleanup, spawnTsx, tempDir, waitFor, within } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import type { FleetStatus } from '../src/supervisor.js';
import { makeCell } from './helpers.js';

// A decision that does not change is written once: an escalated crash loop, a never-policy agent,
// a denied one and one waiting for an approval stay dead, and the daemon writes nothing more about
// them however often it probes them (no event, no log line, no state write).

const RUN_DAEMON = fileURLToPath(new URL('./fixtures/run-daemon.ts', import.meta.url));
const TOKEN = 'standing-token-0123456789abcdef-0123456789abcdef';

afterEach(cleanup);

const AGENTS = ['crash', 'idle', 'asked', 'waiting'];

/** Agents that die at once and stay dead: crash (escalated), idle (never), asked (denied), waiting (unanswered). */
async function setup() {
  const base = await tempDir('pit-standing-');
  const cell = await makeCell(
    AGENTS.map((name) => ({ name })),
    join(base, 'missions'),
  );
  const lines = [
    '[daemon]',
    'state_dir = "state"',
    'log_level = "info"',
    '[daemon.http]',
    'listen = "127.0.0.1:0"',
    'token_env = "PIT_TEST_TOKEN"',
    '[bus]',
    'enabled = false',
    '[checkpoints]',
    'interval_s = 0',
    '[cells]',
    'root = "missions"',
    'poll_interval_s = 0.1',
    'heartbeat_stale_s = 15',
    '[policy.defaults]',
    'mode = "auto"',
    'dead_after = "0s"',
    'backoff = { initial = "50ms", cap = "100ms", jitter = 0 }',
    'restart_intensity = { max_restarts = 2, window = "10m" }',
    // The four agents die together at their first start: more than half of the fleet, so the
    // fleet brake would space crash's restarts 10 s apart. This test is about standing decisions.
    '[policy.fleet_brake]',
    'enabled = false',
    '[policy.agents.crash]',
    'approval = { channels = [] }',
    '[policy.agents.idle]',
    'mode = "never"',
    '[policy.agents.asked]',
    'mode = "ask"',
    'approval = { channels = ["http"], timeout = "10m" }',
    '[policy.agents.waiting]',
    'mode = "ask"',
    'approval = { channels = ["http"], timeout = "10m" }',
    ...AGENTS.flatMap((name) => [`[agents.${name}]`, `argv = ["sh", "-c", "exit 3"]`]),
  ];
  const configPath = join(base, 'pit.toml');
  await fs.writeFile(configPath, lines.join('\n'), { mode: 0o600 });
  return { base, cell, configPath };
}

/** The decisions written to the cell's event log, per agent, as `action:rule`. */
async function decisionsIn(
  eventsPath: string,
): Promise<{ lines: number; byAgent: Record<string, string[]> }> {
  const text = await fs.readFile(eventsPath, 'utf8').catch(() => '');
  const byAgent: Record<string, string[]> = {};
  const lines = text.split('\n').filter(Boolean);
  for (const line of lines) {
    const event = JSON.parse(line) as {
      event: string;
      agent: string;
      action?: string;
      rule?: string;
    };
    if (event.event === 'decision')
      (byAgent[event.agent] ??= []).push(`${event.action}:${event.rule}`);
  }
  return { lines: lines.length, byAgent };
}

/** Probe runs so far (every agent, every kind), from the daemon's own /metrics. */
async function probesRun(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(/^pit_probes_total\{[^}]*\} (\d+)$/gm))
    total += Number(match[1]);
  return total;
}

describe('standing decisions (e2e, a real daemon)', () => {
  it('writes escalate/record only, never, a denial and waiting for approval once, then nothing more over many probe cycles', async () => {
    const { base, cell, configPath } = await setup();
    const events = cellPaths(cell.dir).events;
    const daemon = spawnTsx(RUN_DAEMON, [configPath], {
      env: { ...process.env, PIT_TEST_TOKEN: TOKEN },
    });
    const ready = await waitFor(
      () => /^READY (\S+) /m.exec(daemon.output())?.[1],
      30_000,
      'the daemon to start',
    );
    const status = async () => (await (await fetch(`${ready}/api/status`)).json()) as FleetStatus;

    // asked: waiting for an approval, then denied over HTTP.
    const approval = await waitFor(
      async () =>
        (await status()).agents.find((agent) => agent.agent === 'asked')?.pending_approval,
      20_000,
      'asked to wait for an approval',
    );
    const denied = await fetch(`${ready}/api/approvals/${approval}/deny`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ reason: 'leave it dead' }),
    });
    expect(denied.status).toBe(200);
    const settled = await waitFor(
      async () => {
        const { byAgent } = await decisionsIn(events);
        const last = (agent: string) => byAgent[agent]?.at(-1);
        return last('crash') === 'escalate:restart_intensity' &&
          last('idle') === 'record_only:mode.never' &&
          last('asked')?.endsWith(':approval.denied') &&
          last('waiting') === 'wait:approval.pending'
          ? byAgent
          : undefined;
      },
      30_000,
      'every agent to reach its standing decision',
    );
    // Each standing decision was written once.
    expect(settled.crash!.filter((entry) => entry.startsWith('escalate:'))).toHaveLength(1);
    expect(settled.idle).toEqual(['record_only:mode.never']);
    expect(settled.asked!.filter((entry) => entry.endsWith(':approval.denied'))).toHaveLength(1);
    expect(settled.asked!.filter((entry) => entry.endsWith(':approval.pending'))).toHaveLength(1);
    expect(settled.waiting!.filter((entry) => entry.endsWith(':approval.pending'))).toHaveLength(1);

    // Then many probe cycles of the three dead agents: nothing more is written anywhere.
    const stateDir = join(base, 'state');
    const mtimes = async () => {
      const files = (await fs.readdir(stateDir, { recursive: true })).filter((file) =>
        file.endsWith('.json'),
      );
      return Object.fromEntries(
        await Promise.all(
          files.map(async (file) => [file, (await fs.stat(join(stateDir, file))).mtimeMs] as const),
        ),
      );
    };
    // history.json is written up to HISTORY_WRITE_MS after the changes it records (the last
    // event's): the baseline is taken once that write has landed.
    const lastEventAt = Math.max(
      ...(await fs.readFile(events, 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((line) => Date.parse((JSON.parse(line) as { ts: string }).ts)),
    );
    await waitFor(
      async () => (await fs.stat(join(stateDir, 'history.json'))).mtimeMs >= lastEventAt,
      10_000,
      'history.json to record the last change',
    );
    const before = {
      events: (await decisionsIn(events)).lines,
      log: daemon.output(),
      files: await mtimes(),
    };
    const start = await probesRun(ready);
    const cycles = 40;
    await within(
      waitFor(
        async () => (await probesRun(ready)) >= start + AGENTS.length * cycles,
        60_000,
        `${cycles} probe cycles`,
      ),
      65_000,
      'probe cycles',
    );
    expect((await decisionsIn(events)).lines).toBe(before.events);
    expect(daemon.output()).toBe(before.log);
    expect(await mtimes()).toEqual(before.files);

    daemon.kill('SIGTERM');
    await waitFor(() => daemon.exitCode !== null, 20_000, 'the daemon to exit');
  }, 120_000);
});
