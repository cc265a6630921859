#!/usr/bin/env node
// The `pit` command. Built output lives in ../dist (run `pnpm build`).
import('../dist/bin.js').catch((error) => {
  if (
    error &&
    error.code === 'ERR_MODULE_NOT_FOUND' &&
    String(error.message).includes('/dist/bin.js')
  ) {
    process.stderr.write('pit: not built yet: run `pnpm build` in the repository first\n');
    process.exit(70);
  }
  throw error;
});
