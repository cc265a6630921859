/**
 * The daemon's side of the fence (fence-program.mjs): a small process in its own session that
 * kills this host's cluster agents once the host lease is no longer safe, whether or not the
 * daemon can still act (SIGKILL, SIGSTOP, a stuck loop). Owns the fence's life and its messages;
 * decides nothing: the cluster member says when the lease was renewed and which processes to
 * watch.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { silentLogger, type Logger } from '../logger.js';

/** The fence program, beside this module in src/ and in dist/ (tsup copies it). */
export const FENCE_PROGRAM = fileURLToPath(new URL('./fence-program.mjs', import.meta.url));

/** An agent process the fence kills when the lease is not safe. */
export interface FencedProcess {
  key: string;
  pid: number;
  /** `/proc/<pid>/stat` field 22: only this incarnation is killed, never a reused pid. */
  startTime: number;
  /** The agent's cgroup, killed whole (its descendants included) where cgroups are on. */
  cgroup?: string;
}

/** See the module header. */
export interface Fence {
  readonly pid: number;
  /** The lease is safe for `validMs` from now. */
  lease(validMs: number): void;
  watch(process: FencedProcess): void;
  unwatch(key: string): void;
  /** A clean stop: the fence exits without killing anything. */
  disarm(): Promise<void>;
}

/** Options of {@link startFence}. */
export interface FenceOptions {
  logger?: Logger;
  /** @default {@link FENCE_PROGRAM} */
  program?: string;
  /** Told of every process the fence killed. */
  onKilled?: (key: string, pid: number) => void;
}

/**
 * Starts the fence in its own session (a signal to the daemon's group does not reach it).
 * @throws Error when it cannot be started.
 */
export async function startFence(options: FenceOptions = {}): Promise<Fence> {
  const logger = options.logger ?? silentLogger;
  const child: ChildProcess = spawn(process.execPath, [options.program ?? FENCE_PROGRAM], {
    detached: true,
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('the fence process did not start');
  // Neither the fence nor its pipes keep the daemon's event loop alive.
  child.unref();
  // Child stdio pipes are sockets: unreferenced, they do not hold the loop either.
  (child.stdin as Socket | null)?.unref();
  const stdout = child.stdout as Socket | null;
  if (stdout) {
    stdout.unref();
    createInterface({ input: stdout }).on('line', (line) => {
      try {
        const message = JSON.parse(line) as { type?: string; key?: string; pid?: number };
        if (message.type !== 'killed' || typeof message.key !== 'string') return;
        logger.error('fence killed an agent: the host lease was not renewed in time', {
          agent: message.key,
          pid: message.pid,
        });
        options.onKilled?.(message.key, Number(message.pid));
      } catch {
        // not a line of the fence's protocol
      }
    });
  }
  let alive = true;
  child.once('exit', (code, signal) => {
    alive = false;
    logger.warn('the fence process ended', { pid, code, signal });
  });
  child.stdin?.on('error', () => undefined);
  const send = (message: object) => {
    if (alive) child.stdin?.write(`${JSON.stringify(message)}\n`);
  };
  logger.info('fence started', { pid });
  return {
    pid,
    lease: (validMs) => send({ type: 'lease', valid_ms: Math.max(0, Math.floor(validMs)) }),
    watch: (agent) =>
      send({
        type: 'watch',
        key: agent.key,
        pid: agent.pid,
        start_time: agent.startTime,
        ...(agent.cgroup ? { cgroup: agent.cgroup } : {}),
      }),
    unwatch: (key) => send({ type: 'unwatch', key }),
    async disarm() {
      if (!alive) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      send({ type: 'disarm' });
      child.stdin?.end();
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    },
  };
}
