// @ts-check
import tseslint from 'typescript-eslint';

const siblings = ['probes', 'policy', 'snapshot', 'notify', 'mission-bus'];

/** A package may import @pit/cell-spec and third-party code only; never a sibling or an app. */
const packageBoundaries = siblings.map((name) => ({
  files: [`packages/${name}/src/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            group: siblings.filter((other) => other !== name).map((other) => `@pit/${other}`),
            message:
              'Packages never import each other (only @pit/cell-spec); take a function or interface and let the daemon wire it.',
          },
          { group: ['@pit/*/src/*', '@pit/*/dist/*'], message: 'Import public entries only.' },
          { group: ['**/apps/**'], message: 'Packages never import apps.' },
        ],
      },
    ],
  },
}));

export default tseslint.config(
  {
    ignores: ['**/dist/**', '**/node_modules/**', '**/coverage/**', '.ci/**', 'bench/results/**'],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    files: ['packages/cell-spec/src/**/*.ts'],
    ignores: ['**/*.test.ts', '**/__fixtures__/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [{ group: ['@pit/*'], message: '@pit/cell-spec depends on nothing of ours.' }],
        },
      ],
    },
  },
  {
    // Type-aware rules: a promise is awaited, returned, or explicitly `void`ed; never handed to
    // something that ignores it (a timer, an event handler). Build configs, schema scripts and app benches are outside every tsconfig.
    files: ['**/*.ts'],
    ignores: ['**/tsup.config.ts', 'packages/*/scripts/**', 'apps/*/bench/**'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  ...packageBoundaries,
  {
    files: ['apps/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@pit/*/src/*', '@pit/*/dist/*'], message: 'Import public entries only.' },
          ],
        },
      ],
    },
  },
  {
    files: ['packages/*/src/**/*.ts'],
    ignores: ['**/*.test.ts', '**/__fixtures__/**'],
    rules: {
      'no-console': 'error',
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Packages take config as arguments; apps read the environment.',
        },
        { object: 'process', property: 'exit', message: 'Packages never exit the process.' },
      ],
    },
  },
);
