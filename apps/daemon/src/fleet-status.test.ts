import { join } from 'node:path';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import { writeJsonAtomic } from '@pit/cell-spec';
import { makeCell } from '../test/helpers.js';
import { testConfig } from '../test/fleet.js';
import { acquireDaemonLock } from './lock.js';
import { readFleetStatus } from './fleet-status.js';
import { agentStatePath, readAgentStates } from './state-store.js';
import { grant, membersPath, updateMembers } from './membership.js';
import { approvalsPath } from './approvals-file.js';
import { openApprovalStore } from './approvals.js';
import { silentLogger } from './logger.js';
import { createProviderMatrixWriter, providerMatrixPath } from './provider-matrix-file.js';

afterEach(cleanup);

describe('readFleetStatus', () => {
  it('reports cells and agents from persisted state and heartbeats, and whether a daemon holds the state dir', async () => {
    const base = await tempDir();
    const cell = await makeCell([{ name: 'forge' }, { name: 'scribe' }], join(base, 'missions'));
    const { config } = testConfig(
      '[daemon]\nstate_dir = "state"\n[cells]\nroot = "missions"\n[agents.gateway]\ncell = "none"\ncwd = "/"\nargv = ["x"]\n',
      base,
    );
    // The request the record names, as the daemon's approval store writes it.
    const approvals = await openApprovalStore({
      stateDir: config.daemon.state_dir,
      now: () => Date.parse('2030-01-01T00:00:02Z'),
    });
    const asked = await approvals.ask({
      agent: 'forge',
      cell_uuid: cell.uuid,
      kind: 'revive',
      proposed: 'restart',
      reasons: ['forge is dead'],
      channels: ['cli'],
      expires_at: Date.parse('2030-01-01T00:30:00Z'),
      on_timeout: 'record_only',
    });
    await approvals.close();
    const state = await readAgentStates(config.daemon.state_dir, cell.dir);
    state.agents.forge = {
      health: 'dead',
      first_dead_at: '2030-01-01T00:00:00.000Z',
      revive_attempts: 2,
      restarts: ['2030-01-01T00:00:01.000Z'],
      pending_approval: asked.id,
      pid: 4242, // the process it had: history once it is dead
    };
    const path = agentStatePath(config.daemon.state_dir, cell.dir);
    await fs.mkdir(dirname(path), { recursive: true });
    await writeJsonAtomic(path, state);
    const { status, daemon } = await readFleetStatus(config, Date.parse('2030-01-01T00:10:00Z'));
    expect(daemon).toBeUndefined();
    expect(status.cells).toEqual([
      { uuid: cell.uuid, mission: 'test mission', status: 'active', agents: ['forge', 'scribe'] },
    ]);
    expect(status.agents.map((agent) => agent.key)).toEqual([
      `${cell.uuid}/forge`,
      `${cell.uuid}/scribe`,
      'host/gateway',
    ]);
    expect(status.agents[0]).toMatchObject({
      health: 'dead',
      revive_attempts: 2,
      restarts: 1,
      pending_approval: asked.id,
      first_dead_at: '2030-01-01T00:00:00.000Z',
    });
    expect(status.agents[0]?.pid).toBeUndefined();
    expect(status.approvals).toEqual([
      expect.objectContaining({
        id: asked.id,
        requested_at: '2030-01-01T00:00:02.000Z',
        expires_at: '2030-01-01T00:30:00.000Z',
      }),
    ]);
    expect(status.agents[1]).toMatchObject({ health: 'unknown', restarts: 0 });
    const lock = await acquireDaemonLock(config.daemon.state_dir);
    expect((await readFleetStatus(config)).daemon?.pid).toBe(process.pid);
    await lock.release();
  });

  it('names a request only while it waits for an answer: a denied one the record still names is not pending', async () => {
    const base = await tempDir();
    const cell = await makeCell([{ name: 'forge' }], join(base, 'missions'));
    const { config } = testConfig(
      '[daemon]\nstate_dir = "state"\n[cells]\nroot = "missions"\n',
      base,
    );
    const approvals = await openApprovalStore({ stateDir: config.daemon.state_dir });
    const asked = await approvals.ask({
      agent: 'forge',
      cell_uuid: cell.uuid,
      kind: 'revive',
      proposed: 'restart',
      reasons: ['forge is dead'],
      channels: ['cli'],
      expires_at: Date.now() + 60_000,
      on_timeout: 'record_only',
    });
    await approvals.decide(asked.id, 'deny', { by: 'ann', channel: 'cli', now: Date.now() });
    await approvals.close();
    const state = await readAgentStates(config.daemon.state_dir, cell.dir);
    state.agents.forge = {
      health: 'dead',
      revive_attempts: 0,
      restarts: [],
      pending_approval: asked.id,
    };
    const path = agentStatePath(config.daemon.state_dir, cell.dir);
    await fs.mkdir(dirname(path), { recursive: true });
    await writeJsonAtomic(path, state);
    const { status } = await readFleetStatus(config);
    expect(status.agents[0]?.pending_approval).toBeUndefined();
    expect(status.approvals).toEqual([]);
  });

  it('names every damaged file it could not read as a problem, and lists only the agents the operator granted', async () => {
    const base = await tempDir();
    const cell = await makeCell([{ name: 'forge' }], join(base, 'missions'));
    const { config } = testConfig(
      '[daemon]\nstate_dir = "state"\n[cells]\nroot = "missions"\n[agents.gateway]\ncell = "none"\ncwd = "/"\nargv = ["x"]\n',
      base,
    );
    const stateDir = config.daemon.state_dir;
    // Before any daemon ran (no members file), every agent of the cell is listed, as its first start would grant.
    await fs.mkdir(stateDir, { recursive: true });
    const manifestPath = join(cell.dir, 'cell.json');
    const manifest = JSON.parse(await fs.readFile(manifestPath, 'utf8'));
    await fs.writeFile(
      manifestPath,
      JSON.stringify({
        ...manifest,
        agents: [...manifest.agents, { ...manifest.agents[0], name: 'stowaway' }],
      }),
    );
    expect((await readFleetStatus(config)).status.agents.map((agent) => agent.agent)).toEqual([
      'forge',
      'stowaway',
      'gateway',
    ]);
    // The operator granted forge only: stowaway, added to cell.json later, is a problem, not an agent.
    await updateMembers(stateDir, grant(cell.uuid, ['forge'], 'create', new Date()));
    const statePath = agentStatePath(stateDir, cell.dir);
    await fs.mkdir(dirname(statePath), { recursive: true });
    await fs.writeFile(statePath, '{"version": 1, "agents": {"forge": ');
    await fs.writeFile(approvalsPath(stateDir), '{"version": 2, "requests": [{"id": "');
    await fs.writeFile(join(stateDir, 'host-state.json'), 'not json');
    const { status } = await readFleetStatus(config);
    expect(status.agents.map((agent) => agent.agent)).toEqual(['forge', 'gateway']);
    expect(status.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^${statePath}: .*keeps it aside`)),
        expect.stringMatching(new RegExp(`^${approvalsPath(stateDir)}: .*keeps it aside`)),
        expect.stringContaining(join(stateDir, 'host-state.json')),
        expect.stringMatching(/cell\.json: stowaway: not started: .*not granted/),
      ]),
    );
    expect(status.problems).toHaveLength(4);
    // A damaged members file grants nothing, and says so.
    await fs.writeFile(membersPath(stateDir), '{');
    const broken = await readFleetStatus(config);
    expect(broken.status.agents.map((agent) => agent.agent)).toEqual(['gateway']);
    expect(broken.status.problems).toEqual(
      expect.arrayContaining([expect.stringContaining(membersPath(stateDir))]),
    );
  });

  it('shows the provider matrix the daemon last persisted, marked live only while that daemon holds the state dir', async () => {
    const base = await tempDir();
    await makeCell([{ name: 'forge' }, { name: 'scribe' }], join(base, 'missions'));
    const { config } = testConfig(
      [
        '[daemon]',
        'state_dir = "state"',
        '[cells]',
        'root = "missions"',
        '[providers.anthropic]',
        'passive = true',
        '[providers.openai]',
        'passive = true',
        '[agents.forge]',
        'argv = ["x"]',
        'provider = "anthropic"',
        'fallback_providers = ["openai"]',
        '[[agents.forge.provider_files]]',
        'path = "forge.json"',
        "contents = { anthropic = 'a', openai = 'o' }",
      ].join('\n'),
      base,
    );
    const stateDir = config.daemon.state_dir;
    // No daemon with providers ran: no matrix, and no reason made up for an agent.
    const before = await readFleetStatus(config);
    expect(before.status.providers).toBeUndefined();
    expect(before.status.agents[0]).toMatchObject({
      agent: 'forge',
      provider: { primary: 'anthropic', current: 'anthropic', status: 'unknown' },
      reasons: [],
    });
    // What the daemon's writer leaves (this process stands for the daemon: same pid).
    await fs.mkdir(stateDir, { recursive: true });
    const writer = createProviderMatrixWriter({
      stateDir,
      logger: silentLogger,
      now: () => Date.parse('2030-01-01T00:00:00Z'),
    });
    const dead = {
      provider: 'anthropic',
      status: 'dead' as const,
      since: '2029-12-31T23:59:00.000Z',
      evidence: ['status_url: status.indicator major'],
    };
    writer.offer([dead]);
    await writer.flush();
    const stale = await readFleetStatus(config, Date.parse('2030-01-01T00:10:00Z'));
    expect(stale.daemon).toBeUndefined();
    expect(stale.status.providers).toEqual([dead]);
    expect(stale.status.providers_as_of).toEqual({
      written_at: '2030-01-01T00:00:00.000Z',
      live: false,
    });
    // Agents carry their primary's status as a reason, as in a running daemon's status.
    expect(stale.status.agents[0]).toMatchObject({
      agent: 'forge',
      provider: { primary: 'anthropic', current: 'anthropic', status: 'dead' },
      reasons: ['primary_dead'],
    });
    expect(stale.status.agents[1]).not.toHaveProperty('provider');
    const lock = await acquireDaemonLock(stateDir);
    try {
      expect((await readFleetStatus(config)).status.providers_as_of?.live).toBe(true);
    } finally {
      await lock.release();
    }
    // A damaged file is a problem naming it, not a matrix.
    await fs.writeFile(providerMatrixPath(stateDir), '{"written_at": 1}');
    const damaged = await readFleetStatus(config);
    expect(damaged.status.providers).toBeUndefined();
    expect(damaged.status.problems).toEqual([
      expect.stringContaining(providerMatrixPath(stateDir)),
    ]);
  });
});
