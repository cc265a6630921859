/**
 * Loads the workspace's packages from the root benchmarks. The root has no dependency on them,
 * so they are resolved the way apps/daemon resolves them (its node_modules, through each
 * package's `exports` with the `@pit/source` condition the benchmarks run under): the public
 * entry points, never a path into a package's source.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const requireFromDaemon = createRequire(new URL('../../apps/daemon/package.json', import.meta.url));

/** `import(specifier)` as apps/daemon would resolve it (`@pit/cell-spec`, `@pit/notify/test-servers`, …). */
export async function importWorkspace<T>(specifier: string): Promise<T> {
  return (await import(pathToFileURL(requireFromDaemon.resolve(specifier)).href)) as T;
}

/** @pit/cell-spec's public API. */
export type CellSpec = typeof import('../../packages/cell-spec/src/index.js');
/** @pit/notify's test servers (a local Telegram Bot API among them). */
export type NotifyTestServers = typeof import('../../packages/notify/test/servers/index.js');
