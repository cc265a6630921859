import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { bin: 'src/bin.ts', main: 'src/main.ts', 'demo-agent': 'src/demo/agent.ts' },
  format: ['esm'],
  dts: false,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
