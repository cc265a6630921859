// The version `pit --version` prints: the `version` of @pit/cli's package.json, read beside the
// code (src/ in the repository and dist/ when installed both sit one level below it).
import { readFileSync } from 'node:fs';

/** The version of the installed `@pit/cli` (its package.json), e.g. `0.1.0`. */
export function cliVersion(): string {
  const manifest = JSON.parse(
    readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
  ) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}
