import { mkdtempSync, rmSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendEvent, cellPaths, provisionCell } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'pit-cli-why-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('pit why', () => {
  it('tells the story of the last incidents from the event log alone', async () => {
    const { dir, manifest } = await provisionCell(root, {
      mission: 'm',
      created_by: 'test',
      agents: [
        { name: 'forge', role: 'lead' },
        { name: 'archive', role: 'write' },
      ],
    });
    const events = cellPaths(dir).events;
    const a = 'a'.repeat(64);
    const b = 'b'.repeat(64);
    const log = [
      {
        ts: '2026-11-22T10:00:00.000Z',
        event: 'agent_dead',
        agent: 'forge',
        reason: 'process exited with code 1',
        failure_class: 'bad_config',
        probes: [
          { kind: 'process', ok: false, detail: 'exit 1' },
          { kind: 'heartbeat', ok: false, detail: 'age 95 s > 60 s' },
        ],
      },
      {
        ts: '2026-11-22T10:00:00.010Z',
        event: 'decision',
        agent: 'forge',
        action: 'rollback_and_restart',
        reason: 'failure class bad_config → rollback_and_restart',
        rule: 'failure_classes.bad_config',
      },
      {
        ts: '2026-11-22T10:00:00.020Z',
        event: 'config_rolled_back',
        agent: 'forge',
        files: [{ path: '/etc/forge/config.yaml', old_sha256: a, new_sha256: b }],
        reason: 'bad_config',
      },
      {
        ts: '2026-11-22T10:00:00.300Z',
        event: 'agent_revived',
        agent: 'forge',
        pid: 4242,
        attempt: 1,
      },
      {
        ts: '2026-11-22T11:00:00.000Z',
        event: 'agent_dead',
        agent: 'archive',
        reason: 'heartbeat stale',
      },
      {
        ts: '2026-11-22T11:00:00.010Z',
        event: 'decision',
        agent: 'archive',
        action: 'ask',
        reason: 'mode ask (mission archive)',
      },
      {
        ts: '2026-11-22T11:00:00.020Z',
        event: 'revive_requested',
        agent: 'archive',
        approval_id: 'k3x9',
      },
      {
        ts: '2026-11-22T11:05:00.000Z',
        event: 'revive_approved',
        agent: 'archive',
        approval_id: 'k3x9',
        by: 'telegram:1234 (alice)',
        channel: 'telegram',
      },
      {
        ts: '2026-11-22T11:05:00.400Z',
        event: 'agent_revived',
        agent: 'archive',
        pid: 4343,
        attempt: 1,
      },
    ];
    for (const event of log) await appendEvent(events, event);
    appendFileSync(events, '{"ts":"2026-11-22T12:00:00.000Z","event":"agent_de'); // a torn last line must not hide the story

    const forge = await pit(['--cells-root', root, 'why', 'forge']);
    expect(forge.code).toBe(0);
    expect(forge.stdout).toContain(
      `forge in cell ${manifest.uuid}: incident at 2026-11-22T10:00:00.000Z — revived`,
    );
    expect(forge.stdout).toContain(
      'dead: process exited with code 1 (class bad_config) [process: FAIL (exit 1); heartbeat: FAIL (age 95 s > 60 s)]',
    );
    expect(forge.stdout).toContain(
      'decided rollback_and_restart: failure class bad_config → rollback_and_restart [rule failure_classes.bad_config]',
    );
    expect(forge.stdout).toContain(
      `config rolled back: /etc/forge/config.yaml ${a.slice(0, 12)} → ${b.slice(0, 12)}`,
    );
    expect(forge.stdout).toContain('restarted as pid 4242 (attempt 1)');
    expect(forge.stderr).toMatch(/torn last line/);

    const archive = await pit(['--cells-root', root, 'why', 'archive', '--json']);
    const story = JSON.parse(archive.stdout) as {
      incidents: Array<{ outcome: string; events: Array<{ event: string; by?: string }> }>;
    };
    expect(story.incidents).toHaveLength(1);
    expect(story.incidents[0]!.outcome).toBe('revived');
    expect(story.incidents[0]!.events.find((e) => e.event === 'revive_approved')?.by).toBe(
      'telegram:1234 (alice)',
    );
  });

  it('says so when an agent has no incidents', async () => {
    await provisionCell(root, {
      mission: 'm',
      created_by: 'test',
      agents: [{ name: 'forge', role: 'lead' }],
    });
    const result = await pit(['--cells-root', root, 'why', 'forge']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('forge: no incidents in the event logs');
  });
});
