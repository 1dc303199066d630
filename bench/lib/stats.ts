/**
 * Small measuring helpers for the benchmarks: a monotonic clock, percentiles
 * over a sample array, and rounding for the JSON report.
 */
import { performance } from 'node:perf_hooks';

/** Monotonic time in ms. */
export const now = (): number => performance.now();

/** Bytes in a MiB. */
export const MIB = 1024 * 1024;

/** Rounds to `digits` decimals (the report does not need more). */
export function round(value: number, digits = 1): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Nearest-rank percentiles, in the samples' unit. */
export interface Percentiles {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentiles of the first `count` samples (sorted in place). */
export function percentiles(samples: Float64Array, count: number, scale = 1, digits = 1): Percentiles {
  if (count === 0) return { p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const sorted = samples.subarray(0, count).sort();
  const at = (p: number): number => round(sorted[Math.min(count - 1, Math.max(0, Math.ceil(p * count) - 1))]! * scale, digits);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round(sorted[count - 1]! * scale, digits) };
}

/** A ratio rounded for the report (NaN when the denominator is 0 or missing). */
export function ratio(numerator: number, denominator: number): number {
  return denominator > 0 && Number.isFinite(numerator) ? round(numerator / denominator, 3) : NaN;
}
