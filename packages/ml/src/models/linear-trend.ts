import { requireFiniteNumber, requireSeries, type TimedValue } from './validate.js';

/**
 * Options of {@link linearTrend}.
 *
 * @example
 * const options: LinearTrendOptions = { horizon: 60_000 }; // one minute past the last timed value
 */
export interface LinearTrendOptions {
  /**
   * How far past the last point to forecast: in steps for plain numbers, in the unit of `t`
   * (typically milliseconds) for timed values. Default: 1.
   */
  readonly horizon?: number;
}

/**
 * A least-squares line through a series, and where it leads.
 *
 * @example
 * const { slope, forecast } = linearTrend([1, 3, 5, 7]); // slope 2, forecast 9
 */
export interface LinearTrend {
  /** Change of the value per step (plain numbers) or per unit of `t` (timed values). */
  readonly slope: number;
  /** The line's value at step 0 (plain numbers) or at `t = 0` (timed values). */
  readonly intercept: number;
  /** Share of the variance the line explains, from 0 to 1; 1 when every value is equal. */
  readonly rSquared: number;
  /** Where the forecast is: the last step or time plus `horizon`. */
  readonly forecastAt: number;
  /** The line's value at `forecastAt`. */
  readonly forecast: number;
}

function isTimedValues(values: readonly unknown[]): values is readonly TimedValue[] {
  return typeof values[0] === 'object' && values[0] !== null;
}

/**
 * Fits a straight line by ordinary least squares and extrapolates it `horizon` ahead. Plain
 * numbers are taken as evenly spaced steps 0, 1, 2, ...; `{ t, v }` points may be unevenly spaced
 * and in any order.
 *
 * Throws a `TypeError` or `RangeError` for fewer than two points, a non-finite value or time, or
 * points that all share one time.
 *
 * @example
 * linearTrend([10, 12, 14]).forecast; // 16
 * linearTrend([{ t: 0, v: 20 }, { t: 60_000, v: 21 }], { horizon: 60_000 }).forecast; // 22
 */
export function linearTrend(values: readonly number[] | readonly TimedValue[], options: LinearTrendOptions = {}): LinearTrend {
  const model = 'linearTrend';
  const horizon = options.horizon ?? 1;
  requireFiniteNumber(model, 'horizon', horizon);
  if (!Array.isArray(values)) {
    throw new TypeError(`${model}: values must be an array of numbers or of { t, v } points, got ${String(values)}`);
  }
  let times: number[];
  let observed: number[];
  if (isTimedValues(values)) {
    times = [];
    observed = [];
    values.forEach((point: unknown, index) => {
      const { t, v } = (typeof point === 'object' && point !== null ? point : {}) as Partial<TimedValue>;
      if (typeof t !== 'number' || !Number.isFinite(t) || typeof v !== 'number' || !Number.isFinite(v)) {
        throw new TypeError(`${model}: values[${index}] must be { t, v } with finite numbers, got ${JSON.stringify(point)}`);
      }
      times.push(t);
      observed.push(v);
    });
  } else {
    requireSeries(model, values, 2);
    observed = [...values];
    times = observed.map((_, step) => step);
  }
  if (observed.length < 2) {
    throw new RangeError(`${model}: needs at least 2 points, got ${observed.length}`);
  }

  // Sums around the means rather than raw sums: epoch-millisecond times squared would lose
  // every significant digit of the slope.
  const count = observed.length;
  const timeMean = times.reduce((sum, t) => sum + t, 0) / count;
  const valueMean = observed.reduce((sum, v) => sum + v, 0) / count;
  let timeSpread = 0;
  let covariation = 0;
  let valueSpread = 0;
  for (let index = 0; index < count; index++) {
    const dt = (times[index] as number) - timeMean;
    const dv = (observed[index] as number) - valueMean;
    timeSpread += dt * dt;
    covariation += dt * dv;
    valueSpread += dv * dv;
  }
  if (timeSpread === 0) {
    throw new RangeError(`${model}: every point has the same time ${times[0]}; a slope needs at least two distinct times`);
  }
  const slope = covariation / timeSpread;
  const explained = slope * covariation;
  const lastTime = Math.max(...times);
  const forecastAt = lastTime + horizon;
  return {
    slope,
    intercept: valueMean - slope * timeMean,
    rSquared: valueSpread === 0 ? 1 : Math.min(1, explained / valueSpread),
    forecastAt,
    forecast: valueMean + slope * (forecastAt - timeMean),
  };
}
