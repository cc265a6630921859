import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cellPaths, provisionCell, writeCellState, type AgentState } from '@pit/cell-spec';
import type { Logger } from './logger.js';
import { HOST } from './slot.js';
import { agentStatePath, openFileStateStore, readAgentStates } from './state-store.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pit-state-store-'));
  dirs.push(dir);
  return dir;
}

function recordingLogger(): Logger & {
  lines: Array<{ level: string; message: string; fields?: object }>;
} {
  const lines: Array<{ level: string; message: string; fields?: object }> = [];
  const at = (level: string) => (message: string, fields?: object) =>
    lines.push({ level, message, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const state = (health: AgentState['health']): AgentState => ({
  health,
  revive_attempts: 0,
  restarts: [],
});

async function cellWithAgents(root: string, names: string[]): Promise<string> {
  const cell = await provisionCell(root, {
    mission: 'store',
    created_by: 'test',
    agents: names.map((name) => ({ name, role: 'write' })),
  });
  return cell.dir;
}

describe('openFileStateStore', () => {
  it('never writes a record its readers would refuse: checked at every write where it changed, also after it was valid and unchanged before', async () => {
    const root = await tempDir();
    const stateDir = await tempDir();
    const cell = await cellWithAgents(root, ['alpha', 'beta']);
    const logger = recordingLogger();
    const store = await openFileStateStore({ stateDir, logger, now: Date.now });
    const alpha = state('healthy');
    const beta = state('healthy');
    store.attach({ key: 'c/alpha', name: 'alpha', scope: cell }, alpha);
    store.attach({ key: 'c/beta', name: 'beta', scope: cell }, beta);
    await store.save('c/alpha');
    await store.save('c/alpha');
    expect((await readAgentStates(stateDir, cell)).agents.beta?.health).toBe('healthy');

    // A bug gives beta a health no reader accepts: the write is refused, the file keeps the last good one.
    (beta as { health: string }).health = 'zombie';
    alpha.health = 'dead';
    await store.save('c/alpha');
    const refused = logger.lines.find((line) => line.message === 'cannot persist state');
    expect(JSON.stringify(refused?.fields)).toMatch(/beta.*health|health.*beta/);
    const onDisk = await readAgentStates(stateDir, cell);
    expect(onDisk.agents.beta?.health).toBe('healthy');
    expect(onDisk.agents.alpha?.health).toBe('healthy');

    // Mended, the next write lands with both records.
    beta.health = 'degraded';
    await store.save('c/beta');
    await store.flush();
    const mended = await readAgentStates(stateDir, cell);
    expect(mended.agents.beta?.health).toBe('degraded');
    expect(mended.agents.alpha?.health).toBe('dead');
    store.close();
  });

  it('makes the saves asked for in one turn of the event loop one write (a decision, then the start it leads to)', async () => {
    const root = await tempDir();
    const stateDir = await tempDir();
    const cell = await cellWithAgents(root, ['alpha']);
    // Each write is stamped with a clock reading of its own.
    let clock = Date.now();
    const store = await openFileStateStore({
      stateDir,
      logger: recordingLogger(),
      now: () => ++clock,
    });
    const alpha = state('dead');
    store.attach({ key: 'c/alpha', name: 'alpha', scope: cell }, alpha);
    await store.save('c/alpha');
    alpha.last_decision = { action: 'restart', reason: 'dead', at: new Date().toISOString() };
    const decision = store.save('c/alpha');
    // The restart path's own awaits (microtasks) before the start records its nonce.
    for (let turn = 0; turn < 5; turn++) await Promise.resolve();
    alpha.spawn_nonce = 'a'.repeat(32);
    const start = store.save('c/alpha');
    await decision;
    const afterDecision = store.persistedAt('c/alpha');
    await start;
    // One write landed both: no second write after the decision's.
    expect(store.persistedAt('c/alpha')).toBe(afterDecision);
    expect((await readAgentStates(stateDir, cell)).agents.alpha?.spawn_nonce).toBe('a'.repeat(32));
    store.close();
  });

  it('keeps the records of agents it does not hold: read from the file before its first write, a detached one as it was when let go (a later change to it is not written)', async () => {
    const root = await tempDir();
    const stateDir = await tempDir();
    const cell = await cellWithAgents(root, ['alpha', 'beta', 'gamma']);
    // A record an earlier daemon wrote, of an agent this one does not hold.
    const earlier = await openFileStateStore({
      stateDir,
      logger: recordingLogger(),
      now: Date.now,
    });
    earlier.attach({ key: 'c/gamma', name: 'gamma', scope: cell }, state('dead'));
    await earlier.save('c/gamma');
    earlier.close();

    const store = await openFileStateStore({ stateDir, logger: recordingLogger(), now: Date.now });
    const alpha = state('healthy');
    const beta = state('healthy');
    store.attach({ key: 'c/alpha', name: 'alpha', scope: cell }, alpha);
    store.attach({ key: 'c/beta', name: 'beta', scope: cell }, beta);
    await store.save('c/alpha');
    beta.revive_attempts = 2; // changed, not saved, then let go
    store.detach('c/beta');
    beta.health = 'dead';
    alpha.health = 'degraded';
    await store.save('c/alpha');
    expect((await readAgentStates(stateDir, cell)).agents).toMatchObject({
      alpha: { health: 'degraded' },
      beta: { health: 'healthy', revive_attempts: 2 },
      gamma: { health: 'dead' },
    });
    // Later writes keep both records of agents not held.
    alpha.health = 'healthy';
    await store.save('c/alpha');
    expect((await readAgentStates(stateDir, cell)).agents).toMatchObject({
      alpha: { health: 'healthy' },
      beta: { health: 'healthy', revive_attempts: 2 },
      gamma: { health: 'dead' },
    });
    store.close();
  });

  it("writes every held record of a cell into the daemon's own file for that cell (nothing in the cell), and a new store reads them back", async () => {
    const root = await tempDir();
    const stateDir = await tempDir();
    const cell = await cellWithAgents(root, ['alpha', 'beta']);
    const store = await openFileStateStore({ stateDir, logger: recordingLogger(), now: Date.now });
    const alpha = state('healthy');
    const beta = state('dead');
    store.attach({ key: 'c/alpha', name: 'alpha', scope: cell }, alpha);
    store.attach({ key: 'c/beta', name: 'beta', scope: cell }, beta);
    await store.save('c/alpha');
    expect(agentStatePath(stateDir, cell)).toBe(
      join(stateDir, 'cells', cell.split('/').pop()!, 'state.json'),
    );
    expect((await readAgentStates(stateDir, cell)).agents).toMatchObject({
      alpha: { health: 'healthy' },
      beta: { health: 'dead' },
    });
    expect(await readdir(join(cell, '.lazarus'))).not.toContain('state.json');
    alpha.health = 'degraded';
    await store.save('c/alpha');
    const reopened = await openFileStateStore({
      stateDir,
      logger: recordingLogger(),
      now: Date.now,
    });
    expect(await reopened.loadScope(cell)).toMatchObject({
      alpha: { health: 'degraded' },
      beta: { health: 'dead' },
    });
  });

  it('keeps agents of the file it does not hold (a write never drops another record)', async () => {
    const root = await tempDir();
    const stateDir = await tempDir();
    const cell = await cellWithAgents(root, ['alpha', 'beta']);
    const first = await openFileStateStore({ stateDir, logger: recordingLogger(), now: Date.now });
    first.attach({ key: 'c/beta', name: 'beta', scope: cell }, state('dead'));
    await first.save('c/beta');
    const second = await openFileStateStore({ stateDir, logger: recordingLogger(), now: Date.now });
    second.attach({ key: 'c/alpha', name: 'alpha', scope: cell }, state('healthy'));
    await second.save('c/alpha');
    expect(Object.keys((await readAgentStates(stateDir, cell)).agents).sort()).toEqual([
      'alpha',
      'beta',
    ]);
  });

  it('refuses a compare-and-set at a stale revision and accepts it at the current one', async () => {
    const stateDir = await tempDir();
    const store = await openFileStateStore({ stateDir, logger: recordingLogger(), now: Date.now });
    store.attach({ key: 'host/solo', name: 'solo', scope: HOST }, state('unknown'));
    expect(store.revision('host/solo')).toBe(0);
    await store.save('host/solo');
    expect(await store.compareAndSet('host/solo', state('healthy'), 0)).toEqual({
      ok: false,
      revision: 1,
    });
    expect(await store.compareAndSet('host/solo', state('healthy'), 1)).toEqual({
      ok: true,
      revision: 2,
    });
    const written = JSON.parse(await readFile(join(stateDir, 'host-state.json'), 'utf8'));
    expect(written.agents.solo.health).toBe('healthy');
  });

  it("keeps a damaged state file's bytes in the daemon's damaged/ directory, says so in the log, and starts its agents from empty records", async () => {
    const root = await tempDir();
    const stateDir = await tempDir();
    const cell = await cellWithAgents(root, ['alpha']);
    const path = agentStatePath(stateDir, cell);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, '{"version":1,"agents":{"alpha":{"health":"dea');
    const logger = recordingLogger();
    const store = await openFileStateStore({ stateDir, logger, now: () => 1234 });
    expect(await store.loadScope(cell)).toEqual({});
    const kept = await readdir(join(stateDir, 'damaged'));
    expect(kept).toHaveLength(1);
    expect(kept[0]).toMatch(/-state\.json\.corrupt-1234$/);
    expect(await readFile(join(stateDir, 'damaged', kept[0] ?? ''), 'utf8')).toContain(
      '"health":"dea',
    );
    const line = logger.lines.find((entry) => entry.level === 'error');
    expect(line?.message).toContain('damaged state file');
    expect(line?.fields).toMatchObject({
      file: path,
      kept_as: join(stateDir, 'damaged', kept[0] ?? ''),
    });
    // And it is a problem `pit status` shows, naming the file once and where its bytes are.
    expect(store.problems()).toEqual([
      expect.stringMatching(
        new RegExp(`^${path}: damaged \\(.*kept as ${join(stateDir, 'damaged', kept[0] ?? '')}`),
      ),
    ]);
  });

  it('keeps a damaged history.json aside, reports it, and starts history afresh', async () => {
    const stateDir = await tempDir();
    await writeFile(join(stateDir, 'history.json'), '{"version":1,"agents":{"x"');
    const logger = recordingLogger();
    const store = await openFileStateStore({ stateDir, logger, now: () => 99 });
    expect(store.fleetRestarts()).toEqual([]);
    expect(await readdir(join(stateDir, 'damaged'))).toEqual([
      expect.stringMatching(/-history\.json\.corrupt-99$/),
    ]);
    expect(
      logger.lines.some((entry) => entry.level === 'error' && entry.message.includes('history')),
    ).toBe(true);
    expect(store.problems()).toEqual([expect.stringContaining('restart history started afresh')]);
  });

  it("reads an older daemon's .lazarus/state.json once, as a hint of what may be carried over, and never writes it", async () => {
    const root = await tempDir();
    const stateDir = await tempDir();
    const cell = await cellWithAgents(root, ['alpha']);
    await writeCellState(cell, {
      version: 1,
      updated_at: '2030-01-01T00:00:00.000Z',
      agents: {
        alpha: {
          health: 'healthy',
          since: '2030-01-01T00:00:00.000Z',
          revive_attempts: 3,
          restarts: ['2030-01-01T00:00:01.000Z'],
          pending_approval: 'a'.repeat(32),
          pid: 4242,
          pid_start_time: 77,
          substituted_by: 'beta',
          spawn_nonce: 'b'.repeat(32),
        },
      },
    });
    const before = await readFile(cellPaths(cell).state, 'utf8');
    const logger = recordingLogger();
    const store = await openFileStateStore({ stateDir, logger, now: Date.now });
    const hint = (await store.loadScope(cell)).alpha!;
    // The pid is carried only for the adoption proof; the nonce (the proof's secret part) never.
    expect(hint).toEqual({
      health: 'unknown',
      revive_attempts: 3,
      restarts: ['2030-01-01T00:00:01.000Z'],
      pending_approval: 'a'.repeat(32),
      pid: 4242,
      pid_start_time: 77,
    });
    hint.revive_attempts = 4;
    store.attach({ key: 'c/alpha', name: 'alpha', scope: cell }, hint);
    await store.save('c/alpha');
    expect(await readFile(cellPaths(cell).state, 'utf8')).toBe(before);
    // Once the daemon has its own record, the cell's file is no longer read.
    await writeCellState(cell, {
      version: 1,
      updated_at: '2030-01-01T00:00:00.000Z',
      agents: { alpha: { health: 'dead', revive_attempts: 9, restarts: [] } },
    });
    const reopened = await openFileStateStore({ stateDir, logger, now: Date.now });
    expect((await reopened.loadScope(cell)).alpha).toMatchObject({ revive_attempts: 4 });
  });

  it('persists healthy periods and fleet restarts in history.json on flush', async () => {
    const stateDir = await tempDir();
    const store = await openFileStateStore({ stateDir, logger: recordingLogger(), now: Date.now });
    const at = Date.now();
    store.attach({ key: 'host/solo', name: 'solo', scope: HOST }, state('healthy'));
    store.healthyPeriods('host/solo').push({ from: at - 1000, to: at });
    store.recordRestart(at);
    await store.flush();
    const reopened = await openFileStateStore({
      stateDir,
      logger: recordingLogger(),
      now: Date.now,
    });
    expect(reopened.healthyPeriods('host/solo')).toEqual([{ from: at - 1000, to: at }]);
    expect(reopened.fleetRestarts()).toEqual([at]);
  });

  it('opens a healthy period as a new array of the last `keep` periods, the one it persists and hands out from then on', async () => {
    const stateDir = await tempDir();
    const open = () => openFileStateStore({ stateDir, logger: recordingLogger(), now: Date.now });
    const store = await open();
    const held = store.healthyPeriods('host/flappy');
    held.push({ from: 1000, to: 2000 }, { from: 3000, to: 4000 });
    const opened = store.openHealthyPeriod('host/flappy', 5000, 2);
    expect(opened).not.toBe(held);
    expect(opened).toEqual([{ from: 3000, to: 4000 }, { from: 5000 }]);
    expect(store.healthyPeriods('host/flappy')).toBe(opened);
    await store.flush();
    expect((await open()).healthyPeriods('host/flappy')).toEqual(opened);
  });

  it('keeps the history of agents not asked for, and writes later periods of those asked for', async () => {
    const stateDir = await tempDir();
    const open = () => openFileStateStore({ stateDir, logger: recordingLogger(), now: Date.now });
    const first = await open();
    first.healthyPeriods('host/kept').push({ from: 1000, to: 2000 });
    first.healthyPeriods('host/back').push({ from: 3000, to: 4000 });
    first.historyChanged();
    await first.flush();
    // The next run supervises only host/back: host/kept's history stays in the file.
    const second = await open();
    second.healthyPeriods('host/back').push({ from: 5000 });
    second.historyChanged();
    await second.flush();
    const third = await open();
    expect(third.healthyPeriods('host/kept')).toEqual([{ from: 1000, to: 2000 }]);
    expect(third.healthyPeriods('host/back')).toEqual([{ from: 3000, to: 4000 }, { from: 5000 }]);
  });
});
