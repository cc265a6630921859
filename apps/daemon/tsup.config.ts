import { copyFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/mcp.ts', 'src/cluster.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // The agent launcher runs as its own plain-node process (launcher-client.ts finds it beside the code).
  // So does a clustered daemon's fence (cluster/fence.ts).
  onSuccess: async () => {
    copyFileSync('src/launcher-program.mjs', 'dist/launcher-program.mjs');
    copyFileSync('src/cluster/fence-program.mjs', 'dist/fence-program.mjs');
  },
});
