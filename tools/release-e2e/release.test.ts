/**
 * The release pipeline, end to end: publish every public package to a real private registry
 * (verdaccio on 127.0.0.1), then install from it in a scratch project outside the workspace and
 * use each package from ESM, CommonJS and TypeScript; install the `pit` command (@pit/cli) globally
 * from it, as an operator would, and run it.
 */
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type RunningRegistry } from './registry.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  dependencies?: Record<string, string>;
}

const publicPackages = readdirSync(join(repo, 'packages'))
  .map((dir) => ({
    dir: join(repo, 'packages', dir),
    manifest: JSON.parse(
      readFileSync(join(repo, 'packages', dir, 'package.json'), 'utf8'),
    ) as Manifest,
  }))
  .filter((pkg) => !pkg.manifest.private);

const cliDir = join(repo, 'apps', 'cli');
const cliManifest = JSON.parse(readFileSync(join(cliDir, 'package.json'), 'utf8')) as Manifest;

let registry: RunningRegistry;
let work: string;
let scratch: string;

function run(command: string, args: string[], cwd: string): string {
  return execFileSync(command, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      npm_config_userconfig: registry.userconfig,
      NPM_CONFIG_USERCONFIG: registry.userconfig,
    },
  });
}

beforeAll(async () => {
  const built = [
    ...publicPackages.map((pkg) => ({
      name: pkg.manifest.name,
      file: join(pkg.dir, 'dist', 'index.js'),
    })),
    { name: cliManifest.name, file: join(cliDir, 'dist', 'bin.js') },
  ];
  for (const { name, file } of built) {
    if (!existsSync(file))
      throw new Error(`${name} is not built: run \`pnpm build\` before \`pnpm test:release\``);
  }
  work = mkdtempSync(join(tmpdir(), 'pit-release-'));
  registry = await startRegistry(join(work, 'registry'));
  run(
    'pnpm',
    [
      '-r',
      '--filter',
      './packages/*',
      '--filter',
      './apps/cli',
      'publish',
      '--no-git-checks',
      '--registry',
      `${registry.url}/`,
    ],
    repo,
  );
  scratch = join(work, 'scratch');
  execFileSync('mkdir', ['-p', scratch]);
  writeFileSync(
    join(scratch, 'package.json'),
    JSON.stringify({ name: 'scratch', version: '1.0.0', private: true }, null, 2),
  );
  writeFileSync(join(scratch, '.npmrc'), `@pit:registry=${registry.url}/\n`);
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      ...publicPackages.map((pkg) => `${pkg.manifest.name}@${pkg.manifest.version}`),
    ],
    scratch,
  );
}, 300_000);

afterAll(async () => {
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the private-registry release', () => {
  it('publishes every public package with workspace: ranges rewritten to real versions', () => {
    for (const pkg of publicPackages) {
      const installed = JSON.parse(
        readFileSync(join(scratch, 'node_modules', pkg.manifest.name, 'package.json'), 'utf8'),
      ) as Manifest & { exports: Record<string, unknown> };
      expect(installed.version).toBe(pkg.manifest.version);
      for (const [dep, range] of Object.entries(installed.dependencies ?? {})) {
        expect(range, `${pkg.manifest.name} → ${dep}`).not.toMatch(/^workspace:/);
      }
      expect(
        JSON.stringify(installed.exports),
        `${pkg.manifest.name}: published exports must not point at src`,
      ).not.toContain('@pit/source');
    }
  });

  it('ships the JSON Schemas in the @pit/cell-spec tarball', () => {
    const schemas = join(scratch, 'node_modules', '@pit', 'cell-spec', 'schemas');
    expect(readdirSync(schemas)).toEqual(
      expect.arrayContaining([
        'heartbeat.schema.json',
        'cell-manifest.schema.json',
        'cell-event.schema.json',
        'cell-state.schema.json',
      ]),
    );
    const heartbeat = JSON.parse(readFileSync(join(schemas, 'heartbeat.schema.json'), 'utf8')) as {
      required: string[];
    };
    expect(heartbeat.required).toEqual(
      expect.arrayContaining(['agent', 'pid', 'timestamp', 'cycle', 'status', 'cell_uuid']),
    );
  });

  it('imports @pit/cell-spec from ESM and calls it', () => {
    const out = run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { cellPaths, AgentNameSchema } from '@pit/cell-spec'; console.log(cellPaths('/m', '3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b').heartbeat('forge'), AgentNameSchema.safeParse('../x').success);",
      ],
      scratch,
    );
    expect(out.trim()).toBe(
      '/m/3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b/.lazarus/heartbeats/forge.json false',
    );
  });

  it('requires @pit/cell-spec from CommonJS and calls it', () => {
    const out = run(
      process.execPath,
      [
        '-e',
        "const { canTransition, PitError } = require('@pit/cell-spec'); console.log(canTransition('frozen', 'active'), canTransition('archived', 'active'), typeof PitError.is);",
      ],
      scratch,
    );
    expect(out.trim()).toBe('true false function');
  });

  it('resolves the types of @pit/cell-spec for ESM and CommonJS consumers', () => {
    // A consumer has Node's types; bring the workspace's copy (the private registry has no uplink).
    const typesNode = realpathSync(join(repo, 'node_modules', '@types', 'node'));
    cpSync(typesNode, join(scratch, 'node_modules', '@types', 'node'), {
      recursive: true,
      dereference: true,
    });
    cpSync(
      join(typesNode, '..', '..', 'undici-types'),
      join(scratch, 'node_modules', 'undici-types'),
      { recursive: true, dereference: true },
    );
    writeFileSync(
      join(scratch, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
        },
        files: ['esm.mts', 'cjs.cts'],
      }),
    );
    const usage =
      "const paths = cellSpec.cellPaths('/m');\nexport const name: string = paths.manifest;\n// @ts-expect-error cellPaths takes strings\ncellSpec.cellPaths(42);\n";
    writeFileSync(
      join(scratch, 'esm.mts'),
      `import * as cellSpec from '@pit/cell-spec';\n${usage}`,
    );
    writeFileSync(
      join(scratch, 'cjs.cts'),
      `import cellSpec = require('@pit/cell-spec');\n${usage}`,
    );
    let output = '';
    try {
      output = run(process.execPath, [tsc, '-p', 'tsconfig.json'], scratch);
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error);
    }
    expect(output.trim()).toBe('');
  });

  it.each(publicPackages.map((pkg) => pkg.manifest.name))(
    'loads %s from both ESM and CommonJS',
    (name) => {
      const esm = run(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const m = await import('${name}'); console.log(Object.keys(m).length);`,
        ],
        scratch,
      );
      const cjs = run(
        process.execPath,
        ['-e', `console.log(Object.keys(require('${name}')).length);`],
        scratch,
      );
      expect(Number(esm.trim())).toBeGreaterThan(0);
      expect(Number(cjs.trim())).toBe(Number(esm.trim()));
    },
  );

  it('installs the `pit` command globally with npm and runs it', () => {
    expect(cliManifest.private, '@pit/cli must be publishable').toBeUndefined();
    const prefix = join(work, 'global');
    run(
      'npm',
      [
        'install',
        '--global',
        '--prefix',
        prefix,
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        `@pit/cli@${cliManifest.version}`,
      ],
      work,
    );
    const pit = join(prefix, 'bin', 'pit');
    expect(run(pit, ['--version'], work).trim()).toBe(cliManifest.version);
    const installed = join(prefix, 'lib', 'node_modules', '@pit');
    expect(existsSync(join(installed, 'daemon')), 'the daemon is bundled, not a dependency').toBe(
      false,
    );
    // The demo from the installed copy: real agents, a real daemon and dashboard on a free port.
    const demoDir = join(work, 'demo');
    execFileSync('mkdir', ['-p', demoDir]);
    const out = execFileSync(pit, ['demo', '--exit-when-done', '--listen', '127.0.0.1:0'], {
      cwd: demoDir,
      encoding: 'utf8',
      timeout: 180_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(out).toContain('revived as pid');
    expect(out).toContain('The scripted part is done.');
  });
});
