import { defaultMadThreshold, robustScore, robustSpread } from './mad.js';
import { mean, populationStandardDeviation } from './statistics.js';
import { requireFiniteNumber, requirePositive, requireSeries } from './validate.js';
import { defaultZScoreThreshold, standardScore } from './z-score.js';

/**
 * Options of {@link scorePoint}.
 *
 * @example
 * const options: ScorePointOptions = { method: 'mad', threshold: 3 };
 */
export interface ScorePointOptions {
  /** `'zScore'` (mean and standard deviation) or `'mad'` (median and scaled MAD). Default: `'mad'`. */
  readonly method?: 'zScore' | 'mad';
  /** Default: 3 for `'zScore'`, 3.5 for `'mad'`. */
  readonly threshold?: number;
}

/**
 * How unusual one new value is against a history.
 *
 * @example
 * const { score, anomaly } = scorePoint([20, 21, 20, 22], 35);
 */
export interface PointScore {
  readonly score: number;
  readonly anomaly: boolean;
}

/**
 * Scores a new value against a history it is not part of, by the same rules as {@link zScore}
 * or {@link mad}: the statistics come from `history` alone, so the new value cannot mask itself.
 * A history with no spread at all scores an equal value 0 and any other value ±Infinity.
 *
 * Throws for an empty history, a non-finite value, an unknown method or a threshold not > 0.
 *
 * @example
 * scorePoint([2, 4, 4, 4, 5, 5, 7, 9], 11, { method: 'zScore', threshold: 2.5 });
 * // { score: 3, anomaly: true }: mean 5, deviation 2
 */
export function scorePoint(history: readonly number[], value: number, options: ScorePointOptions = {}): PointScore {
  const model = 'scorePoint';
  requireSeries(model, history);
  requireFiniteNumber(model, 'value', value);
  const method = options.method ?? 'mad';
  if (method !== 'zScore' && method !== 'mad') {
    throw new RangeError(`${model}: method must be 'zScore' or 'mad', got ${JSON.stringify(method)}`);
  }
  const threshold = options.threshold ?? (method === 'mad' ? defaultMadThreshold : defaultZScoreThreshold);
  requirePositive(model, 'threshold', threshold);
  let score: number;
  if (method === 'mad') {
    const spread = robustSpread(history);
    score = robustScore(value, spread.median, spread.scale);
  } else {
    const center = mean(history);
    score = standardScore(value, center, populationStandardDeviation(history, center));
  }
  return { score, anomaly: Math.abs(score) > threshold };
}
