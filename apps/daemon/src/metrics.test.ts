import { describe, expect, it } from 'vitest';
import { createMetricsRegistry } from './metrics.js';

describe('createMetricsRegistry', () => {
  it('renders counters, gauges and histograms in the Prometheus text format', () => {
    const metrics = createMetricsRegistry();
    const restarts = metrics.counter('pit_restarts_total', 'Agents restarted.', ['agent']);
    restarts.inc({ agent: 'forge' });
    restarts.inc({ agent: 'forge' }, 2);
    restarts.inc({ agent: 'say "hi"\\\n' });
    const agents = metrics.gauge('pit_agents', 'Agents by state.', ['state']);
    agents.set({ state: 'healthy' }, 3);
    agents.dec({ state: 'healthy' });
    const latency = metrics.histogram(
      'pit_probe_latency_seconds',
      'Probe latency.',
      [0.1, 1],
      ['probe'],
    );
    latency.observe({ probe: 'http' }, 0.05);
    latency.observe({ probe: 'http' }, 0.5);
    latency.observe({ probe: 'http' }, 5);
    expect(metrics.render()).toBe(
      [
        '# HELP pit_restarts_total Agents restarted.',
        '# TYPE pit_restarts_total counter',
        'pit_restarts_total{agent="forge"} 3',
        'pit_restarts_total{agent="say \\"hi\\"\\\\\\n"} 1',
        '# HELP pit_agents Agents by state.',
        '# TYPE pit_agents gauge',
        'pit_agents{state="healthy"} 2',
        '# HELP pit_probe_latency_seconds Probe latency.',
        '# TYPE pit_probe_latency_seconds histogram',
        'pit_probe_latency_seconds_bucket{probe="http",le="0.1"} 1',
        'pit_probe_latency_seconds_bucket{probe="http",le="1"} 2',
        'pit_probe_latency_seconds_bucket{probe="http",le="+Inf"} 3',
        'pit_probe_latency_seconds_sum{probe="http"} 5.55',
        'pit_probe_latency_seconds_count{probe="http"} 3',
        '',
      ].join('\n'),
    );
    expect(metrics.contentType).toContain('version=0.0.4');
  });

  it('computes collected gauges at scrape time', () => {
    const metrics = createMetricsRegistry();
    let healthy = 1;
    metrics.gauge('pit_agents', 'Agents by state.', ['state'], () => [
      [{ state: 'healthy' }, healthy],
    ]);
    expect(metrics.render()).toContain('pit_agents{state="healthy"} 1');
    healthy = 5;
    expect(metrics.render()).toContain('pit_agents{state="healthy"} 5');
  });

  it('times async work into a histogram', async () => {
    const metrics = createMetricsRegistry();
    const sweep = metrics.histogram('pit_sweep_seconds', 'Sweep duration.', [10]);
    expect(await sweep.time({}, async () => 42)).toBe(42);
    expect(metrics.render()).toContain('pit_sweep_seconds_count 1');
  });

  it('refuses bad names, unknown labels, duplicates and decreasing counters', () => {
    const metrics = createMetricsRegistry();
    expect(() => metrics.counter('bad-name', 'x')).toThrow(/must match/);
    expect(() => metrics.histogram('h', 'x', [1], ['le'])).toThrow(/not allowed/);
    const counter = metrics.counter('c_total', 'x', ['a']);
    expect(() => metrics.counter('c_total', 'x')).toThrow(/already registered/);
    expect(() => counter.inc({ b: '1' })).toThrow(/unknown label b/);
    expect(() => counter.inc({ a: '1' }, -1)).toThrow(/only goes up/);
  });
});
