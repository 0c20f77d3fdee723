import { describe, expect, it } from 'vitest';
import { mad, madConsistencyConstant } from './mad.js';
import { scorePoint } from './score-point.js';
import { zScore } from './z-score.js';

describe('zScore', () => {
  it('matches the textbook example with mean 5 and population deviation 2', () => {
    // 2, 4, 4, 4, 5, 5, 7, 9: mean 40/8 = 5; squared deviations 9+1+1+1+0+0+4+16 = 32; 32/8 = 4.
    const result = zScore([2, 4, 4, 4, 5, 5, 7, 9], { threshold: 1.9 });
    expect(result.mean).toBe(5);
    expect(result.standardDeviation).toBe(2);
    expect(result.scores).toEqual([-1.5, -0.5, -0.5, -0.5, 0, 0, 1, 2]);
    expect(result.anomalies).toEqual([false, false, false, false, false, false, false, true]);
  });

  it('flags strictly above the threshold, 3 by default', () => {
    // Nineteen 0s and one 20: mean 1, variance (19 * 1 + 361) / 20 = 19, so 20 scores 19/√19 = √19 ≈ 4.36.
    const values = [...Array.from({ length: 19 }, () => 0), 20];
    const result = zScore(values);
    expect(result.scores[19]).toBeCloseTo(Math.sqrt(19), 12);
    expect(result.anomalies.filter(Boolean)).toHaveLength(1);
    expect(zScore(values, { threshold: Math.sqrt(19) + 1e-9 }).anomalies.some(Boolean)).toBe(false);
  });

  it('scores every point 0 when all are equal', () => {
    expect(zScore([3, 3, 3])).toMatchObject({ standardDeviation: 0, scores: [0, 0, 0], anomalies: [false, false, false] });
  });

  it('rejects bad input with clear errors', () => {
    expect(() => zScore([])).toThrow('zScore: needs at least 1 value, got 0');
    expect(() => zScore([1, Number.NaN])).toThrow('zScore: values[1] must be a finite number, got NaN');
    expect(() => zScore([1, 2], { threshold: 0 })).toThrow('zScore: threshold must be a finite number > 0, got 0');
  });
});

describe('mad', () => {
  it('matches the textbook example 1, 1, 2, 2, 4, 6, 9 (median 2, MAD 1)', () => {
    // |x - 2| = 1, 1, 0, 0, 2, 4, 7 → sorted 0, 0, 1, 1, 2, 4, 7 → MAD 1, scale 1.4826.
    const result = mad([1, 1, 2, 2, 4, 6, 9]);
    expect(result.median).toBe(2);
    expect(result.medianAbsoluteDeviation).toBe(1);
    expect(result.scale).toBe(1.4826);
    const expectedScores = [-1, -1, 0, 0, 2, 4, 7].map((deviation) => deviation / 1.4826);
    result.scores.forEach((score, index) => expect(score).toBeCloseTo(expectedScores[index] as number, 12));
    // 7 / 1.4826 ≈ 4.72 > 3.5; 4 / 1.4826 ≈ 2.70 is not.
    expect(result.anomalies).toEqual([false, false, false, false, false, false, true]);
  });

  it('uses the average of the two middle values for an even count', () => {
    // median of 1, 2, 3, 10 = 2.5; |x - 2.5| = 1.5, 0.5, 0.5, 7.5 → median (0.5 + 1.5) / 2 = 1.
    const result = mad([10, 1, 3, 2], { threshold: 3 });
    expect(result.median).toBe(2.5);
    expect(result.medianAbsoluteDeviation).toBe(1);
    expect(result.scores[0]).toBeCloseTo(7.5 / 1.4826, 12);
    expect(result.anomalies).toEqual([true, false, false, false]);
  });

  it('is not masked by the outlier the way a z-score is', () => {
    // Median 10, MAD 1, so 1000 scores 990 / 1.4826; but with n = 9 no z-score can exceed (9-1)/√9 ≈ 2.67.
    const values = [10, 12, 9, 11, 10, 8, 12, 9, 1000];
    expect(zScore(values).anomalies[8]).toBe(false);
    expect(mad(values).anomalies[8]).toBe(true);
  });

  it('scores ±Infinity off the median when more than half the points are equal', () => {
    const result = mad([5, 5, 5, 5, 6, 4]);
    expect(result.scale).toBe(0);
    expect(result.scores).toEqual([0, 0, 0, 0, Infinity, -Infinity]);
    expect(result.anomalies).toEqual([false, false, false, false, true, true]);
  });

  it('exports the consistency constant 1.4826', () => {
    expect(madConsistencyConstant).toBe(1.4826);
  });

  it('rejects bad input with clear errors', () => {
    expect(() => mad([])).toThrow('mad: needs at least 1 value, got 0');
    expect(() => mad([Number.NaN])).toThrow('mad: values[0] must be a finite number, got NaN');
    expect(() => mad([1], { threshold: -1 })).toThrow('mad: threshold must be a finite number > 0, got -1');
  });
});

describe('scorePoint', () => {
  it('scores a new value against the history alone, by z-score', () => {
    // History mean 5, deviation 2 (see above): 11 scores (11 - 5) / 2 = 3, strictly above 2.5 only.
    const history = [2, 4, 4, 4, 5, 5, 7, 9];
    expect(scorePoint(history, 11, { method: 'zScore', threshold: 2.5 })).toEqual({ score: 3, anomaly: true });
    expect(scorePoint(history, 11, { method: 'zScore' })).toEqual({ score: 3, anomaly: false });
  });

  it('scores by MAD by default', () => {
    // History median 2, scale 1.4826: 10 scores 8 / 1.4826 ≈ 5.40 > 3.5; 3 scores 0.67.
    const history = [1, 1, 2, 2, 4, 6, 9];
    const far = scorePoint(history, 10);
    expect(far.score).toBeCloseTo(8 / 1.4826, 12);
    expect(far.anomaly).toBe(true);
    expect(scorePoint(history, 3).anomaly).toBe(false);
  });

  it('rejects bad input with clear errors', () => {
    expect(() => scorePoint([], 1)).toThrow('scorePoint: needs at least 1 value, got 0');
    expect(() => scorePoint([1, 2], Number.NaN)).toThrow('scorePoint: value must be a finite number, got NaN');
    expect(() => scorePoint([1, 2], 1, { method: 'iqr' as 'mad' })).toThrow(`method must be 'zScore' or 'mad', got "iqr"`);
    expect(() => scorePoint([1, 2], 1, { threshold: 0 })).toThrow('threshold must be a finite number > 0, got 0');
  });
});
