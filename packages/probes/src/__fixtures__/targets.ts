/**
 * Real targets for tests on 127.0.0.1: live and hung servers, a closed port, and child
 * processes spawned in their own process group and reaped afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';

/** A listening server that can be closed, with every open connection. */
export interface RunningServer {
  port: number;
  url: string;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function closer(server: Server, sockets: Set<Socket>): () => Promise<void> {
  return async () => {
    for (const socket of sockets) socket.destroy();
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}

/** An HTTP server on 127.0.0.1:0 answering with `handler`. */
export async function startHttpServer(handler: RequestListener): Promise<RunningServer> {
  const server = createHttpServer(handler);
  const sockets = trackSockets(server);
  const port = await listen(server);
  return { port, url: `http://127.0.0.1:${port}`, close: closer(server, sockets) };
}

/** A TCP server on 127.0.0.1:0 that accepts connections and never sends a byte (a hung gateway). */
export async function startHungServer(): Promise<RunningServer & { connections(): number }> {
  // Reads (and discards) what the client sends, so it notices when the client goes away.
  const server = createNetServer((socket) => socket.resume());
  const sockets = trackSockets(server);
  const port = await listen(server);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: closer(server, sockets),
    connections: () => sockets.size,
  };
}

/**
 * A TCP server on 127.0.0.1:0 that answers each connection's first request with `parts`, the raw
 * bytes of a response written one part at a time (each in its own segment), then closes; it
 * records each request's raw text.
 */
export async function startRawHttpServer(
  parts: Array<string | Buffer>,
): Promise<RunningServer & { requests: string[] }> {
  const requests: string[] = [];
  const server = createNetServer((socket) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (!text.includes('\r\n\r\n')) return;
      requests.push(text);
      socket.removeAllListeners('data');
      socket.resume();
      void (async () => {
        for (const part of parts) {
          if (socket.destroyed) return;
          socket.write(part);
          // One segment per part: the next write waits for this one to reach the kernel.
          await new Promise((resolve) => setImmediate(resolve));
        }
        socket.end();
      })();
    });
    socket.on('error', () => undefined);
  });
  const sockets = trackSockets(server);
  const port = await listen(server);
  return { port, url: `http://127.0.0.1:${port}`, close: closer(server, sockets), requests };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createNetServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const children = new Set<ChildProcess>();

/** Spawns a command in its own process group; {@link reapChildren} kills and waits for it. */
export function spawnChild(
  command: string,
  args: string[],
  options: { stdin?: 'pipe' } = {},
): ChildProcess & { pid: number } {
  const child = spawn(command, args, {
    detached: true,
    stdio: [options.stdin ?? 'ignore', 'ignore', 'ignore'],
  });
  if (child.pid === undefined) throw new Error(`could not spawn ${command}`);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child as ChildProcess & { pid: number };
}

/** Kills a child's process group and waits for the child to exit. */
export async function killChild(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  try {
    if (child.pid !== undefined && child.pid > 1) process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
  await exited;
}

/** Kills and reaps every child still running (use in afterEach). */
export async function reapChildren(): Promise<void> {
  await Promise.all([...children].map((child) => killChild(child)));
}

/** A long-running node process whose command line carries `marker`. */
export function spawnMarked(marker: string): ChildProcess & { pid: number } {
  return spawnChild(process.execPath, ['-e', 'setInterval(() => {}, 1000)', marker]);
}
