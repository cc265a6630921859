import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'pit-cli-demo-'));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

describe('pit demo', () => {
  it('plays the scripted story: scout restarted, smith rolled back after crashing on its corrupted config, oracle waiting for approval', async () => {
    const dir = join(base, 'demo');
    const result = await pit(
      ['demo', '--dir', dir, '--listen', '127.0.0.1:0', '--exit-when-done'],
      { env: { PIT_HTTP_TOKEN: '' }, timeoutMs: 170_000 },
    );
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    const out = result.stdout;
    expect(out).toMatch(/Dashboard: http:\/\/127\.0\.0\.1:\d+\//);
    expect(out).toMatch(/scout\s+revived as pid \d+/);
    expect(out).toMatch(/smith\s+is dead: process exited \(exit code 78\)/);
    expect(out).toMatch(
      /smith\s+config rolled back: config\/smith\.json [0-9a-f]{8} → [0-9a-f]{8}/,
    );
    expect(out).toMatch(
      /oracle\s+waits for a human: approve with `pit --config .* approve [0-9a-f]+`/,
    );
    // The config smith runs with again is the good one, restored byte for byte.
    const cells = JSON.parse(
      (await pit(['--config', join(dir, 'pit.toml'), 'cells', 'list', '--json'])).stdout,
    ) as { cells: Array<{ dir: string }> };
    expect(
      JSON.parse(readFileSync(join(cells.cells[0]!.dir, 'config', 'smith.json'), 'utf8')),
    ).toMatchObject({ model: 'claude-sonnet' });
    // The approval is visible to `pit approvals` after the demo stopped, and `pit why` tells smith's story.
    const approvals = await pit(['--config', join(dir, 'pit.toml'), 'approvals', '--json']);
    expect(
      (JSON.parse(approvals.stdout) as { approvals: Array<{ agent: string }> }).approvals.map(
        (approval) => approval.agent,
      ),
    ).toContain('oracle');
    const why = await pit(['--config', join(dir, 'pit.toml'), 'why', 'smith']);
    expect(why.stdout).toMatch(/bad_config/);
    expect(why.stdout).toMatch(/config rolled back: .*smith\.json/);
  }, 180_000);
});
