// Summaries of measured samples.

export interface Percentiles {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles; null for no samples. */
export function percentiles(samples: ArrayLike<number>): Percentiles | null {
  const s = Array.from(samples).sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return null;
  const at = (q: number) => s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  return { n, min: s[0]!, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[n - 1]!, mean: s.reduce((a, b) => a + b, 0) / n };
}
