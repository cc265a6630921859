import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The fault-injection suite (`pnpm test:faults`): real daemons and agents, killed and fed
 * hostile input. One file at a time: the machine has 2 cores and each file runs a daemon.
 * The workspace packages it uses (@pit/cell-spec, @pit/test-kit, @pit/daemon's run-daemon
 * fixture) are root devDependencies, resolved to their source by the `@pit/source` condition.
 */
const root = fileURLToPath(new URL('.', import.meta.url));
const conditions = ['@pit/source', 'node', 'import', 'module', 'default'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['@pit/source'] } },
  test: {
    name: 'faults',
    root,
    include: ['**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 60_000,
  },
});
