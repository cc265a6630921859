// @ts-check
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';

const workspaceRoot = dirname(fileURLToPath(import.meta.url));

/**
 * The unit a file belongs to: `packages/<name>` or `apps/<name>`, else its top-level folder
 * (`bench`, `test`, `tools`, `scripts`, …), else `.` for the root's own files; `null` outside
 * the repository.
 * @param {string} file
 */
function unitOf(file) {
  const parts = relative(workspaceRoot, file).split(sep);
  if (parts[0] === '..') return null;
  if ((parts[0] === 'packages' || parts[0] === 'apps') && parts.length > 2)
    return `${parts[0]}/${parts[1]}`;
  return parts.length > 1 ? parts[0] : '.';
}

/**
 * Visitors that hand the string literal naming each imported module to `check`: `import`,
 * `export … from`, `import()`, `typeof import(…)` and `import x = require(…)`.
 * @param {(node: any) => void} check
 * @returns {import('eslint').Rule.RuleListener}
 */
const moduleSpecifiers = (check) => ({
  ImportDeclaration: (node) => check(node.source),
  ExportNamedDeclaration: (node) => check(node.source),
  ExportAllDeclaration: (node) => check(node.source),
  ImportExpression: (node) => check(node.source),
  /** @param {any} node */
  TSImportType: (node) => check(node.argument?.literal ?? node.argument),
  /** @param {any} node */
  TSExternalModuleReference: (node) => check(node.expression),
});

/**
 * `pit/no-relative-import-across-units`: a relative import (static, dynamic, `export … from`,
 * `typeof import(…)`) must stay inside its own package, app or top-level folder. What another
 * unit offers is reached through its package entry: `@pit/test-kit` for shared test servers and
 * helpers, a package's public entry, or an `exports` path of the app.
 * @type {import('eslint').Rule.RuleModule}
 */
const noRelativeImportAcrossUnits = {
  meta: {
    type: 'problem',
    docs: { description: 'Forbid relative imports that reach into another package or app.' },
    schema: [],
    messages: {
      across:
        "'{{specifier}}' reaches from {{from}} into {{to}}: import it through a package entry (@pit/test-kit for shared test servers and helpers, or the package's public entry).",
    },
  },
  create(context) {
    const file = context.physicalFilename;
    const from = unitOf(file);
    /** @param {any} node the string literal naming the module */
    const check = (node) => {
      if (!node || typeof node.value !== 'string' || !node.value.startsWith('.')) return;
      const to = unitOf(resolve(dirname(file), node.value));
      if (to === from) return;
      context.report({
        node,
        messageId: 'across',
        data: { specifier: node.value, from: from ?? '?', to: to ?? 'outside the repository' },
      });
    };
    return moduleSpecifiers(check);
  },
};

/**
 * `pit/no-test-kit-in-shipped-code`: @pit/test-kit is never published, so code that ships (a
 * package's or app's `src`, tests and fixtures aside) never imports it.
 * @type {import('eslint').Rule.RuleModule}
 */
const noTestKitInShippedCode = {
  meta: {
    type: 'problem',
    docs: { description: 'Forbid @pit/test-kit in code that ships.' },
    schema: [],
    messages: {
      shipped:
        '@pit/test-kit is private test code: only tests, fixtures, benchmarks and tools import it.',
    },
  },
  create(context) {
    /** @param {any} node */
    const check = (node) => {
      if (typeof node?.value === 'string' && /^@pit\/test-kit(\/|$)/.test(node.value))
        context.report({ node, messageId: 'shipped' });
    };
    return moduleSpecifiers(check);
  },
};

const pit = {
  rules: {
    'no-relative-import-across-units': noRelativeImportAcrossUnits,
    'no-test-kit-in-shipped-code': noTestKitInShippedCode,
  },
};

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
    plugins: { pit },
    rules: { 'pit/no-relative-import-across-units': 'error' },
  },
  {
    files: ['packages/*/src/**/*.{ts,js,mjs}', 'apps/*/src/**/*.{ts,js,mjs}'],
    ignores: ['packages/test-kit/**', '**/*.test.ts', '**/__fixtures__/**'],
    rules: { 'pit/no-test-kit-in-shipped-code': 'error' },
  },
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
  {
    // The daemon is wiring in small named modules: a function fits on a screen.
    files: ['apps/daemon/src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 80 }] },
  },
  {
    // supervisor.ts composes the modules and holds no logic: about a page (issue #12).
    files: ['apps/daemon/src/supervisor.ts'],
    rules: { 'max-lines': ['error', { max: 300, skipBlankLines: false, skipComments: false }] },
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
