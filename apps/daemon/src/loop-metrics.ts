/**
 * The supervision loop's own metrics in `/metrics`: the counters and histograms modules bump
 * (`createLoopMetrics()`: probes, restarts, rollbacks, approvals, sweeps) and the gauges read
 * from the context when scraped (`registerLoopGauges()`: agents by health, cluster fencing and
 * agents held, provider status, pending approvals, the daemon's own memory). supervisor.ts
 * calls both once, when it builds the context; nothing here changes state.
 */
import { getHeapStatistics } from 'node:v8';
import { LATENCY_BUCKETS_S, type Labels, type MetricsRegistry } from './metrics.js';
import type { SupervisorContext, SupervisorMetrics } from './supervisor-context.js';

/** The loop's counters and histograms, registered in `registry`. */
export function createLoopMetrics(registry: MetricsRegistry): SupervisorMetrics {
  return {
    registry,
    probesTotal: registry.counter('pit_probes_total', 'Probe runs by kind and outcome.', [
      'kind',
      'ok',
    ]),
    probeLatency: registry.histogram(
      'pit_probe_latency_seconds',
      'Probe latency by kind.',
      LATENCY_BUCKETS_S,
      ['kind'],
    ),
    restartsTotal: registry.counter('pit_restarts_total', 'Agents (re)started by the Pit.', [
      'agent',
    ]),
    rollbacksTotal: registry.counter(
      'pit_rollbacks_total',
      'Config rollbacks to last known good.',
      ['agent'],
    ),
    approvalsTotal: registry.counter('pit_approvals_total', 'Approval requests by outcome.', [
      'outcome',
    ]),
    sweepDuration: registry.histogram(
      'pit_sweep_duration_seconds',
      'Duration of full sweeps.',
      [0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    ),
  };
}

const PROVIDER_STATUSES = ['healthy', 'degraded', 'dead', 'unknown'] as const;

/** The gauges read from the context at each scrape. */
export function registerLoopGauges(context: SupervisorContext): void {
  const registry = context.metrics.registry;
  registry.gauge('pit_agents', 'Supervised agents by health.', ['state'], () => {
    const counts: Record<string, number> = { unknown: 0, healthy: 0, degraded: 0, dead: 0 };
    for (const slot of context.fleet.slots.values())
      counts[slot.state.health] = (counts[slot.state.health] ?? 0) + 1;
    return Object.entries(counts).map(([state, value]) => [{ state }, value]);
  });
  const cluster = context.cluster;
  if (cluster) {
    registry.gauge(
      'pit_cluster_fenced',
      '1 while this host has lost its cluster lease (it revives nothing), else 0.',
      [],
      () => [[{}, cluster.fenced() ? 1 : 0]],
    );
    registry.gauge('pit_cluster_agents_held', 'Agents this host owns in the cluster.', [], () => [
      [{}, cluster.heldCount()],
    ]);
  }
  registry.gauge(
    'pit_provider_status',
    'Model providers by status (1 for the status each is in).',
    ['provider', 'status'],
    () =>
      context.providers
        .matrix()
        .flatMap((entry) =>
          PROVIDER_STATUSES.map((status): [Labels, number] => [
            { provider: entry.provider, status },
            entry.status === status ? 1 : 0,
          ]),
        ),
  );
  registry.gauge('pit_approvals_pending', 'Approval requests waiting for an answer.', [], () => [
    [{}, context.approvals.list('pending').length],
  ]);
  registry.gauge(
    'pit_daemon_memory_bytes',
    "The daemon's own memory: resident set, V8 heap used, V8 heap limit (--max-old-space-size).",
    ['kind'],
    () => [
      [{ kind: 'resident' }, process.memoryUsage.rss()],
      [{ kind: 'heap_used' }, process.memoryUsage().heapUsed],
      [{ kind: 'heap_limit' }, getHeapStatistics().heap_size_limit],
    ],
  );
}
