/**
 * The daemon's metrics registry: counters, gauges and histograms kept in memory and rendered in
 * the Prometheus text exposition format (0.0.4). It owns the series values and their rendering;
 * it never serves them (http.ts does) and never decides what is measured (its callers do).
 */
/** Label values of one series. */
export type Labels = Record<string, string>;

interface Metric {
  name: string;
  help: string;
  labelNames: readonly string[];
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

/** The metrics of one registry by name, in the order they were registered (the render order). */
type MetricTable = Map<string, Metric>;

/** What every series of one metric shares. */
interface SeriesShape {
  name: string;
  labelNames: readonly string[];
}

/** One histogram series: a count per bucket (in bucket order), the sum and the count. */
interface HistogramEntry {
  counts: number[];
  sum: number;
  count: number;
}

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
  const metrics: MetricTable = new Map();
  return {
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    counter: (name, help, labelNames = []) => createCounter(metrics, { name, help, labelNames }),
    gauge: (name, help, labelNames = [], collect) =>
      createGauge(metrics, { name, help, labelNames, collect }),
    histogram: (name, help, buckets, labelNames = []) =>
      createHistogram(metrics, { name, help, buckets, labelNames }),
    render: () => renderMetrics(metrics),
  };
}

/** Adds `metric` to the table, after checking its name and label names (`le` is reserved). */
function registerMetric(metrics: MetricTable, metric: Metric): void {
  if (!NAME.test(metric.name))
    throw new Error(`metric name ${JSON.stringify(metric.name)} must match ${NAME.source}`);
  for (const label of metric.labelNames)
    if (!LABEL.test(label) || label === 'le')
      throw new Error(`${metric.name}: label name ${JSON.stringify(label)} is not allowed`);
  if (metrics.has(metric.name)) throw new Error(`metric ${metric.name} is already registered`);
  metrics.set(metric.name, metric);
}

/** The key of one series: its label values in label-name order (a label not given is ''). */
function keyOf(shape: SeriesShape, labels: Labels = {}): string {
  for (const name of Object.keys(labels))
    if (!shape.labelNames.includes(name)) throw new Error(`${shape.name}: unknown label ${name}`);
  return JSON.stringify(shape.labelNames.map((name) => labels[name] ?? ''));
}

/** The labels a series key ({@link keyOf}) stands for. */
function labelsOf(labelNames: readonly string[], key: string): Labels {
  return Object.fromEntries(
    (JSON.parse(key) as string[]).map((value, index) => [labelNames[index]!, value]),
  );
}

/** One sample line: `name{labels} value`. */
function formatSeries(name: string, labels: Labels, value: number): string {
  return `${name}${formatLabels(labels)} ${formatNumber(value)}`;
}

/** The sample lines of a counter or gauge. */
function renderValues(shape: SeriesShape, values: Map<string, number>): string[] {
  return [...values].map(([key, value]) =>
    formatSeries(shape.name, labelsOf(shape.labelNames, key), value),
  );
}

function createCounter(metrics: MetricTable, options: SeriesShape & { help: string }): Counter {
  const { name, help, labelNames } = options;
  const values = new Map<string, number>();
  const render = () => renderValues(options, values);
  registerMetric(metrics, { name, help, labelNames, type: 'counter', render });
  return {
    inc(labels, value = 1) {
      if (value < 0) throw new Error(`${name}: a counter only goes up`);
      const key = keyOf(options, labels);
      values.set(key, (values.get(key) ?? 0) + value);
    },
    get: (labels) => values.get(keyOf(options, labels)) ?? 0,
  };
}

/** A gauge; with `collect`, its series are replaced by what `collect` returns at each render. */
function createGauge(
  metrics: MetricTable,
  options: SeriesShape & { help: string; collect: (() => Array<[Labels, number]>) | undefined },
): Gauge {
  const { name, help, labelNames, collect } = options;
  const values = new Map<string, number>();
  const render = () => {
    if (collect) {
      values.clear();
      for (const [labels, value] of collect()) values.set(keyOf(options, labels), value);
    }
    return renderValues(options, values);
  };
  registerMetric(metrics, { name, help, labelNames, type: 'gauge', render });
  const add = (labels: Labels | undefined, delta: number) => {
    const key = keyOf(options, labels);
    values.set(key, (values.get(key) ?? 0) + delta);
  };
  return {
    set: (labels, value) => values.set(keyOf(options, labels), value),
    inc: (labels, value = 1) => add(labels, value),
    dec: (labels, value = 1) => add(labels, -value),
    get: (labels) => values.get(keyOf(options, labels)) ?? 0,
    reset: () => values.clear(),
  };
}

function createHistogram(
  metrics: MetricTable,
  options: SeriesShape & { help: string; buckets: readonly number[] },
): Histogram {
  const { name, help, labelNames } = options;
  const bounds = [...options.buckets].sort((a, b) => a - b);
  const values = new Map<string, HistogramEntry>();
  const render = () =>
    [...values].flatMap(([key, entry]) =>
      renderHistogramSeries({ name, bounds, labels: labelsOf(labelNames, key), entry }),
    );
  registerMetric(metrics, { name, help, labelNames, type: 'histogram', render });
  const observe = (labels: Labels, value: number) => {
    const key = keyOf(options, labels);
    let entry = values.get(key);
    if (!entry) values.set(key, (entry = { counts: bounds.map(() => 0), sum: 0, count: 0 }));
    bounds.forEach((bound, index) => {
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
}

/** The lines of one histogram series: a cumulative bucket per bound, `+Inf`, the sum and the count. */
function renderHistogramSeries(series: {
  name: string;
  bounds: readonly number[];
  labels: Labels;
  entry: HistogramEntry;
}): string[] {
  const { name, bounds, labels, entry } = series;
  return [
    ...bounds.map((bound, index) =>
      formatSeries(`${name}_bucket`, { ...labels, le: formatNumber(bound) }, entry.counts[index]!),
    ),
    formatSeries(`${name}_bucket`, { ...labels, le: '+Inf' }, entry.count),
    formatSeries(`${name}_sum`, labels, entry.sum),
    formatSeries(`${name}_count`, labels, entry.count),
  ];
}

/** The whole registry in the text format: per metric, its HELP and TYPE lines, then its series. */
function renderMetrics(metrics: MetricTable): string {
  const lines: string[] = [];
  for (const metric of metrics.values()) {
    lines.push(`# HELP ${metric.name} ${metric.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    lines.push(`# TYPE ${metric.name} ${metric.type}`);
    lines.push(...metric.render());
  }
  return `${lines.join('\n')}\n`;
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
