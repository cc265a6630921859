/**
 * The pit.toml of the detection-at-scale fleet (bench/detection-at-scale.bench.ts and
 * bench/diagnose/daemon-heap.ts): watch only (policy `never`), the heartbeat agents in the cells
 * under `missions/`, and one agent outside cells per gateway port, probed over HTTP.
 */

/** How the gateways' `/health` is probed. */
export interface GatewayProbe {
  interval_s: number;
  timeout_s: number;
  failure_threshold: number;
}

/** The config text, for a state dir `state`, cells under `missions` and gateways' cwd `gateways`. */
export function watchOnlyConfig(options: {
  staleS: number;
  ports: number[];
  probe: GatewayProbe;
}): string {
  const { staleS, ports, probe } = options;
  return [
    '# pit.toml of the detection-at-scale benchmark: watch only.',
    '[daemon]',
    'state_dir = "state"',
    '[daemon.http]',
    'listen = "127.0.0.1:0"',
    '[bus]',
    'enabled = false',
    '[cells]',
    'root = "missions"',
    `heartbeat_stale_s = ${staleS}`,
    'resurrect_after_s = 0',
    '[checkpoints]',
    'interval_s = 0',
    '[policy.defaults]',
    'mode = "never"            # the agents are not ours to restart: record only',
    ...ports.flatMap((port, index) => [
      `[agents.gw-${String(index).padStart(4, '0')}]`,
      'cell = "none"',
      'cwd = "gateways"',
      `probes = { health_url = "http://127.0.0.1:${port}/health", interval_s = ${probe.interval_s}, timeout_s = ${probe.timeout_s}, failure_threshold = ${probe.failure_threshold} }`,
    ]),
    '',
  ].join('\n');
}
