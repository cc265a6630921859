import { defineConfig } from 'vitest/config';
import projects from './vitest.workspace.js';

/** Packages resolve to their TypeScript source through the `@pit/source` export condition. */
const conditions = ['@pit/source', 'node', 'import', 'module', 'default'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['@pit/source'] } },
  test: {
    projects,
    // The net for a whole test or hook, not a wait: every wait inside one has its own bound and
    // names what did not happen. Many tests start several daemons or CLI processes (each a Node
    // start; on Node 20 tsx runs its loader on a worker thread), and 30 s was within reach of
    // their sum on a loaded 2-core CI machine, where a slow run then failed as a bare timeout.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
