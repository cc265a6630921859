import { defineConfig } from 'vitest/config';

/** The release pipeline's end-to-end test: run by `pnpm test:release` after `pnpm build`. */
export default defineConfig({
  test: {
    name: 'release-e2e',
    root: new URL('.', import.meta.url).pathname,
    include: ['*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
