import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cleanup, isGone, reapLater, tempDir } from './scratch.js';
import { waitFor } from './wait-for.js';

describe('cleanup', () => {
  it('kills every registered process group and removes every temp dir', async () => {
    const dir = await tempDir('pit-test-kit-');
    const child = spawn('/bin/sh', ['-c', 'sleep 60 & sleep 60'], {
      detached: true,
      stdio: 'ignore',
    });
    reapLater(child.pid);
    await waitFor(async () => !(await isGone(child.pid!)), 5_000, 'the child to run');
    await cleanup();
    expect(await isGone(child.pid!)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });
});
