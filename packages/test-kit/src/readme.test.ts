import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup } from './scratch.js';
import { spawnTsx } from './spawn-tsx.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const example = join(packageDir, `readme-example-${process.pid}.ts`);

afterEach(async () => {
  rmSync(example, { force: true });
  await cleanup();
});

describe('README.md', () => {
  it('has an example that runs and prints what it says', async () => {
    const readme = readFileSync(join(packageDir, 'README.md'), 'utf8');
    const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(code).toBeDefined();
    // Inside the package, so that '@pit/test-kit' resolves as it does for its users.
    writeFileSync(example, code!);
    const child = spawnTsx(example, [], { cwd: packageDir });
    const [status] = (await once(child, 'exit')) as [number | null];
    expect(status, child.output()).toBe(0);
    expect(child.output().trim()).toBe('sendMessage 1');
  });
});
