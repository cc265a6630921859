import { copyFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'tsup';

// @pit/daemon is private: it is bundled into the CLI (from its built dist), so `npm i -g @pit/cli`
// needs only the published @pit/* packages and the daemon's few third-party dependencies, which
// the CLI lists as its own and keeps external.
const launcher = fileURLToPath(new URL('../daemon/src/launcher-program.mjs', import.meta.url));
const fence = fileURLToPath(new URL('../daemon/src/cluster/fence-program.mjs', import.meta.url));

export default defineConfig({
  entry: { bin: 'src/bin.ts', main: 'src/main.ts', 'demo-agent': 'src/demo/agent.ts' },
  format: ['esm'],
  dts: false,
  clean: true,
  sourcemap: true,
  target: 'node20',
  noExternal: ['@pit/daemon'],
  // The daemon's agent launcher runs as its own plain-node process, found beside the bundled code
  // (launcher-client.ts); so does a clustered daemon's fence (cluster/fence.ts).
  onSuccess: async () => {
    copyFileSync(launcher, 'dist/launcher-program.mjs');
    copyFileSync(fence, 'dist/fence-program.mjs');
  },
});
