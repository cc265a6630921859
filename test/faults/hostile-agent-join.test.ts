/**
 * Attack #13.2 (another agent's secrets): agent `anvil`, which has no secrets, writes
 * `workspace/agent.js` (a program that copies its environment to the workspace) and appends
 * `forge` to its cell's `cell.json`. `forge` is configured with a secret (`env_from`) and the
 * relative argv `node agent.js`, and granted no cell. anvil runs at level 1 so that its write to
 * `cell.json` succeeds (at levels 2 and 3 the cell is read-only, see hostile-agent-writes): what
 * refuses the attack here is membership. forge must never start in anvil's cell, no secret of
 * forge may reach anvil's workspace, and the daemon reports a problem naming the cell and forge.
 */
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import {
  cellEvents,
  cleanup,
  getStatus,
  liveAgents,
  makeFleet,
  MARKER_FLAG,
  startDaemon,
  stopDaemon,
} from './harness.js';

const SECRET = `forge-secret-${Math.random().toString(36).slice(2)}`;

/** anvil: plants agent.js, appends forge to cell.json (as a raw write), then idles. */
const ANVIL = String.raw`
const fs = require('node:fs');
const path = require('node:path');
const cellDir = path.resolve(process.cwd(), '..');
fs.writeFileSync('agent.js', "require('fs').writeFileSync('stolen.txt', JSON.stringify(process.env)); setInterval(() => {}, 1000);\n");
const manifestPath = path.join(cellDir, 'cell.json');
const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
manifest.agents.push({ name: 'forge', role: 'write', joined_at: new Date().toISOString() });
manifest.revision += 1;
fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
fs.writeFileSync('attack-done', 'yes');
setInterval(() => {}, 1000);
`;

afterEach(async () => {
  delete process.env.PIT_FAULTS_FORGE_SECRET;
  await cleanup();
});

describe('hostile agent: joining another agent to its cell', () => {
  it('never starts forge in anvil’s cell, leaks none of its secrets, and reports the cell and forge', async () => {
    process.env.PIT_FAULTS_FORGE_SECRET = SECRET;
    const fleet = await makeFleet({
      agents: ['anvil'],
      heartbeat: false,
      argvOf: (_name, tag) => `["${process.execPath}", "anvil.js", "${MARKER_FLAG}", "${tag}"]`,
      extra: [
        '[agents.forge]',
        `argv = ["${process.execPath}", "agent.js"]`,
        'env_from = ["PIT_FAULTS_FORGE_SECRET"]',
        'startup_grace_s = 10',
        '[agents.forge.probes]',
        'heartbeat = false',
      ].join('\n'),
    });
    // anvil's program sits beside the config: its relative argv resolves there, not in the workspace.
    await fs.writeFile(join(fleet.base, 'anvil.js'), ANVIL);
    const workspace = join(fleet.cellDir, 'workspace');
    const daemon = await startDaemon(fleet.configPath);
    try {
      await waitFor(() => existsSync(join(workspace, 'attack-done')), 20_000, 'anvil to attack');
      const problem = await waitFor(
        async () =>
          (await getStatus(daemon.url)).problems.find(
            (item) => item.includes(fleet.cellDir) && item.includes('forge'),
          ),
        20_000,
        'a problem naming the cell and forge',
      );
      expect(problem).toMatch(/not granted/);
      const refused = await waitFor(
        async () =>
          (await cellEvents(fleet.cellDir)).find(
            (event) => event.event === 'manifest_refused' && event.agent === 'forge',
          ),
        10_000,
        'a manifest_refused event for forge',
      );
      expect(refused).toMatchObject({ field: 'agents' });
      // The pass that refused forge is the pass that would have started it: by now it would run.
      const status = await getStatus(daemon.url);
      expect(status.agents.map((agent) => agent.agent)).toEqual(['anvil']);
      const events = await cellEvents(fleet.cellDir);
      expect(
        events.filter(
          (event) =>
            'agent' in event && event.agent === 'forge' && event.event !== 'manifest_refused',
        ),
      ).toEqual([]);
      expect(existsSync(join(workspace, 'stolen.txt'))).toBe(false);
      for (const name of await fs.readdir(workspace))
        expect(await fs.readFile(join(workspace, name), 'utf8')).not.toContain(SECRET);
      expect((await liveAgents(fleet.marker)).get('anvil')).toHaveLength(1);
      expect(daemon.output()).toContain('cell manifest refused');
    } finally {
      await stopDaemon(daemon);
    }
  }, 90_000);
});
