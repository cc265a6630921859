/**
 * Real `nats-server` nodes for tests: a JetStream cluster of N nodes on 127.0.0.1 (Debian's
 * `nats-server`, installed by `.ci/run`), each in its own process with its own store directory,
 * routes between all of them, and a monitoring port whose `/healthz` says when the node serves
 * JetStream. A node can be killed (`SIGKILL`) and started again on the same ports and store, to
 * exercise leader elections and reconnection. Never a simulation: the client under test talks to
 * the real server.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../free-port.js';
import { waitFor } from '../wait-for.js';

/** One node of a {@link TestNatsCluster}. */
export interface TestNatsNode {
  /** The client URL, `nats://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** The monitoring port (`/healthz`, `/varz`). */
  monitorPort: number;
  /** The running process, or undefined while the node is down. */
  process: ChildProcess | undefined;
}

/** Options of {@link startNatsCluster}. */
export interface NatsClusterOptions {
  /**
   * The address clients connect to (routes and monitoring stay on 127.0.0.1): a partition test
   * puts one daemon in a network namespace that reaches the nodes through a veth address.
   * @default '127.0.0.1'
   */
  clientHost?: string;
  /**
   * Nodes left down at first (start them with `start(index)`): the cluster resolves once the
   * others serve JetStream, so a test can open it before it has all its peers.
   * @default []
   */
  down?: number[];
}

/** A running cluster; `stop()` kills every node. */
export interface TestNatsCluster {
  nodes: TestNatsNode[];
  /** Every node's client URL. */
  urls: string[];
  /** SIGKILLs node `index` and waits for its exit. */
  kill(index: number): Promise<void>;
  /** Starts node `index` again (same ports, same store) and waits until it serves JetStream. */
  start(index: number): Promise<void>;
  stop(): Promise<void>;
}

/** The path of `nats-server`, or undefined when it is not installed (a test then says so). */
export function natsServerPath(): string | undefined {
  for (const candidate of [
    '/usr/sbin/nats-server',
    '/usr/bin/nats-server',
    '/usr/local/bin/nats-server',
  ]) {
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

/**
 * Whether `nats-server` is here; when it is not, warns once that `what` is skipped and how to
 * install it. For `describe.skipIf(!natsInstalled('…'))`.
 */
export function natsInstalled(what: string): boolean {
  if (natsServerPath() !== undefined) return true;
  process.stderr.write(
    `nats-server is not installed: skipping ${what} (apt-get install -y nats-server; .ci/run installs it)\n`,
  );
  return false;
}

interface NodePorts {
  client: number;
  cluster: number;
  monitor: number;
}

/**
 * One node's config. `name` is the cluster's own: a node left running by an earlier cluster
 * (a test that died before its cleanup) keeps dialling its old peers' route ports, and a new
 * cluster handed one of those ports must refuse it (routes with another cluster name are
 * rejected) rather than take in a stranger with its own JetStream meta state.
 */
function nodeConfig(
  dir: string,
  index: number,
  ports: NodePorts[],
  host: string,
  name: string,
): string {
  const own = ports[index]!;
  const routes = ports
    .filter((_, other) => other !== index)
    .map((other) => `nats-route://127.0.0.1:${other.cluster}`);
  return [
    `server_name: n${index}`,
    `listen: ${host}:${own.client}`,
    `http: 127.0.0.1:${own.monitor}`,
    `jetstream { store_dir: "${join(dir, `n${index}`)}" }`,
    `cluster {`,
    `  name: ${name}`,
    `  listen: 127.0.0.1:${own.cluster}`,
    `  routes: [${routes.map((route) => `"${route}"`).join(', ')}]`,
    `}`,
    '',
  ].join('\n');
}

/**
 * Whether the JetStream meta leader (the one node whose `/jsz` lists replicas) reports the
 * `nodes - 1` others current.
 */
async function metaFormed(ports: NodePorts[], nodes: number): Promise<boolean> {
  for (const port of ports) {
    const response = await fetch(`http://127.0.0.1:${port.monitor}/jsz`).catch(() => undefined);
    const jsz = (await response?.json().catch(() => undefined)) as
      | {
          meta_cluster?: { leader?: string; replicas?: { current?: boolean; offline?: boolean }[] };
        }
      | undefined;
    const replicas = jsz?.meta_cluster?.replicas;
    if (!jsz?.meta_cluster?.leader || replicas === undefined) continue;
    return replicas.length === nodes - 1 && replicas.every((peer) => peer.current && !peer.offline);
  }
  return false;
}

async function healthy(monitorPort: number): Promise<boolean> {
  const response = await fetch(`http://127.0.0.1:${monitorPort}/healthz`).catch(() => undefined);
  return response?.status === 200;
}

/**
 * Starts `nodes` (default 3) `nats-server` processes forming one JetStream cluster, with their
 * stores under `dir`, and resolves once every node reports healthy (those `options.down` names
 * are left to the test to start).
 * @throws Error when `nats-server` is not installed or the cluster does not form within 30 s, twice.
 */
export async function startNatsCluster(
  dir: string,
  nodes = 3,
  options: NatsClusterOptions = {},
): Promise<TestNatsCluster> {
  // A cluster that does not form (seen once in CI on a loaded machine: a node stuck after
  // starting JetStream) is started again once, on fresh ports and a fresh store.
  try {
    return await launchNatsCluster(join(dir, 'a'), nodes, options);
  } catch (error) {
    process.stderr.write(
      `startNatsCluster: the cluster did not form; starting it again once: ${(error as Error).message.split('\n')[0]}\n`,
    );
    return launchNatsCluster(join(dir, 'b'), nodes, options);
  }
}

async function launchNatsCluster(
  dir: string,
  nodes: number,
  options: NatsClusterOptions,
): Promise<TestNatsCluster> {
  const host = options.clientHost ?? '127.0.0.1';
  const binary = natsServerPath();
  if (!binary) throw new Error('nats-server is not installed (apt-get install -y nats-server)');
  const clusterName = `pit-test-${randomBytes(4).toString('hex')}`;
  const ports: NodePorts[] = [];
  for (let index = 0; index < nodes; index += 1)
    ports.push({ client: await freePort(), cluster: await freePort(), monitor: await freePort() });
  const configs = ports.map((_, index) => {
    mkdirSync(join(dir, `n${index}`), { recursive: true });
    const path = join(dir, `n${index}.conf`);
    writeFileSync(path, nodeConfig(dir, index, ports, host, clusterName));
    return path;
  });
  const running: TestNatsNode[] = ports.map((port) => ({
    url: `nats://${host}:${port.client}`,
    port: port.client,
    monitorPort: port.monitor,
    process: undefined,
  }));
  // The last words of each node (its log goes to stderr), for the error when one does not start.
  const tails: string[] = ports.map(() => '');
  const launch = (index: number) => {
    const child = spawn(binary, ['-c', configs[index]!], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (chunk: Buffer) => {
      tails[index] = (tails[index] + chunk.toString()).slice(-2000);
    });
    running[index]!.process = child;
    child.once('exit', () => {
      if (running[index]!.process === child) running[index]!.process = undefined;
    });
  };
  // A node that exits before it serves (its port taken between freePort() and its bind, by
  // another test's connection) fails at once, so that the one retry on fresh ports has time.
  const ready = async (index: number) => {
    const child = running[index]!.process;
    const ended = () =>
      !child || child.exitCode !== null || child.signalCode !== null
        ? `exited (${child?.signalCode ?? child?.exitCode ?? 'not started'})`
        : undefined;
    try {
      await waitFor(
        async () => ended() !== undefined || (await healthy(ports[index]!.monitor)),
        30_000,
        `nats-server node n${index} to serve JetStream`,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\nits log ends:\n${tails[index]}`);
    }
    const exit = ended();
    if (exit)
      throw new Error(
        `nats-server node n${index} ${exit} before serving JetStream\nits log ends:\n${tails[index]}`,
      );
  };
  const up = ports.map((_, index) => index).filter((index) => !options.down?.includes(index));
  for (const index of up) launch(index);
  const cluster: TestNatsCluster = {
    nodes: running,
    urls: running.map((node) => node.url),
    async kill(index) {
      const child = running[index]!.process;
      if (!child) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    },
    async start(index) {
      if (running[index]!.process) return;
      launch(index);
      await ready(index);
    },
    async stop() {
      await Promise.all(running.map((_, index) => cluster.kill(index)));
    },
  };
  try {
    await Promise.all(up.map((index) => ready(index)));
    // Healthy nodes are not yet a cluster that can place an R3 bucket: its meta leader must know
    // every peer as current (a bench once saw 30 s of "no suitable peers for placement").
    if (up.length === nodes)
      await waitFor(
        () => metaFormed(ports, nodes),
        30_000,
        'the JetStream meta leader to know every node as current',
      );
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
