/**
 * What the cluster fault tests share (cluster-takeover, cluster-cell-takeover, cluster-bus-storm,
 * fleet-wide-incidents): the common part of each host's pit.toml, an agent's incarnation as its
 * own environment tells it (`PIT_HOST`, `PIT_EPOCH`, read from /proc), and the /proc sampler
 * that watches for two live copies of an agent, and the teardown that reports and kills the hosts.
 */
import { promises as fs } from 'node:fs';
import { killDaemon, liveAgents, type DaemonProcess } from './harness.js';

/** One incarnation of an agent: its process, the host that started it and the epoch it holds. */
export interface Incarnation {
  pid: number;
  host: string;
  epoch: number;
}

/** The incarnation a live process belongs to, or undefined (gone, or not started by a clustered daemon). */
export async function incarnationOf(pid: number): Promise<Incarnation | undefined> {
  const environ = await fs.readFile(`/proc/${pid}/environ`, 'utf8').catch(() => undefined);
  if (!environ) return undefined;
  const env = new Map(
    environ
      .split('\0')
      .filter(Boolean)
      .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
  );
  const [host, epoch] = [env.get('PIT_HOST'), env.get('PIT_EPOCH')];
  return host && epoch ? { pid, host, epoch: Number(epoch) } : undefined;
}

/** The agent's one live incarnation (counted by `marker`), or undefined while it has none or two. */
export async function runningOnce(marker: string, agent: string): Promise<Incarnation | undefined> {
  const pids = (await liveAgents(marker)).get(agent) ?? [];
  return pids.length === 1 ? incarnationOf(pids[0]!) : undefined;
}

/**
 * The lines every clustered host's pit.toml of these tests starts with: its state dir `state`
 * and cells root `missions` (relative to the config), HTTP on an ephemeral loopback port with
 * the faults token, a fast discovery poll, no bus unless asked, and `[cluster]` over `servers`.
 */
export function clusterHostToml(options: {
  servers: string[];
  hostId: string;
  leaseS: number;
  /** `[checkpoints] interval_s`. @default 0 (none) */
  checkpointEveryS?: number;
  /** Serve the mission bus (on an ephemeral loopback port). @default false */
  bus?: boolean;
}): string[] {
  return [
    '[daemon]',
    'state_dir = "state"',
    'log_level = "debug"',
    '[daemon.http]',
    'listen = "127.0.0.1:0"',
    'token_env = "PIT_FAULTS_TOKEN"',
    '[cells]',
    'root = "missions"',
    'poll_interval_s = 0.2',
    'resurrect_after_s = 0',
    '[checkpoints]',
    `interval_s = ${options.checkpointEveryS ?? 0}`,
    '[bus]',
    ...(options.bus ? ['enabled = true', 'listen = "127.0.0.1:0"'] : ['enabled = false']),
    '[cluster]',
    `servers = [${options.servers.map((url) => `"${url}"`).join(', ')}]`,
    `host_id = "${options.hostId}"`,
    `lease_s = ${options.leaseS}`,
  ];
}

/** Samples /proc every 25 ms; remembers the worst moment (two live copies of one agent). */
export function startSampler(marker: string) {
  let doubles: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const [agent, pids] of await liveAgents(marker))
        if (pids.length > 1) doubles.push(`${agent}: pids ${pids.join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  return {
    doubles: () => doubles,
    reset: () => void (doubles = []),
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** After a test: each host's daemon output when it failed (its log's end), then every daemon killed. */
export async function stopHosts(
  hosts: ReadonlyArray<{ id: string; daemon?: DaemonProcess | undefined }>,
  failed: boolean,
): Promise<void> {
  if (failed)
    for (const host of hosts)
      console.error(`--- ${host.id} ---\n${host.daemon?.output().slice(-6000) ?? '(not running)'}`);
  for (const host of hosts) if (host.daemon) await killDaemon(host.daemon).catch(() => {});
}
