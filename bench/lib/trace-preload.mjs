// A diagnostic preload for bench/restart-latency.bench.ts (`node --import <this> …`): records,
// with µs wall-clock times, when the process spawns children (start and end of the synchronous
// spawn() call), when each child's 'exit' event reaches JavaScript, and every file-system call
// (name, start, duration; promise calls until they settle). Nothing else changes: the wrappers
// call the originals. The timeline is appended as JSON lines to $PIT_BENCH_TRACE every 200 ms
// and at exit. Used only in the benchmark's separate "where the time goes" phase, never in the
// measured comparison. When the traced process starts the Pit's agent launcher
// (apps/daemon/src/launcher-program.mjs, which forks agents for the daemon), the launcher is
// traced too, into the same file: then the 'exit' and spawn() entries are the launcher's.
import childProcess from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const file = process.env.PIT_BENCH_TRACE;
if (file) {
  const now = () => performance.timeOrigin + performance.now();
  const appendFileSync = fs.appendFileSync;
  let buffer = [];
  const record = (entry) => buffer.push({ ...entry, by: process.pid });
  /** The path a call names (its first argument), when it names one. */
  const pathOf = (args) =>
    typeof args[0] === 'string' ? args[0] : args[0] instanceof URL ? args[0].href : undefined;
  const flush = () => {
    if (buffer.length === 0) return;
    const lines = buffer.map((entry) => JSON.stringify(entry)).join('\n') + '\n';
    buffer = [];
    appendFileSync(file, lines);
  };
  setInterval(flush, 200).unref();
  process.on('exit', flush);

  const wrapSpawn = (name) => {
    const original = childProcess[name];
    childProcess[name] = function traced(...args) {
      if (Array.isArray(args[1]) && String(args[1][0]).endsWith('launcher-program.mjs')) {
        args[1] = ['--import', fileURLToPath(import.meta.url), ...args[1]];
        args[2] = { ...args[2], env: { ...args[2]?.env, PIT_BENCH_TRACE: file } };
      }
      const t = now();
      const child = original.apply(this, args);
      const end = now();
      record({
        kind: 'spawn',
        name,
        t,
        dur: end - t,
        pid: child.pid,
        command: String(args[0]).split('/').pop(),
      });
      child.on('exit', () => record({ kind: 'exit', t: now(), pid: child.pid }));
      return child;
    };
  };
  wrapSpawn('spawn');

  const wrapSync = (target, names, prefix) => {
    for (const name of names) {
      const original = target[name];
      if (typeof original !== 'function') continue;
      target[name] = function traced(...args) {
        const t = now();
        try {
          return original.apply(this, args);
        } finally {
          record({ kind: 'fs', name: `${prefix}${name}`, path: pathOf(args), t, dur: now() - t });
        }
      };
    }
  };
  const wrapAsync = (target, names, prefix) => {
    for (const name of names) {
      const original = target[name];
      if (typeof original !== 'function') continue;
      target[name] = function traced(...args) {
        const t = now();
        const result = original.apply(this, args);
        const done = () =>
          record({ kind: 'fs', name: `${prefix}${name}`, path: pathOf(args), t, dur: now() - t });
        if (result && typeof result.then === 'function') result.then(done, done);
        else done();
        return result;
      };
    }
  };
  wrapSync(
    fs,
    [
      'openSync',
      'writeSync',
      'closeSync',
      'readFileSync',
      'appendFileSync',
      'mkdirSync',
      'statSync',
      'renameSync',
      'writeFileSync',
      'fsyncSync',
      'readdirSync',
      'existsSync',
      'accessSync',
    ],
    '',
  );
  wrapAsync(
    fs.promises,
    [
      'open',
      'mkdir',
      'stat',
      'lstat',
      'readFile',
      'writeFile',
      'appendFile',
      'rename',
      'readdir',
      'rm',
      'unlink',
      'realpath',
      'access',
    ],
    'promises.',
  );
  // FileHandle methods live on its prototype: reach it through one handle.
  const handle = await fs.promises.open(file, 'a');
  const prototype = Object.getPrototypeOf(handle);
  await handle.close();
  wrapAsync(
    prototype,
    [
      'write',
      'writeFile',
      'appendFile',
      'stat',
      'sync',
      'datasync',
      'close',
      'read',
      'readFile',
      'truncate',
    ],
    'handle.',
  );
  syncBuiltinESMExports();
}
