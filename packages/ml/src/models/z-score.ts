import { mean, populationStandardDeviation } from './statistics.js';
import { requirePositive, requireSeries } from './validate.js';

/**
 * Options of {@link zScore}.
 *
 * @example
 * const options: ZScoreOptions = { threshold: 2.5 };
 */
export interface ZScoreOptions {
  /** A point is an anomaly when `|score| > threshold`. Default: 3. */
  readonly threshold?: number;
}

/**
 * Standard scores of a series and the points they flag.
 *
 * @example
 * const { scores, anomalies } = zScore([2, 4, 4, 4, 5, 5, 7, 9], { threshold: 1.9 });
 */
export interface ZScoreResult {
  readonly mean: number;
  /** Population standard deviation (divides by n). */
  readonly standardDeviation: number;
  /** `(value - mean) / standardDeviation` per point; 0 for every point when all are equal. */
  readonly scores: number[];
  /** Whether each point's `|score|` is above the threshold. */
  readonly anomalies: boolean[];
}

export const defaultZScoreThreshold = 3;

/** Scores one value against a mean and deviation; shared with `scorePoint`. */
export function standardScore(value: number, center: number, standardDeviation: number): number {
  // All values equal: nothing deviates, rather than 0 / 0.
  return standardDeviation === 0 ? (value === center ? 0 : Math.sign(value - center) * Infinity) : (value - center) / standardDeviation;
}

/**
 * Flags points far from the mean, in standard deviations. Simple and fast, but the mean and
 * deviation are pulled by the very outliers sought, and with n points no score can exceed
 * `(n - 1) / sqrt(n)` (under 3 for n < 11); prefer {@link mad} for small or dirty windows.
 *
 * Throws for an empty series, a non-finite value, or a threshold that is not > 0.
 *
 * @example
 * zScore([2, 4, 4, 4, 5, 5, 7, 9], { threshold: 1.9 }).anomalies;
 * // [false, false, false, false, false, false, false, true]: mean 5, deviation 2, 9 scores 2
 */
export function zScore(values: readonly number[], options: ZScoreOptions = {}): ZScoreResult {
  requireSeries('zScore', values);
  const threshold = options.threshold ?? defaultZScoreThreshold;
  requirePositive('zScore', 'threshold', threshold);
  const center = mean(values);
  const standardDeviation = populationStandardDeviation(values, center);
  const scores = values.map((value) => standardScore(value, center, standardDeviation));
  return { mean: center, standardDeviation, scores, anomalies: scores.map((score) => Math.abs(score) > threshold) };
}
