import { median } from './statistics.js';
import { requirePositive, requireSeries } from './validate.js';

/**
 * Makes the median absolute deviation estimate the standard deviation when the data are normal
 * (1 / Φ⁻¹(3/4)), so that MAD scores read like z-scores.
 *
 * @example
 * const robustDeviation = madConsistencyConstant * mad(values).medianAbsoluteDeviation;
 */
export const madConsistencyConstant = 1.4826;

export const defaultMadThreshold = 3.5;

/**
 * Options of {@link mad}.
 *
 * @example
 * const options: MadOptions = { threshold: 3 };
 */
export interface MadOptions {
  /** A point is an anomaly when `|score| > threshold`. Default: 3.5 (Iglewicz and Hoaglin). */
  readonly threshold?: number;
}

/**
 * Robust scores of a series and the points they flag.
 *
 * @example
 * const { median, scores, anomalies } = mad([1, 1, 2, 2, 4, 6, 9]);
 */
export interface MadResult {
  readonly median: number;
  /** The raw median absolute deviation: the median of `|value - median|`. */
  readonly medianAbsoluteDeviation: number;
  /** `1.4826 * medianAbsoluteDeviation`, the robust estimate of the standard deviation. */
  readonly scale: number;
  /**
   * `(value - median) / scale` per point. When more than half the points are equal the scale is
   * 0: those points score 0 and any other point scores ±Infinity.
   */
  readonly scores: number[];
  /** Whether each point's `|score|` is above the threshold. */
  readonly anomalies: boolean[];
}

/** The median and robust scale of a series; shared with `scorePoint`. */
export function robustSpread(values: readonly number[]): { median: number; medianAbsoluteDeviation: number; scale: number } {
  const center = median(values);
  const medianAbsoluteDeviation = median(values.map((value) => Math.abs(value - center)));
  return { median: center, medianAbsoluteDeviation, scale: madConsistencyConstant * medianAbsoluteDeviation };
}

/** Scores one value against a median and robust scale. */
export function robustScore(value: number, center: number, scale: number): number {
  return scale === 0 ? (value === center ? 0 : Math.sign(value - center) * Infinity) : (value - center) / scale;
}

/**
 * Flags points far from the median, in robust standard deviations: the median absolute
 * deviation scaled by 1.4826. Unlike {@link zScore}, up to half the points may be outliers
 * without hiding each other.
 *
 * Throws for an empty series, a non-finite value, or a threshold that is not > 0.
 *
 * @example
 * mad([1, 1, 2, 2, 4, 6, 9]).anomalies;
 * // median 2, MAD 1: 9 scores 7 / 1.4826 ≈ 4.72 > 3.5, so only the last point is flagged
 */
export function mad(values: readonly number[], options: MadOptions = {}): MadResult {
  requireSeries('mad', values);
  const threshold = options.threshold ?? defaultMadThreshold;
  requirePositive('mad', 'threshold', threshold);
  const spread = robustSpread(values);
  const scores = values.map((value) => robustScore(value, spread.median, spread.scale));
  return { ...spread, scores, anomalies: scores.map((score) => Math.abs(score) > threshold) };
}
