import { promises as fs } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { writeHeartbeat } from '@pit/cell-spec';
import { cleanup, isGone, reapLater, tempDir, waitFor } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { makeCell, script } from '../test/helpers.js';
import { silentLogger } from './logger.js';
import { ProviderConfigSchema, type ProviderConfig } from './provider-config.js';
import {
  createProviderTracker,
  statusFromDocument,
  type ProviderAgent,
  type ProviderEntry,
} from './provider-health.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await cleanup();
});

describe('statusFromDocument', () => {
  it('maps a Statuspage indicator', () => {
    expect(statusFromDocument({ status: { indicator: 'none' } }).status).toBe('healthy');
    expect(statusFromDocument({ status: { indicator: 'minor' } }).status).toBe('degraded');
    expect(statusFromDocument({ status: { indicator: 'major' } }).status).toBe('dead');
    expect(statusFromDocument({ status: { indicator: 'critical' } }).status).toBe('dead');
  });
  it('maps a top-level status word, whatever its case', () => {
    expect(statusFromDocument({ status: 'OK' }).status).toBe('healthy');
    expect(statusFromDocument({ status: 'degraded' }).status).toBe('degraded');
    expect(statusFromDocument({ status: 'down' }).status).toBe('dead');
  });
  it('says nothing about a document it does not understand', () => {
    for (const document of [null, 'up', { status: { indicator: 'purple' } }, { state: 'ok' }])
      expect(statusFromDocument(document)).toMatchObject({ status: undefined });
  });
});

/** A tracker over one provider `anthropic` with `config`, and the agents given. */
function tracker(config: ProviderConfig, agents: ProviderAgent[] = []) {
  const tracked = createProviderTracker({
    providers: () => ({ anthropic: config }),
    agents: () => agents,
    logger: silentLogger,
    now: Date.now,
    onChange: () => undefined,
  });
  /** Ticks until anthropic's row satisfies `check` (bounded). */
  const until = (check: (entry: ProviderEntry) => boolean, what: string, timeoutMs = 10_000) =>
    waitFor(
      async () => {
        await tracked.tick();
        const entry = tracked.matrix()[0];
        return entry && check(entry) ? entry : undefined;
      },
      timeoutMs,
      what,
    );
  return { tracked, until };
}

describe('the exec provider probe', () => {
  it('follows a real script whose exit status flips: healthy → dead → healthy', async () => {
    const dir = await tempDir('pit-exec-probe-');
    const state = join(dir, 'state');
    await fs.writeFile(state, 'up');
    const probe = await script(join(dir, 'check.sh'), `[ "$(cat '${state}')" = up ]`);
    const config = ProviderConfigSchema.parse({
      exec: [probe],
      passive: false,
      interval_s: 0.05,
      timeout_s: 5,
    });
    const { until } = tracker(config);
    expect(await until((e) => e.status === 'healthy', 'healthy')).toMatchObject({
      evidence: ['exec: exit 0'],
    });
    await fs.writeFile(state, 'down');
    expect(await until((e) => e.status === 'dead', 'dead')).toMatchObject({
      evidence: ['exec: exit 1'],
    });
    await fs.writeFile(state, 'up');
    expect(await until((e) => e.status === 'healthy', 'healthy again')).toMatchObject({
      evidence: ['exec: exit 0'],
    });
  });

  it('reports a hung script as timed out within its timeout, and kills it and what it started', async () => {
    const dir = await tempDir('pit-exec-hung-');
    const childPid = join(dir, 'child.pid');
    // The script starts a child that would hold its output open for 60 s, then waits for it.
    const probe = await script(join(dir, 'hang.sh'), `sleep 60 &\necho $! > '${childPid}'\nwait`);
    const config = ProviderConfigSchema.parse({
      exec: [probe],
      passive: false,
      interval_s: 60,
      // Long enough for the shell to start its child and write its pid on a loaded machine.
      timeout_s: 2,
    });
    const { tracked } = tracker(config);
    const started = Date.now();
    await tracked.tick();
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(1_900);
    expect(took).toBeLessThan(10_000);
    expect(tracked.matrix()).toEqual([
      expect.objectContaining({
        provider: 'anthropic',
        status: 'unknown',
        evidence: ['exec: timed out after 2 s (killed)'],
      }),
    ]);
    const pid = Number(await fs.readFile(childPid, 'utf8'));
    reapLater(pid);
    await waitFor(() => isGone(pid), 5_000, 'the probe child killed');
  });
});

describe('the exec provider probe, settled on exit', () => {
  it('answers as soon as the probe exits, even when a child it left holds its output', async () => {
    const dir = await tempDir('pit-exec-child-');
    const childPid = join(dir, 'child.pid');
    const probe = await script(
      join(dir, 'leave.sh'),
      `sleep 30 &\necho $! > '${childPid}'\nexit 0`,
    );
    const config = ProviderConfigSchema.parse({
      exec: [probe],
      passive: false,
      interval_s: 60,
      timeout_s: 15,
    });
    const { tracked } = tracker(config);
    const started = Date.now();
    await tracked.tick();
    reapLater(Number(await fs.readFile(childPid, 'utf8')));
    // Settled at the exit, not at the timeout (15 s) nor when the child's 30 s end.
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(tracked.matrix()[0]).toMatchObject({ status: 'healthy', evidence: ['exec: exit 0'] });
  });
});

describe('passive evidence (agents are untrusted)', () => {
  const outage = { provider: 'anthropic', provider_errors: 3, last_error: 'HTTP 529 overloaded' };

  async function reportingFleet(names: string[]) {
    const cell = await makeCell(names.map((name) => ({ name })));
    const agents: ProviderAgent[] = names.map((name) => ({
      key: `${cell.uuid}/${name}`,
      name,
      cellDir: cell.dir,
      providers: ['anthropic'],
      current: 'anthropic',
    }));
    const report = (name: string, fields: Record<string, unknown>) =>
      writeHeartbeat(cell.dir, {
        agent: name,
        cell_uuid: cell.uuid,
        cycle: 1,
        status: 'ok',
        pid: process.pid,
        ...fields,
      });
    return { agents, report };
  }

  it('one agent reporting outage errors alone makes the provider degraded, never dead; two make it dead', async () => {
    const { agents, report } = await reportingFleet(['alpha', 'beta']);
    // passive_dead_agents = 1 is refused by config check; the tracker holds the floor of 2 anyway.
    const config = {
      ...ProviderConfigSchema.parse({ passive_window_s: 60 }),
      passive_dead_agents: 1,
    };
    const { tracked, until } = tracker(config, agents);
    await report('alpha', outage);
    await report('beta', { provider: 'anthropic', provider_errors: 0 });
    const alone = await until((e) => e.status !== 'unknown', 'a status from the reports');
    expect(alone).toMatchObject({
      status: 'degraded',
      evidence: [
        expect.stringMatching(/^agents: 1 report outage errors, 0 rate limits, 1 no errors/),
      ],
    });
    // Rounds later it is still only degraded.
    for (let round = 0; round < 3; round++) await tracked.tick();
    expect(tracked.matrix()[0]?.status).toBe('degraded');
    await report('beta', outage);
    expect(await until((e) => e.status === 'dead', "dead on two agents' reports")).toMatchObject({
      evidence: [expect.stringMatching(/^agents: 2 report outage errors/)],
    });
  });

  it('never makes a provider dead while an active source says it is healthy', async () => {
    let answer = 'ok';
    const server = createServer((_, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ status: answer }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(
      () =>
        new Promise((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/status`;
    const { agents, report } = await reportingFleet(['alpha', 'beta', 'gamma']);
    const config = ProviderConfigSchema.parse({ status_url: url, interval_s: 0.05, timeout_s: 2 });
    const { tracked, until } = tracker(config, agents);
    for (const agent of agents) await report(agent.name, outage);
    const entry = await until((e) => e.status !== 'unknown', 'a status');
    expect(entry).toMatchObject({
      status: 'degraded',
      evidence: ['status_url: status ok', expect.stringMatching(/^agents: 3 report outage errors/)],
    });
    for (let round = 0; round < 3; round++) await tracked.tick();
    expect(tracked.matrix()[0]?.status).toBe('degraded');
    // The active source saying dead is authority: dead.
    answer = 'down';
    await until((e) => e.status === 'dead', 'dead by the status URL');
  });
});
