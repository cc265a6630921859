import { appendFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cellPaths,
  createEventAppender,
  provisionCell,
  readEvents,
  type CellEvent,
  type KnownCellEvent,
} from '@pit/cell-spec';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The real daemon, run through real incidents by the daemon's own test fixture.
import { runIncidents, type IncidentsRun } from '@pit/daemon/test/incidents';
import { cleanup } from '@pit/test-kit';
import { pit } from './cli.js';

/**
 * What the docs promise `pit why` shows of each event (`pit why --help`: "probe results, the
 * policy rule that fired, approvals and who gave them, rollback hashes, restart outcomes";
 * apps/daemon/README.md: every decision "with its rule and reason", `config_rolled_back`
 * "with both hashes per file"; the root README: rollback "hashes printed"): the values that
 * must appear in the line for the event.
 */
function promised(event: CellEvent): string[] {
  switch (event.event) {
    case 'agent_dead':
      return [
        event.reason,
        ...(event.failing.length > 0 ? [`failing probes: ${event.failing.join(', ')}`] : []),
      ];
    case 'decision':
      return [event.action, event.rule, event.reason];
    case 'revive_requested':
      return [event.approval_id, event.proposed, event.expires_at];
    case 'revive_approved':
    case 'revive_denied':
      return [event.by ?? 'unknown', event.channel ?? 'unknown', event.reason ?? ''];
    case 'config_rolled_back':
      return event.files.flatMap((file) => [
        file.path,
        file.old_sha256?.slice(0, 12) ?? '(absent)',
        file.new_sha256.slice(0, 12),
      ]);
    case 'rollback_failed':
    case 'revive_failed':
    case 'agent_degraded':
      return [event.reason];
    case 'agent_revived':
      return [String(event.pid), `attempt ${event.attempt}`];
    case 'agent_substituted':
      return [event.substitute];
    default:
      return [];
  }
}

/** The events about `agent` in a log the daemon wrote. */
async function eventsOf(path: string, agent: string): Promise<KnownCellEvent[]> {
  const events: KnownCellEvent[] = [];
  for await (const entry of readEvents(path))
    if (entry.ok && entry.known && entry.event.agent === agent) events.push(entry.event);
  return events;
}

/** The story lines `pit why` printed, by timestamp. */
function linesAt(stdout: string, ts: string): string[] {
  return stdout.split('\n').filter((line) => line.trimStart().startsWith(`${ts}  `));
}

/** Checks that every story event of `agent` in `log` is told with every promised detail. */
async function expectEveryPromisedDetail(
  run: IncidentsRun,
  agent: string,
  log: string,
): Promise<string> {
  const result = await pit(['--config', run.configPath, 'why', agent]);
  expect(result.code, result.stderr).toBe(0);
  const told = (await eventsOf(log, agent)).filter(
    (event) => !['agent_started', 'agent_joined'].includes(event.event),
  );
  expect(told.length).toBeGreaterThan(0);
  for (const event of told) {
    // Events after the incident closed (healthy again) are not part of a story.
    const lines = linesAt(result.stdout, event.ts);
    if (event.event === 'agent_healthy' && lines.length === 0) continue;
    expect(lines, `${event.event} at ${event.ts} in:\n${result.stdout}`).not.toEqual([]);
    for (const detail of promised(event))
      expect(lines.join('\n'), `${event.event}: ${detail}`).toContain(detail);
  }
  return result.stdout;
}

describe('pit why, on the logs of a real daemon through real incidents', () => {
  let run: IncidentsRun;
  beforeAll(async () => {
    run = await runIncidents();
  }, 300_000);
  afterAll(cleanup);

  it('tells a crash and its restart: the death, the rule that fired, the new pid', async () => {
    const stdout = await expectEveryPromisedDetail(run, 'scout', run.cellEvents);
    expect(stdout).toMatch(new RegExp(`scout in cell ${run.cellUuid}: incident at \\S+ — revived`));
    expect(stdout).toMatch(/dead: .*SIGKILL/);
  });

  it('tells a config rollback with both hashes of each file', async () => {
    const stdout = await expectEveryPromisedDetail(run, 'smith', run.cellEvents);
    expect(stdout).toMatch(/config rolled back: .*smith\.json .* \(from snapshot [0-9a-f]{12}\)/);
    expect(stdout).toContain(run.smithConfig);
    expect(stdout).toMatch(/— revived/);
  });

  it('tells an approval: who asked for what, who approved it and through which channel', async () => {
    const stdout = await expectEveryPromisedDetail(run, 'oracle', run.cellEvents);
    expect(stdout).toContain(`approval requested (${run.approvalId})`);
    expect(stdout).toContain('approved by ops via http: checked the logs');
    const json = await pit(['--config', run.configPath, 'why', 'oracle', '--json']);
    const story = JSON.parse(json.stdout) as {
      incidents: Array<{ outcome: string; events: Array<{ event: string; by?: string }> }>;
    };
    expect(story.incidents.at(-1)!.outcome).toBe('revived');
    expect(story.incidents.at(-1)!.events.find((e) => e.event === 'revive_approved')?.by).toBe(
      'ops',
    );
  });

  it('tells the incident of an agent outside cells from the daemon’s host log', async () => {
    const stdout = await expectEveryPromisedDetail(run, 'gateway', run.hostEvents);
    expect(stdout).toMatch(/\ngateway: incident at \S+ — revived/);
  });

  it('shows a kind it does not know with its fields, and warns about a torn line without losing the story', async () => {
    const dead = (await eventsOf(run.cellEvents, 'smith')).find((e) => e.event === 'agent_dead')!;
    const during = new Date(Date.parse(dead.ts) + 1).toISOString();
    appendFileSync(
      run.cellEvents,
      `${JSON.stringify({ ts: during, event: 'budget_exceeded', agent: 'smith', spent_usd: 40.12 })}\n{"ts":"2030-01-01T00:00:00.000Z","event":"agent_de`,
    );
    const result = await pit(['--config', run.configPath, 'why', 'smith']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`${during}  budget_exceeded: spent_usd=40.12`);
    expect(result.stdout).toContain('config rolled back');
    expect(result.stderr).toMatch(/torn last line/);
  });
});

describe('pit why', () => {
  it('says so when an agent has no incidents', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pit-cli-why-'));
    try {
      await provisionCell(root, {
        mission: 'm',
        created_by: 'test',
        agents: [{ name: 'forge', role: 'lead' }],
      });
      const result = await pit(['--cells-root', root, 'why', 'forge']);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('forge: no incidents in the event logs');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses a name no cell, config or event log knows, naming where it looked (exit 2)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pit-cli-why-'));
    try {
      await provisionCell(root, {
        mission: 'm',
        created_by: 'test',
        agents: [{ name: 'forge', role: 'lead' }],
      });
      const result = await pit(['--cells-root', root, 'why', 'nosuch']);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(`no agent named nosuch: it is in no cell under ${root}`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('tells an incident whose death is in a rotated file and whose restart is in the live one', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pit-cli-why-'));
    try {
      const { dir } = await provisionCell(root, {
        mission: 'm',
        created_by: 'test',
        agents: [{ name: 'forge', role: 'lead' }],
      });
      // The daemon's own appender, rotating at 4 KiB: the death ends up two files back.
      const log = createEventAppender(cellPaths(dir).events, {
        beneath: dir,
        rotate: { maxBytes: 4096, keep: 5 },
      });
      await log.append({ event: 'agent_dead', agent: 'forge', reason: 'exit 3', failing: [] });
      for (let cycle = 0; cycle < 150; cycle += 1)
        await log.append({ event: 'heartbeat', agent: 'forge', cycle });
      await log.append({
        event: 'agent_revived',
        agent: 'forge',
        pid: 4242,
        attempt: 1,
        reason: 'exit 3',
      });
      await log.close();
      expect(existsSync(join(dir, 'logs', 'events.2.jsonl'))).toBe(true);
      const result = await pit(['--cells-root', root, 'why', 'forge']);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/dead: exit 3[\s\S]*restarted as pid 4242/);
      expect(result.stdout).toContain('— revived');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
