/**
 * Membership at the scale of a large fleet: `members.json` for 12,000 agents in cells (written by
 * the daemon's own one-time migration) is over 1 MiB, the default limit of a read. It must be read
 * back whole, so that every later discovery pass keeps those agents; and a members file that
 * cannot be read keeps the grants last read instead of un-supervising every cell agent.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { provisionCell } from '@pit/cell-spec';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, resolveConfigPaths } from '../src/config.js';
import { createDiscovery } from '../src/discovery.js';
import { membersPath } from '../src/membership.js';

afterEach(cleanup);

const CELLS = 120;
const PER_CELL = 100;

describe('membership of a large fleet', () => {
  it('reads back a members file over 1 MiB, and a damaged one keeps the grants last read', async () => {
    const base = await tempDir('pit-members-scale-');
    const root = join(base, 'missions');
    for (let cell = 0; cell < CELLS; cell++)
      await provisionCell(root, {
        mission: `mission ${cell}`,
        created_by: 'test',
        agents: Array.from({ length: PER_CELL }, (_, index) => ({
          name: `agent-${String(index).padStart(3, '0')}`,
          role: 'write',
        })),
      });
    const parsed = parseConfig(
      `[daemon]\nstate_dir = "state"\n[cells]\nroot = "missions"\n`,
      'toml',
    );
    if (!parsed.ok) throw new Error(JSON.stringify(parsed));
    const config = resolveConfigPaths(parsed.config, base);
    await fs.mkdir(config.daemon.state_dir, { recursive: true });
    const discovery = createDiscovery();
    const cellAgents = (wanted: Map<string, unknown>) =>
      [...wanted.keys()].filter((key) => !key.startsWith('host/')).length;

    // The first pass migrates: every cell found now is recorded in members.json.
    const first = await discovery.discover(config, undefined);
    expect(cellAgents(first.wanted)).toBe(CELLS * PER_CELL);
    const size = (await fs.stat(membersPath(config.daemon.state_dir))).size;
    expect(size).toBeGreaterThan(1024 * 1024);

    // The next passes read that file back: nobody is dropped.
    const second = await discovery.discover(config, undefined);
    expect(second.problems).toEqual([]);
    expect(cellAgents(second.wanted)).toBe(CELLS * PER_CELL);

    // Damaged (or unreadable for a moment): the grants last read stay in force, and it is said.
    await fs.writeFile(membersPath(config.daemon.state_dir), '{"version": 1, "cells": ');
    const third = await discovery.discover(config, undefined);
    expect(cellAgents(third.wanted)).toBe(CELLS * PER_CELL);
    expect(third.problems.join('\n')).toMatch(/members\.json[\s\S]*stay in force/);
  }, 120_000);
});
