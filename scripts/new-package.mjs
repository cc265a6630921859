// Writes a package.json for packages/<name> with the shared publish shape. Used once per package.
import { mkdirSync, writeFileSync } from 'node:fs';
const [name, description, depsJson = '{}'] = process.argv.slice(2);
const dir = `packages/${name}`;
mkdirSync(`${dir}/src`, { recursive: true });
const exportsDist = {
  '.': {
    import: { types: './dist/index.d.ts', default: './dist/index.js' },
    require: { types: './dist/index.d.cts', default: './dist/index.cjs' },
  },
  './package.json': './package.json',
};
const pkg = {
  name: `@pit/${name}`,
  version: '0.1.0',
  description,
  license: 'MIT',
  type: 'module',
  sideEffects: false,
  engines: { node: '>=20.19' },
  main: './dist/index.cjs',
  module: './dist/index.js',
  types: './dist/index.d.ts',
  exports: {
    '.': { '@pit/source': './src/index.ts', ...exportsDist['.'] },
    './package.json': './package.json',
  },
  files: ['dist', 'README.md', 'CHANGELOG.md'],
  scripts: {
    build: 'tsup',
  },
  publishConfig: { access: 'restricted', exports: exportsDist },
  dependencies: JSON.parse(depsJson),
};
writeFileSync(`${dir}/package.json`, JSON.stringify(pkg, null, 2) + '\n');
writeFileSync(
  `${dir}/tsconfig.json`,
  JSON.stringify({ extends: '../../tsconfig.base.json', include: ['src', 'test', 'bench'] }) + '\n',
);
writeFileSync(
  `${dir}/tsup.config.ts`,
  `import { defineConfig } from 'tsup';\n\nexport default defineConfig({\n  entry: ['src/index.ts'],\n  format: ['esm', 'cjs'],\n  dts: true,\n  clean: true,\n  sourcemap: true,\n  target: 'node20',\n});\n`,
);
