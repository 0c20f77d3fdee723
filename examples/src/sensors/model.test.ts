import { describe, expect, it } from 'vitest';
import defaultModel, { createModel, leastSquares, median, predict, robustTrend } from './model.js';
import type { EnrichedReading } from './types.js';

const at = (ts: number, value: number, sensor = 's1', location = 'lab'): EnrichedReading => ({ sensor, ts, value, location });

/** Five baseline readings around 10 at 0–4 s; worked through by hand in the spike test. */
const baseline = [at(0, 10), at(1_000, 10.2), at(2_000, 9.8), at(3_000, 10.1), at(4_000, 9.9)];
const smallBaselineModel = createModel({ minBaseline: 5 });

describe('sensors model', () => {
  it('gives n, mean and the least-squares forecast at end + 1 s', () => {
    // value = 1 + 2 × seconds: slope 2, intercept 1; at end + 1 s = 11 s the line is at 23.
    const window = { key: 's1', start: 0, end: 10_000, value: [at(0, 1), at(1_000, 3), at(2_000, 5), at(3_000, 7)] };
    expect(predict(window)).toEqual({ sensor: 's1', location: 'lab', windowStart: 0, windowEnd: 10_000, n: 4, mean: 4, forecast: 23, anomaly: false, score: 0, reason: null });
  });

  it("carries the location of the window's latest reading", () => {
    // A sensor moved mid-window is reported where it is now, whatever order the readings come in.
    const moved = [at(1_000, 10, 's1', 'hall'), at(9_000, 10, 's1', 'roof'), at(5_000, 10, 's1', 'hall')];
    expect(predict({ key: 's1', start: 0, end: 10_000, value: moved }).location).toBe('roof');
  });

  it('scores the latest readings with a robust z-score against the baseline trend', () => {
    // Robust trend of the baseline: slopes of readings 2 apart are -0.1/2 s, -0.1/2 s and +0.1/2 s,
    // median -0.05/s; values + 0.05/s × seconds are 10, 10.25, 9.9, 10.25, 10.1, median 10.1.
    // Residuals -0.1, 0.15, -0.2, 0.15, 0: median 0, MAD 0.15, spread 1.4826 × 0.15.
    // The reading 12 at 9.5 s sits 12 - (10.1 - 0.475) = 2.375 above the trend.
    const spread = 1.4826 * 0.15;
    const spike = smallBaselineModel({ key: 's1', start: 0, end: 10_000, value: [...baseline, at(9_500, 12)] });
    expect(spike).toMatchObject({ n: 6, anomaly: true, reason: 'spike', score: Math.round((2.375 / spread) * 100) / 100 });
    expect(spike.score).toBe(10.68);
    expect(spike.mean).toBeCloseTo(62 / 6, 12);

    // 9.7 at 9.5 s is 0.075 above the trend: z = 0.34.
    const normal = smallBaselineModel({ key: 's1', start: 0, end: 10_000, value: [...baseline, at(9_500, 9.7)] });
    expect(normal).toMatchObject({ anomaly: false, reason: null, score: 0.34 });
  });

  it('flags a flatline: the latest readings all exactly equal', () => {
    const stuck = [at(9_100, 10.123), at(9_400, 10.123), at(9_700, 10.123)];
    expect(smallBaselineModel({ key: 's1', start: 0, end: 10_000, value: [...baseline, ...stuck] })).toMatchObject({ anomaly: true, reason: 'flatline' });
    // Two equal readings are not enough.
    expect(smallBaselineModel({ key: 's1', start: 0, end: 10_000, value: [...baseline, ...stuck.slice(1)] })).toMatchObject({ anomaly: false });
  });

  it('does not judge spikes on a baseline too small or stuck', () => {
    // Only 5 baseline readings: the default model wants 20.
    expect(predict({ key: 's1', start: 0, end: 10_000, value: [...baseline, at(9_500, 50)] })).toMatchObject({ anomaly: false, score: 0 });
    // 30 readings frozen at 5 count as one: no estimate of the noise, so no z-score.
    const frozen = Array.from({ length: 30 }, (_, index) => at(index * 250, 5));
    expect(predict({ key: 's1', start: 0, end: 10_000, value: [...frozen, at(9_500, 5.4)] })).toMatchObject({ anomaly: false, score: 0 });
  });

  it('judges nothing when the window has no latest readings', () => {
    expect(smallBaselineModel({ key: 's1', start: 0, end: 10_000, value: baseline })).toMatchObject({ n: 5, anomaly: false, score: 0, reason: null });
  });

  it('does not depend on the order of the readings', () => {
    const window = { key: 's1', start: 0, end: 10_000, value: [...baseline, at(9_500, 12)] };
    expect(smallBaselineModel({ ...window, value: [...window.value].reverse() })).toEqual(smallBaselineModel(window));
  });

  it('is the default export, for worker pools', () => {
    expect(defaultModel).toBe(predict);
  });

  it('has helpers that agree with hand computation', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
    expect(leastSquares([at(5_000, 7)], 0)).toEqual({ slope: 0, intercept: 7 });
    expect(leastSquares([at(1_000, 2), at(3_000, 6)], 1_000)).toEqual({ slope: 2, intercept: 2 });
    // The robust trend ignores the outlier at 2 s: the line stays 1 + 1/s.
    const trend = robustTrend([at(0, 1), at(1_000, 2), at(2_000, 100), at(3_000, 4), at(4_000, 5), at(5_000, 6)], 0);
    expect(trend.at(10_000)).toBeCloseTo(11, 12);
  });
});
