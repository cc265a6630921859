/**
 * The list of test projects: every package and app is one project, named after its package.
 * vitest 4 dropped workspace files, so the root `vitest.config.ts` reads this list into
 * `test.projects`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));

function projectsIn(group: 'packages' | 'apps') {
  const dir = join(root, group);
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, 'package.json')))
    .map((entry) => ({
      extends: true as const,
      test: {
        name: `${group === 'packages' ? '@pit/' : ''}${entry.name}`,
        root: join(dir, entry.name),
        include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      },
    }));
}

export default [...projectsIn('packages'), ...projectsIn('apps')];
