import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanup, tempDir, within } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';

afterEach(cleanup);

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));

describe('pit writing into a pipe its reader closed (pit config check | head -1)', () => {
  it('stops quietly: no EPIPE stack, exit 0', async () => {
    const base = await tempDir('pit-pipe-');
    const config = join(base, 'pit.toml');
    const agents = Array.from(
      { length: 200 },
      (_, index) => `[agents.a${index}]\ncell = "none"\ncwd = "/"\nargv = ["/bin/true"]`,
    );
    await fs.writeFile(
      config,
      `[cells]\nroot = "${join(base, 'missions')}"\n${agents.join('\n')}\n`,
      {
        mode: 0o600,
      },
    );
    const child = spawn(
      process.execPath,
      ['--conditions=@pit/source', '--import', 'tsx', bin, 'config', 'check', '--config', config],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // Like `head -1`: read the first chunk, then close the pipe.
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await within(
      new Promise<number | null>((resolve) => child.on('close', (status) => resolve(status))),
      30_000,
      'pit config check to exit',
    );
    expect(stderr).not.toContain('EPIPE');
    expect(code).toBe(0);
  });
});
