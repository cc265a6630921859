/** Label values of one series. */
export type Labels = Record<string, string>;

interface Metric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

/** A monotonically increasing count. */
export interface Counter {
  inc(labels?: Labels, value?: number): void;
  get(labels?: Labels): number;
}

/** A value that goes up and down; optionally computed at scrape time. */
export interface Gauge {
  set(labels: Labels, value: number): void;
  inc(labels?: Labels, value?: number): void;
  dec(labels?: Labels, value?: number): void;
  get(labels?: Labels): number;
  /** Drops every series (before re-setting all of them). */
  reset(): void;
}

/** Observations counted into cumulative buckets, with their sum and count. */
export interface Histogram {
  observe(labels: Labels, value: number): void;
  /** Times `work` and records its duration in seconds. */
  time<T>(labels: Labels, work: () => Promise<T>): Promise<T>;
}

/** A small Prometheus registry (text exposition format 0.0.4). */
export interface MetricsRegistry {
  counter(name: string, help: string, labelNames?: readonly string[]): Counter;
  gauge(
    name: string,
    help: string,
    labelNames?: readonly string[],
    collect?: () => Array<[Labels, number]>,
  ): Gauge;
  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames?: readonly string[],
  ): Histogram;
  /** The registry in Prometheus text format. */
  render(): string;
  /** The `Content-Type` of {@link MetricsRegistry.render}'s output. */
  readonly contentType: string;
}

/** Default latency buckets in seconds (5 ms … 10 s). */
export const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Creates a metrics registry with counters, gauges and histograms, rendered in the
 * Prometheus text format.
 * @example
 * const metrics = createMetricsRegistry();
 * const restarts = metrics.counter('pit_restarts_total', 'Agents restarted.', ['agent']);
 * restarts.inc({ agent: 'forge' });
 * metrics.render(); // '# HELP pit_restarts_total Agents restarted.\n# TYPE pit_restarts_total counter\npit_restarts_total{agent="forge"} 1\n'
 */
export function createMetricsRegistry(): MetricsRegistry {
  const metrics = new Map<string, Metric>();

  const register = (metric: Metric, labelNames: readonly string[]) => {
    if (!NAME.test(metric.name))
      throw new Error(`metric name ${JSON.stringify(metric.name)} must match ${NAME.source}`);
    for (const label of labelNames)
      if (!LABEL.test(label) || label === 'le')
        throw new Error(`${metric.name}: label name ${JSON.stringify(label)} is not allowed`);
    if (metrics.has(metric.name)) throw new Error(`metric ${metric.name} is already registered`);
    metrics.set(metric.name, metric);
  };

  const keyOf = (labelNames: readonly string[], labels: Labels = {}, metric = '') => {
    for (const name of Object.keys(labels))
      if (!labelNames.includes(name)) throw new Error(`${metric}: unknown label ${name}`);
    return JSON.stringify(labelNames.map((name) => labels[name] ?? ''));
  };
  const labelsOf = (labelNames: readonly string[], key: string): Labels =>
    Object.fromEntries(
      (JSON.parse(key) as string[]).map((value, index) => [labelNames[index]!, value]),
    );

  const series = (name: string, labels: Labels, value: number) =>
    `${name}${formatLabels(labels)} ${formatNumber(value)}`;

  return {
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    counter(name, help, labelNames = []) {
      const values = new Map<string, number>();
      register(
        {
          name,
          help,
          type: 'counter',
          render: () =>
            [...values].map(([key, value]) => series(name, labelsOf(labelNames, key), value)),
        },
        labelNames,
      );
      return {
        inc(labels, value = 1) {
          if (value < 0) throw new Error(`${name}: a counter only goes up`);
          const key = keyOf(labelNames, labels, name);
          values.set(key, (values.get(key) ?? 0) + value);
        },
        get: (labels) => values.get(keyOf(labelNames, labels, name)) ?? 0,
      };
    },
    gauge(name, help, labelNames = [], collect) {
      const values = new Map<string, number>();
      register(
        {
          name,
          help,
          type: 'gauge',
          render: () => {
            if (collect) {
              values.clear();
              for (const [labels, value] of collect())
                values.set(keyOf(labelNames, labels, name), value);
            }
            return [...values].map(([key, value]) =>
              series(name, labelsOf(labelNames, key), value),
            );
          },
        },
        labelNames,
      );
      const add = (labels: Labels | undefined, delta: number) => {
        const key = keyOf(labelNames, labels, name);
        values.set(key, (values.get(key) ?? 0) + delta);
      };
      return {
        set: (labels, value) => values.set(keyOf(labelNames, labels, name), value),
        inc: (labels, value = 1) => add(labels, value),
        dec: (labels, value = 1) => add(labels, -value),
        get: (labels) => values.get(keyOf(labelNames, labels, name)) ?? 0,
        reset: () => values.clear(),
      };
    },
    histogram(name, help, buckets, labelNames = []) {
      const sorted = [...buckets].sort((a, b) => a - b);
      const values = new Map<string, { counts: number[]; sum: number; count: number }>();
      register(
        {
          name,
          help,
          type: 'histogram',
          render: () =>
            [...values].flatMap(([key, value]) => {
              const labels = labelsOf(labelNames, key);
              return [
                ...sorted.map((bound, index) =>
                  series(
                    `${name}_bucket`,
                    { ...labels, le: formatNumber(bound) },
                    value.counts[index]!,
                  ),
                ),
                series(`${name}_bucket`, { ...labels, le: '+Inf' }, value.count),
                series(`${name}_sum`, labels, value.sum),
                series(`${name}_count`, labels, value.count),
              ];
            }),
        },
        labelNames,
      );
      const observe = (labels: Labels, value: number) => {
        const key = keyOf(labelNames, labels, name);
        let entry = values.get(key);
        if (!entry) values.set(key, (entry = { counts: sorted.map(() => 0), sum: 0, count: 0 }));
        sorted.forEach((bound, index) => {
          if (value <= bound) entry.counts[index]!++;
        });
        entry.sum += value;
        entry.count++;
      };
      return {
        observe,
        async time(labels, work) {
          const started = process.hrtime.bigint();
          try {
            return await work();
          } finally {
            observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
          }
        },
      };
    },
    render() {
      const lines: string[] = [];
      for (const metric of metrics.values()) {
        lines.push(
          `# HELP ${metric.name} ${metric.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`,
        );
        lines.push(`# TYPE ${metric.name} ${metric.type}`);
        lines.push(...metric.render());
      }
      return `${lines.join('\n')}\n`;
    },
  };
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([name, value]) => `${name}="${value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`).join(',')}}`;
}

function formatNumber(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  if (Number.isNaN(value)) return 'NaN';
  return String(value);
}
