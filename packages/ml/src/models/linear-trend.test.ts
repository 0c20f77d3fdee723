import { describe, expect, it } from 'vitest';
import { linearTrend } from './linear-trend.js';

describe('linearTrend', () => {
  it('recovers an exact line from evenly spaced values', () => {
    // 1, 3, 5, 7 is 1 + 2t for t = 0..3, so the next step is 9.
    expect(linearTrend([1, 3, 5, 7])).toEqual({ slope: 2, intercept: 1, rSquared: 1, forecastAt: 4, forecast: 9 });
  });

  it('matches a hand-computed least-squares fit of a noisy series', () => {
    // t = 0..4, v = 2, 4, 5, 4, 5. Means: t̄ = 2, v̄ = 4.
    // Σ(t-t̄)(v-v̄) = (-2)(-2) + (-1)(0) + 0(1) + 1(0) + 2(1) = 6; Σ(t-t̄)² = 10 → slope 0.6.
    // intercept = 4 - 0.6 * 2 = 2.8. Fitted 2.8, 3.4, 4.0, 4.6, 5.2: residual squares sum to 2.4,
    // Σ(v-v̄)² = 6, so R² = 1 - 2.4 / 6 = 0.6. Three steps past t = 4: 2.8 + 0.6 * 7 = 7.
    const fit = linearTrend([2, 4, 5, 4, 5], { horizon: 3 });
    expect(fit.slope).toBeCloseTo(0.6, 12);
    expect(fit.intercept).toBeCloseTo(2.8, 12);
    expect(fit.rSquared).toBeCloseTo(0.6, 12);
    expect(fit.forecastAt).toBe(7);
    expect(fit.forecast).toBeCloseTo(7, 12);
  });

  it('uses the times of timed values, in any order, and forecasts in their unit', () => {
    // The same data at t = 1..5 (the textbook form): intercept 2.2; at t = 5 + 2 it reads 2.2 + 0.6 * 7.
    const fit = linearTrend(
      [
        { t: 3, v: 5 },
        { t: 1, v: 2 },
        { t: 5, v: 5 },
        { t: 2, v: 4 },
        { t: 4, v: 4 },
      ],
      { horizon: 2 },
    );
    expect(fit.slope).toBeCloseTo(0.6, 12);
    expect(fit.intercept).toBeCloseTo(2.2, 12);
    expect(fit.forecastAt).toBe(7);
    expect(fit.forecast).toBeCloseTo(6.4, 12);
  });

  it('keeps its precision with epoch-millisecond times', () => {
    // v = 10 + 0.002 * (t - t0), sampled every second from a 2024 timestamp.
    const t0 = 1_717_171_717_000;
    const points = Array.from({ length: 60 }, (_, second) => ({ t: t0 + second * 1_000, v: 10 + 2 * second }));
    const fit = linearTrend(points, { horizon: 5_000 });
    expect(fit.slope).toBeCloseTo(0.002, 12);
    expect(fit.forecastAt).toBe(t0 + 64_000);
    expect(fit.forecast).toBeCloseTo(10 + 0.002 * 64_000, 8);
    expect(fit.rSquared).toBeCloseTo(1, 12);
  });

  it('gives a flat line with R² 1 for a constant series', () => {
    expect(linearTrend([4, 4, 4])).toEqual({ slope: 0, intercept: 4, rSquared: 1, forecastAt: 3, forecast: 4 });
  });

  it('rejects bad input with clear errors', () => {
    expect(() => linearTrend([])).toThrow('linearTrend: needs at least 2 values, got 0');
    expect(() => linearTrend([1])).toThrow('needs at least 2 values, got 1');
    expect(() => linearTrend([{ t: 1, v: 1 }])).toThrow('needs at least 2 points, got 1');
    expect(() => linearTrend([1, Number.NaN, 3])).toThrow('values[1] must be a finite number, got NaN');
    expect(() => linearTrend([{ t: 1, v: 1 }, { t: 2, v: Number.POSITIVE_INFINITY }])).toThrow('values[1] must be { t, v } with finite numbers');
    expect(() => linearTrend([{ t: 1, v: 1 }, { t: 1, v: 2 }])).toThrow('every point has the same time 1');
    expect(() => linearTrend([1, 2], { horizon: Number.NaN })).toThrow('horizon must be a finite number, got NaN');
    expect(() => linearTrend('1,2' as unknown as number[])).toThrow(TypeError);
  });
});
