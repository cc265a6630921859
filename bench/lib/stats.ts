/** Small numeric helpers shared by the root benchmarks. */

/** The p-th percentile (nearest rank) of `values`; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  ]!;
}

/** Rounds to `digits` decimals (NaN stays NaN). */
export function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** p50, p95, p99 and max of `values`, rounded. */
export function summary(
  values: readonly number[],
  digits = 1,
): { p50: number; p95: number; p99: number; max: number; n: number } {
  return {
    p50: round(percentile(values, 50), digits),
    p95: round(percentile(values, 95), digits),
    p99: round(percentile(values, 99), digits),
    max: round(values.length ? Math.max(...values) : Number.NaN, digits),
    n: values.length,
  };
}
