import { requireSeries, requireSmoothingFactor, requireWholeNumber } from './validate.js';

/**
 * Options of {@link holt}.
 *
 * @example
 * const options: HoltOptions = { alpha: 0.5, beta: 0.3, horizon: 5 };
 */
export interface HoltOptions {
  /** Smoothing of the level, in (0, 1]. */
  readonly alpha: number;
  /** Smoothing of the trend, in (0, 1]. */
  readonly beta: number;
  /** Steps ahead to forecast, a whole number >= 1. Default: 1. */
  readonly horizon?: number;
}

/**
 * The state of Holt's smoothing after the last value, and its forecasts.
 *
 * @example
 * const { level, trend, forecast } = holt([1, 2, 3, 4], { alpha: 0.5, beta: 0.5 }); // 4, 1, 5
 */
export interface Holt {
  /** The smoothed value at the last step. */
  readonly level: number;
  /** The smoothed change per step at the last step. */
  readonly trend: number;
  /** `level + horizon * trend`. */
  readonly forecast: number;
  /** The forecasts 1, 2, ..., `horizon` steps ahead. */
  readonly forecasts: number[];
}

/**
 * Holt's double exponential smoothing (level and trend), for series with a trend but no season.
 * Starts from `level = x[0]` and `trend = x[1] - x[0]`, then for each later value:
 * `level[t] = alpha * x[t] + (1 - alpha) * (level[t-1] + trend[t-1])` and
 * `trend[t] = beta * (level[t] - level[t-1]) + (1 - beta) * trend[t-1]`.
 *
 * Throws for fewer than two values, a non-finite value, `alpha` or `beta` outside (0, 1], or a
 * `horizon` that is not a whole number >= 1.
 *
 * @example
 * holt([1, 3, 4, 8], { alpha: 0.5, beta: 0.5, horizon: 2 }).forecasts; // [9.3125, 11.5]
 */
export function holt(values: readonly number[], options: HoltOptions): Holt {
  const model = 'holt';
  requireSeries(model, values, 2);
  const { alpha, beta, horizon = 1 } = options ?? ({} as Partial<HoltOptions>);
  requireSmoothingFactor(model, 'alpha', alpha);
  requireSmoothingFactor(model, 'beta', beta);
  requireWholeNumber(model, 'horizon', horizon, 1);

  let level = values[0] as number;
  let trend = (values[1] as number) - level;
  for (let step = 1; step < values.length; step++) {
    const previousLevel = level;
    level = alpha * (values[step] as number) + (1 - alpha) * (previousLevel + trend);
    trend = beta * (level - previousLevel) + (1 - beta) * trend;
  }
  const forecasts = Array.from({ length: horizon }, (_, index) => level + (index + 1) * trend);
  return { level, trend, forecast: forecasts[horizon - 1] as number, forecasts };
}
