import { defineConfig } from 'vitest/config';
import projects from './vitest.workspace.js';

/** Packages resolve to their TypeScript source through the `@pit/source` export condition. */
const conditions = ['@pit/source', 'node', 'import', 'module', 'default'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['@pit/source'] } },
  test: {
    projects,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
