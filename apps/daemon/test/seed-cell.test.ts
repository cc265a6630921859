/**
 * Cells from an existing fleet (seed 001, lazarus-pit): a seed-format cell.json and no
 * workspace/, supervised by a real daemon.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cleanup,
  reapLater,
  spawnTsx,
  tempDir,
  testAgentPath,
  waitFor,
  within,
} from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import type { FleetStatus } from '../src/supervisor.js';
import { cellEvents } from './fleet.js';

const RUN_DAEMON = fileURLToPath(new URL('./fixtures/run-daemon.ts', import.meta.url));
/** cell.json exactly as seed 001's `_make_cell` writes it (uuid from its mission-cell spec). */
const SEED_CELL = fileURLToPath(new URL('./fixtures/seed-001-cell.json', import.meta.url));
const SEED_UUID = 'a3f7c901-1234-4b5e-8def-000000000001';
/** A second cell of the same shape that lists the same agent, which the operator never granted it. */
const OTHER_UUID = 'b3f7c901-1234-4b5e-8def-000000000002';
const agentPids = new Set<number>();

afterEach(async () => {
  for (const pid of agentPids) reapLater(pid);
  agentPids.clear();
  await cleanup();
});

async function seedCell(root: string, uuid: string): Promise<string> {
  const dir = join(root, uuid);
  await fs.mkdir(dir, { recursive: true });
  const text = await fs.readFile(SEED_CELL, 'utf8');
  await fs.writeFile(join(dir, 'cell.json'), text.replace(SEED_UUID, uuid));
  return dir;
}

describe('a seed-format cell under a real daemon', () => {
  it('is supervised without a workspace/ (created, mode 0755), and its defaults grant nothing', async () => {
    const base = await tempDir('pit-seed-');
    const root = join(base, 'missions');
    const dir = await seedCell(root, SEED_UUID);
    const other = await seedCell(root, OTHER_UUID);
    // An upgraded daemon's membership record: nothing granted but what the config says.
    await fs.mkdir(join(base, 'state'), { recursive: true, mode: 0o700 });
    await fs.writeFile(join(base, 'state', 'members.json'), '{"version": 1, "cells": {}}\n');
    const configPath = join(base, 'pit.toml');
    await fs.writeFile(
      configPath,
      [
        '[daemon]',
        'state_dir = "state"',
        '[daemon.http]',
        'listen = "127.0.0.1:0"',
        '[cells]',
        'root = "missions"',
        'heartbeat_stale_s = 15',
        'poll_interval_s = 0.2',
        '[checkpoints]',
        'interval_s = 0',
        '[bus]',
        'enabled = false',
        '[agents.claude]',
        `cell = "${SEED_UUID}"`,
        `argv = ["${process.execPath}", "${testAgentPath}"]`,
        'startup_grace_s = 10',
      ].join('\n'),
      { mode: 0o600 },
    );
    const child = spawnTsx(RUN_DAEMON, [configPath]);
    const ready = await waitFor(
      () => /^(READY|FAILED) .*$/m.exec(child.output())?.[0],
      30_000,
      'the daemon to start',
    );
    expect(ready).toMatch(/^READY /);
    const url = ready.split(' ')[1]!;
    const status = async () => (await (await fetch(`${url}/api/status`)).json()) as FleetStatus;
    const claude = await waitFor(
      async () =>
        (await status()).agents.find(
          (agent) => agent.agent === 'claude' && agent.health === 'healthy',
        ),
      30_000,
      'claude healthy in the seed cell',
    );
    if (claude.pid) agentPids.add(claude.pid);
    expect(claude.cell).toBe(SEED_UUID);
    const workspace = await fs.lstat(join(dir, 'workspace'));
    expect(workspace.isDirectory()).toBe(true);
    expect(workspace.mode & 0o777).toBe(0o755);
    expect(child.output()).toContain('cell workspace created');
    expect(child.output()).not.toContain('cannot append event');
    // The other cell's cell.json lists claude too: defaulted fields grant nothing, it is refused.
    const refused = await waitFor(
      async () => (await cellEvents(other)).find((event) => event.event === 'manifest_refused'),
      20_000,
      'the refusal in the other cell',
    );
    expect(refused).toMatchObject({ agent: 'claude', field: 'agents' });
    expect((await status()).agents.filter((agent) => agent.agent === 'claude')).toHaveLength(1);
    await expect(fs.lstat(join(other, 'workspace'))).rejects.toThrow(/ENOENT/);
    child.kill('SIGTERM');
    await within(
      new Promise((resolve) =>
        child.exitCode !== null ? resolve(0) : child.once('exit', resolve),
      ),
      20_000,
      'daemon exit',
    );
  });
});
