import { unknownLocation, type EnrichedReading, type Prediction, type Reading } from './types.js';

/**
 * The sensors model: a pure function from one closed window of a sensor's readings to a
 * {@link Prediction}. It imports nothing at run time but the example's types, so it can run inline (`.onClose(predict)`)
 * or in a worker pool (`workerPool(new URL('./model.js', import.meta.url))` calls the default export).
 *
 * - `forecast`: the least-squares line through the window's readings, evaluated at `end + 1 s`.
 * - `anomaly`: the window's latest readings (the last `latestMs`, one hop of the hopping window, so
 *   each reading is judged exactly once) are compared with the rest of the window, the baseline:
 *   - spike: a robust trend (median of slopes between readings half a baseline apart) is fitted
 *     to the baseline, and each latest reading gets a robust z-score: its residual from the
 *     trend, less the baseline's median residual, over 1.4826 × the baseline's MAD. Median and MAD
 *     ignore the faults inside the baseline, so a fault does not hide the next one;
 *   - flatline: at least `minFlatline` latest readings all exactly equal. A live analog sensor
 *     never repeats itself to the last digit; a stuck one does.
 */

/** A closed window of one sensor, as `onClose` hands it: calibrated readings in timestamp order. */
export interface SensorWindow {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly value: readonly EnrichedReading[];
}

/** Tuning of {@link createModel}. */
export interface ModelOptions {
  /** The latest readings judged by a window: those of its last `latestMs` (its hop). Default 1000. */
  readonly latestMs?: number;
  /** Robust z-score from which a reading is a spike. Default 7. */
  readonly threshold?: number;
  /** Fewest distinct baseline readings to judge spikes with. Default 20. */
  readonly minBaseline?: number;
  /** Fewest identical latest readings that make a flatline. Default 3. */
  readonly minFlatline?: number;
  /** Smallest spread (value units) a z-score divides by, for baselines with almost no noise. Default 0.01. */
  readonly minSpread?: number;
}

/** MAD × this estimates the standard deviation of normal noise. */
const madToSd = 1.4826;

/**
 * A model with its own tuning.
 * @example
 * const strict = createModel({ threshold: 8 });
 * app.from<Reading>('readings').keyBy(r => r.sensor).hopping('10s', '1s').collect().onClose(strict)
 */
export function createModel(options: ModelOptions = {}): (window: SensorWindow) => Prediction {
  const { latestMs = 1_000, threshold = 7, minBaseline = 20, minFlatline = 3, minSpread = 0.01 } = options;

  return function predict({ key, start, end, value }: SensorWindow): Prediction {
    const readings = isSorted(value) ? value : [...value].sort((a, b) => a.ts - b.ts);
    const n = readings.length;
    let sum = 0;
    for (const reading of readings) sum += reading.value;
    const mean = n === 0 ? Number.NaN : sum / n;
    const line = leastSquares(readings, start);
    const forecast = line.intercept + (line.slope * (end + 1_000 - start)) / 1_000;

    const latestFrom = end - latestMs;
    const split = readings.findIndex((reading) => reading.ts >= latestFrom);
    const latest = split < 0 ? [] : readings.slice(split);
    // A repeated value says nothing about the noise: a stuck stretch in the baseline counts once,
    // or its zero spread would make the first good readings after it look like spikes.
    const baseline = (split < 0 ? readings : readings.slice(0, split)).filter((reading, index, all) => index === 0 || reading.value !== all[index - 1]!.value);

    let score = 0;
    if (baseline.length >= minBaseline && latest.length > 0) {
      const trend = robustTrend(baseline, start);
      const residuals = baseline.map((reading) => reading.value - trend.at(reading.ts));
      const center = median(residuals);
      const spread = Math.max(madToSd * median(residuals.map((residual) => Math.abs(residual - center))), minSpread);
      for (const reading of latest) score = Math.max(score, Math.abs(reading.value - trend.at(reading.ts) - center) / spread);
    }
    const flatline = latest.length >= minFlatline && latest.every((reading) => reading.value === latest[0]!.value);
    const reason = score >= threshold ? 'spike' : flatline ? 'flatline' : null;
    const location = readings[n - 1]?.location ?? unknownLocation;
    return { sensor: key, location, windowStart: start, windowEnd: end, n, mean, forecast, anomaly: reason !== null, score: round(score), reason };
  };
}

/** The model with its default tuning; also the module's default export (for worker pools). */
export const predict = createModel();
export default predict;

/**
 * Least squares of value on time (seconds since `origin`): `value ≈ intercept + slope × seconds`.
 * One reading, or readings all at one instant, give a flat line through their mean.
 */
export function leastSquares(readings: readonly Reading[], origin: number): { slope: number; intercept: number } {
  const n = readings.length;
  if (n === 0) return { slope: 0, intercept: Number.NaN };
  let meanT = 0;
  let meanV = 0;
  for (const reading of readings) {
    meanT += (reading.ts - origin) / 1_000;
    meanV += reading.value;
  }
  meanT /= n;
  meanV /= n;
  let covariance = 0;
  let variance = 0;
  for (const reading of readings) {
    const dt = (reading.ts - origin) / 1_000 - meanT;
    covariance += dt * (reading.value - meanV);
    variance += dt * dt;
  }
  const slope = variance === 0 ? 0 : covariance / variance;
  return { slope, intercept: meanV - slope * meanT };
}

/**
 * A trend that outliers do not pull: the slope is the median of the slopes between readings half
 * the series apart (O(n), unlike all pairs), the level the median of what the slope leaves.
 */
export function robustTrend(readings: readonly Reading[], origin: number): { at(ts: number): number } {
  const half = Math.floor(readings.length / 2);
  const slopes: number[] = [];
  for (let index = 0; index + half < readings.length; index++) {
    const a = readings[index]!;
    const b = readings[index + half]!;
    if (b.ts !== a.ts) slopes.push((b.value - a.value) / (b.ts - a.ts));
  }
  const slope = slopes.length === 0 ? 0 : median(slopes);
  const level = median(readings.map((reading) => reading.value - slope * (reading.ts - origin)));
  return { at: (ts) => level + slope * (ts - origin) };
}

/** The median (mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function isSorted(readings: readonly Reading[]): boolean {
  for (let index = 1; index < readings.length; index++) if (readings[index]!.ts < readings[index - 1]!.ts) return false;
  return true;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
