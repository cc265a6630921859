/**
 * A fleet of the cheapest real agents for benchmarks that measure starts and takeovers: `count`
 * agents outside cells, `a0` … `a<count-1>`, each `sleep <token>` (a token no other process
 * has, so that /proc finds them), stopped with the daemon; and NATS's message counters.
 */
import type { TestNatsCluster } from '@pit/test-kit';

/** The agents' program (their argv[0]). */
export const SLEEP_PROGRAM = 'sleep';

/** The name of the agent at `index`. */
export function sleepAgentName(index: number): string {
  return `a${index}`;
}

/**
 * The pit.toml of such a fleet: state in `state`, cells root `missions` (both relative to the
 * config), no HTTP, no bus, no checkpoints, agents stopped with the daemon; `extra` lines (more
 * sections) before the agents.
 */
export function sleepFleetToml(options: {
  work: string;
  count: number;
  token: string;
  extra?: string[];
}): string {
  const lines = [
    '[daemon]',
    'state_dir = "state"',
    'stop_agents_on_exit = true',
    '[daemon.http]',
    'enabled = false',
    '[bus]',
    'enabled = false',
    '[cells]',
    'root = "missions"',
    '[checkpoints]',
    'interval_s = 0',
    ...(options.extra ?? []),
  ];
  for (let index = 0; index < options.count; index += 1)
    lines.push(
      `[agents.${sleepAgentName(index)}]`,
      'cell = "none"',
      `cwd = ${JSON.stringify(options.work)}`,
      `argv = ["${SLEEP_PROGRAM}", "${options.token}"]`,
      'stop_grace_s = 1',
    );
  return `${lines.join('\n')}\n`;
}

/** NATS messages in and out so far, summed over the cluster's nodes (their monitor's `/varz`). */
export async function natsMessages(nats: TestNatsCluster): Promise<{ in: number; out: number }> {
  const total = { in: 0, out: 0 };
  for (const node of nats.nodes) {
    const varz = (await fetch(`http://127.0.0.1:${node.monitorPort}/varz`).then((response) =>
      response.json(),
    )) as { in_msgs?: number; out_msgs?: number };
    total.in += varz.in_msgs ?? 0;
    total.out += varz.out_msgs ?? 0;
  }
  return total;
}
