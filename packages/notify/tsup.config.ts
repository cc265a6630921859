import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // src/lazy-modules.ts uses import.meta.url; the CommonJS build needs it shimmed.
  shims: true,
});
