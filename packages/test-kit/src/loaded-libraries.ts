/**
 * Which libraries a process has loaded, for tests of lazy loading. Its own entry
 * (`@pit/test-kit/loaded-libraries`), because the main entry loads ws and nostr-tools itself.
 */
import { createRequire, register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';

/** What {@link recordLoadedLibraries} returns. */
export interface LoadedLibrariesRecorder {
  /**
   * Which of `libraries` (package names) this process has loaded so far: an import resolved to a
   * file inside the package, or a `require` put one in the CommonJS module cache. Call once, at
   * the end: it stops recording.
   */
  loaded(libraries: readonly string[]): Promise<{ loaded: string[]; resolvedCount: number }>;
}

/**
 * Starts recording every URL an import resolves to in this process (module resolution hooks).
 * Call it first, before importing what is under test.
 *
 * @example
 * const recorder = recordLoadedLibraries();
 * await import('@pit/notify');
 * const { loaded } = await recorder.loaded(['grammy', 'ws']); // []
 */
export function recordLoadedLibraries(): LoadedLibrariesRecorder {
  const resolved: string[] = [];
  const { port1, port2 } = new MessageChannel();
  port1.on('message', (url: string) => resolved.push(url));
  port1.unref();
  register(new URL('../fixtures/record-resolutions.mjs', import.meta.url), {
    data: { port: port2 },
    transferList: [port2],
  });
  return {
    async loaded(libraries) {
      // Resolve a marker through the hooks: the port delivers in order, so once the marker is
      // here, every earlier resolution is too.
      const marker = `data:text/javascript,export default 1;//${Date.now()}`;
      const arrived = new Promise<void>((done) =>
        port1.on('message', (url: string) => url === marker && done()),
      );
      // Held open until the marker arrives: with the port unref'd, an otherwise idle loop could
      // end first (exit 13, a top-level await never settled).
      port1.ref();
      await import(marker);
      await arrived;
      port1.close();
      const cached = Object.keys(createRequire(import.meta.url).cache);
      const inside = (path: string, library: string) => path.includes(`/node_modules/${library}/`);
      const loaded = libraries.filter(
        (library) =>
          resolved.some((url) => inside(url, library)) ||
          cached.some((file) => inside(file, library)),
      );
      return { loaded, resolvedCount: resolved.length };
    },
  };
}
