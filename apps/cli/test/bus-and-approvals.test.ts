import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { provisionCell } from '@pit/cell-spec';
import { MissionBus } from '@pit/mission-bus';
import { freePort, testAgentPath, waitFor } from '@pit/test-kit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';
import { readAgentStates } from '@pit/daemon';

/** The daemon's records of a cell's agents (its state directory is `state/` beside `missions/`). */
const daemonState = (cellDir: string) =>
  readAgentStates(join(cellDir, '..', '..', 'state'), cellDir);

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));

let base: string;
const cleanups: Array<() => Promise<void> | void> = [];
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'pit-cli-bus-'));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  rmSync(base, { recursive: true, force: true });
});

describe('pit bus tail', () => {
  it("prints a cell's stream from a sequence number while the bus is held open elsewhere, and follows new events", async () => {
    const { dir, manifest } = await provisionCell(join(base, 'missions'), {
      mission: 'm',
      created_by: 'test',
      agents: [
        { name: 'forge', role: 'lead' },
        { name: 'allegro', role: 'write' },
      ],
    });
    const bus = await MissionBus.open({
      cellDir: dir,
      config: {
        participants: [
          { name: 'forge', role: 'lead' },
          { name: 'allegro', role: 'write' },
        ],
      },
    });
    cleanups.push(() => bus.close());
    await bus.publish('forge', { topic: 'plan', payload: { step: 1 } });
    const checkpoint = await bus.checkpoint('forge', { summary: 'parser half done' });
    await bus.handoff('forge', {
      to: 'allegro',
      checkpoint: checkpoint.id,
      note: 'take it from here',
    });
    await bus.flush();

    const tail = await pit([
      '--cells-root',
      join(base, 'missions'),
      'bus',
      'tail',
      manifest.uuid,
      '--from',
      '2',
    ]);
    expect(tail.code).toBe(0);
    const lines = tail.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^#2 .* forge checkpoint .*: parser half done$/);
    expect(lines[1]).toMatch(/^#3 .* handoff forge → allegro at checkpoint .*: take it from here$/);

    const follower = spawn(
      process.execPath,
      [
        '--conditions=@pit/source',
        '--import',
        'tsx',
        bin,
        '--cells-root',
        join(base, 'missions'),
        'bus',
        'tail',
        manifest.uuid,
        '--follow',
        '--json',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    cleanups.push(() => void follower.kill('SIGKILL'));
    let seen = '';
    follower.stdout.on('data', (chunk: Buffer) => (seen += chunk.toString()));
    await waitFor(() => seen.split('\n').filter(Boolean).length === 3, 30_000, 'the backlog');
    await bus.publish('allegro', { topic: 'progress', payload: 'picked up' });
    await bus.flush();
    await waitFor(() => seen.includes('"topic":"progress"'), 30_000, 'the new event');
    const exited = new Promise((resolve) => follower.once('exit', resolve));
    follower.kill('SIGINT');
    await exited;
    expect(
      seen
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { seq: number }).seq),
    ).toEqual([1, 2, 3, 4]);
  }, 60_000);
});

describe('pit approvals, approve, deny', () => {
  it('answers an ask through the running daemon: refused without the right token, then approved and the agent revived', async () => {
    const { dir } = await provisionCell(join(base, 'missions'), {
      mission: 'archive',
      created_by: 'test',
      agents: [{ name: 'ezra', role: 'lead' }],
    });
    const port = await freePort();
    const config = join(base, 'pit.toml');
    writeFileSync(
      config,
      [
        '[daemon]',
        'state_dir = "state"',
        'stop_agents_on_exit = true',
        '[daemon.http]',
        `listen = "127.0.0.1:${port}"`,
        '[daemon.http.approvers.ann]',
        'token_env = "PIT_ANN_TOKEN"',
        '[cells]',
        'root = "missions"',
        'heartbeat_stale_s = 2',
        'poll_interval_s = 0.2',
        'resurrect_after_s = 0',
        '[checkpoints]',
        'interval_s = 0',
        '[bus]',
        'enabled = false',
        '[policy.defaults]',
        'mode = "ask"',
        'approval = { channels = ["cli", "http"], timeout = "30m", on_timeout = "record_only" }',
        '[agents.ezra]',
        `argv = ["${process.execPath}", "${testAgentPath}"]`,
        'startup_grace_s = 10',
        'stop_grace_s = 2',
      ].join('\n'),
    );
    chmodSync(config, 0o600);
    const env = {
      PIT_HTTP_TOKEN: 'the-right-token-1234-0123456789abcdef-0123',
      PIT_ANN_TOKEN: 'anns-own-token-abcdef-0123456789-abcdef-01',
    };
    const daemon = spawn(
      process.execPath,
      [
        '--conditions=@pit/source',
        '--import',
        'tsx',
        bin,
        '--config',
        config,
        'daemon',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } },
    );
    let daemonErr = '';
    daemon.stderr.on('data', (chunk: Buffer) => (daemonErr += chunk.toString()));
    cleanups.push(async () => {
      if (daemon.exitCode !== null) return;
      const exited = new Promise((resolve) => daemon.once('exit', resolve));
      daemon.kill('SIGTERM');
      await exited;
    });

    const firstPid = await waitFor(
      async () => {
        const state = await daemonState(dir).catch(() => undefined);
        return state?.agents.ezra?.health === 'healthy' ? state.agents.ezra.pid : undefined;
      },
      30_000,
      'ezra running',
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${daemonErr}`);
    });
    process.kill(firstPid, 'SIGKILL');
    const pending = await waitFor(
      async () => {
        const listed = await pit(['--config', config, 'approvals', '--json']);
        const approvals = (
          JSON.parse(listed.stdout || '{"approvals":[]}') as {
            approvals: Array<{ id: string; agent: string }>;
          }
        ).approvals;
        return approvals.find((approval) => approval.agent === 'ezra');
      },
      30_000,
      'an approval request',
    );
    const table = await pit(['--config', config, 'approvals']);
    expect(table.stdout).toContain(pending.id);

    const noToken = await pit(['--config', config, 'approve', pending.id], {
      env: { PIT_HTTP_TOKEN: '' },
    });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('PIT_HTTP_TOKEN');
    const wrongToken = await pit(['--config', config, 'approve', pending.id], {
      env: { PIT_HTTP_TOKEN: 'not-the-token' },
    });
    expect(wrongToken.code).toBe(1);
    expect(wrongToken.stderr).toMatch(/refused the token/);

    const unknownApprover = await pit(['--config', config, 'approve', pending.id, '--as', 'bob'], {
      env,
    });
    expect(unknownApprover.code).toBe(2);
    expect(unknownApprover.stderr).toContain('--as bob: no such approver');
    const approved = await pit(
      ['--config', config, 'approve', pending.id, '--as', 'ann', '--reason', 'checked the logs'],
      { env },
    );
    expect(approved.stderr).toBe('');
    expect(approved.code).toBe(0);
    await waitFor(
      async () => {
        const state = await daemonState(dir).catch(() => undefined);
        const ezra = state?.agents.ezra;
        return ezra?.health === 'healthy' && ezra.pid !== firstPid;
      },
      30_000,
      'ezra revived',
    );
    // Recorded under the token's identity, not a name the caller gave.
    const decided = await pit(['--config', config, 'approvals', '--all', '--json']);
    expect(JSON.parse(decided.stdout).approvals).toContainEqual(
      expect.objectContaining({ id: pending.id, decided_by: 'ann', decided_via: 'http' }),
    );
    const again = await pit(['--config', config, 'deny', pending.id], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already|approved/);
  }, 120_000);
});
