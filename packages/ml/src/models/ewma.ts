import { requireSeries, requireSmoothingFactor } from './validate.js';

/**
 * Options of {@link ewma}.
 *
 * @example
 * const options: EwmaOptions = { alpha: 0.3 };
 */
export interface EwmaOptions {
  /** Weight of the newest value, in (0, 1]: higher follows changes faster, lower smooths more. */
  readonly alpha: number;
}

/**
 * An exponentially weighted moving average of a series.
 *
 * @example
 * const { last } = ewma([1, 2, 3], { alpha: 0.5 }); // 2.25
 */
export interface Ewma {
  /** The smoothed value after each input value; as long as the input. */
  readonly series: number[];
  /** The smoothed value after the last input value. */
  readonly last: number;
}

/**
 * Smooths a series: `s[0] = x[0]`, then `s[t] = alpha * x[t] + (1 - alpha) * s[t - 1]`.
 *
 * Throws for an empty series, a non-finite value, or `alpha` outside (0, 1].
 *
 * @example
 * ewma([1, 2, 3, 4], { alpha: 0.5 }).series; // [1, 1.5, 2.25, 3.125]
 */
export function ewma(values: readonly number[], options: EwmaOptions): Ewma {
  requireSeries('ewma', values);
  const alpha = options?.alpha;
  requireSmoothingFactor('ewma', 'alpha', alpha);
  const series: number[] = [];
  let smoothed = values[0] as number;
  for (const value of values) {
    smoothed = series.length === 0 ? value : alpha * value + (1 - alpha) * smoothed;
    series.push(smoothed);
  }
  return { series, last: smoothed };
}
