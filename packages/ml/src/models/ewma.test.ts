import { describe, expect, it } from 'vitest';
import { ewma } from './ewma.js';

describe('ewma', () => {
  it('matches a hand-computed series', () => {
    // s0 = 1; s1 = .5*2 + .5*1 = 1.5; s2 = .5*3 + .5*1.5 = 2.25; s3 = .5*4 + .5*2.25 = 3.125
    expect(ewma([1, 2, 3, 4], { alpha: 0.5 })).toEqual({ series: [1, 1.5, 2.25, 3.125], last: 3.125 });
  });

  it('matches the closed form s_n = (1-α)^n x_0 + Σ_{k=1..n} α (1-α)^(n-k) x_k', () => {
    const values = [12.5, 9, 14.25, 11, 20, 18.5, 7, 13];
    const alpha = 0.3;
    const closedForm = (n: number): number => {
      let sum = (1 - alpha) ** n * (values[0] as number);
      for (let k = 1; k <= n; k++) sum += alpha * (1 - alpha) ** (n - k) * (values[k] as number);
      return sum;
    };
    const { series, last } = ewma(values, { alpha });
    series.forEach((smoothed, n) => expect(smoothed).toBeCloseTo(closedForm(n), 12));
    expect(last).toBeCloseTo(closedForm(values.length - 1), 12);
  });

  it('follows the input exactly with alpha 1, and returns a single value as is', () => {
    expect(ewma([3, 1, 4], { alpha: 1 }).series).toEqual([3, 1, 4]);
    expect(ewma([42], { alpha: 0.2 })).toEqual({ series: [42], last: 42 });
  });

  it('rejects bad input with clear errors', () => {
    expect(() => ewma([], { alpha: 0.5 })).toThrow('ewma: needs at least 1 value, got 0');
    expect(() => ewma([1, Number.NaN], { alpha: 0.5 })).toThrow('ewma: values[1] must be a finite number, got NaN');
    expect(() => ewma([1, 2], { alpha: 0 })).toThrow('ewma: alpha must be a number in (0, 1], got 0');
    expect(() => ewma([1, 2], { alpha: 1.5 })).toThrow('got 1.5');
    expect(() => ewma([1, 2], { alpha: Number.NaN })).toThrow('got NaN');
    expect(() => ewma([1, 2], {} as { alpha: number })).toThrow('got undefined');
  });
});
