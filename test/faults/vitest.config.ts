import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The fault-injection suite (`pnpm test:faults`): real daemons and agents, killed and fed
 * hostile input. One file at a time: the machine has 2 cores and each file runs a daemon.
 */
const root = fileURLToPath(new URL('.', import.meta.url));
const conditions = ['@pit/source', 'node', 'import', 'module', 'default'];

export default defineConfig({
  resolve: {
    conditions,
    alias: {
      '@pit/cell-spec': fileURLToPath(
        new URL('../../packages/cell-spec/src/index.ts', import.meta.url),
      ),
    },
  },
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
