// The publish-shape check: pack every public package the way `pnpm publish` will (publishConfig
// applied, workspace: ranges rewritten), then lint the tarball with publint and check its types
// with @arethetypeswrong/cli. Run after `pnpm build`. Exits 1 if any package has a problem.
// The public apps (@pit/cli: a `bin` and no types) go through the same checks.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), 'pit-pack-'));
let failed = 0;
try {
  const dirs = ['packages', 'apps'].flatMap((parent) =>
    readdirSync(join(root, parent)).map((dir) => join(parent, dir)),
  );
  for (const dir of dirs) {
    const pkgDir = join(root, dir);
    const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
    if (manifest.private) continue;
    const dest = join(out, dir);
    execFileSync('pnpm', ['pack', '--pack-destination', dest], {
      cwd: pkgDir,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const tarball = join(
      dest,
      readdirSync(dest).find((file) => file.endsWith('.tgz')),
    );
    for (const [label, command, args] of [
      ['publint', join(root, 'node_modules/.bin/publint'), ['run', tarball, '--strict']],
      [
        'attw',
        join(root, 'node_modules/.bin/attw'),
        [tarball, '--profile', 'node16', '--format', 'table-flipped'],
      ],
    ]) {
      try {
        execFileSync(command, args, {
          cwd: pkgDir,
          stdio: ['ignore', 'pipe', 'pipe'],
          encoding: 'utf8',
        });
        process.stdout.write(`ok    ${label.padEnd(8)} ${manifest.name}\n`);
      } catch (error) {
        failed += 1;
        process.stdout.write(
          `FAIL  ${label.padEnd(8)} ${manifest.name}\n${error.stdout ?? ''}${error.stderr ?? ''}\n`,
        );
      }
    }
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
