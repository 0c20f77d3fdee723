import { describe, expect, it } from 'vitest';
import { holt } from './holt.js';

describe('holt', () => {
  it('matches a hand-computed example', () => {
    // α = β = 0.5 on 1, 3, 4, 8. Start: level 1, trend 3 - 1 = 2.
    // x=3: level .5*3 + .5*(1+2) = 3;       trend .5*(3-1) + .5*2 = 2
    // x=4: level .5*4 + .5*(3+2) = 4.5;     trend .5*(4.5-3) + .5*2 = 1.75
    // x=8: level .5*8 + .5*(4.5+1.75) = 7.125; trend .5*(7.125-4.5) + .5*1.75 = 2.1875
    // Forecasts: 7.125 + 2.1875 = 9.3125, 7.125 + 2 * 2.1875 = 11.5
    expect(holt([1, 3, 4, 8], { alpha: 0.5, beta: 0.5, horizon: 2 })).toEqual({
      level: 7.125,
      trend: 2.1875,
      forecast: 11.5,
      forecasts: [9.3125, 11.5],
    });
  });

  it('extrapolates a straight line exactly, whatever the smoothing', () => {
    // x_t = 5 - 1.5t: the start is already the line, so every update keeps level on it and
    // trend at -1.5; h steps past t = 9 it reads 5 - 1.5 * (9 + h).
    const line = Array.from({ length: 10 }, (_, t) => 5 - 1.5 * t);
    for (const [alpha, beta] of [[0.1, 0.9], [0.8, 0.2], [1, 1]] as const) {
      const fit = holt(line, { alpha, beta, horizon: 3 });
      expect(fit.level).toBeCloseTo(5 - 1.5 * 9, 10);
      expect(fit.trend).toBeCloseTo(-1.5, 10);
      fit.forecasts.forEach((forecast, index) => expect(forecast).toBeCloseTo(5 - 1.5 * (10 + index), 10));
    }
  });

  it('forecasts one step ahead by default', () => {
    const { forecast, forecasts } = holt([2, 4], { alpha: 0.5, beta: 0.5 });
    // Two values: level 0.5*4 + 0.5*(2+2) = 4, trend 0.5*2 + 0.5*2 = 2 → 6.
    expect(forecasts).toEqual([6]);
    expect(forecast).toBe(6);
  });

  it('rejects bad input with clear errors', () => {
    expect(() => holt([1], { alpha: 0.5, beta: 0.5 })).toThrow('holt: needs at least 2 values, got 1');
    expect(() => holt([1, Number.POSITIVE_INFINITY], { alpha: 0.5, beta: 0.5 })).toThrow('values[1] must be a finite number, got Infinity');
    expect(() => holt([1, 2], { alpha: -0.1, beta: 0.5 })).toThrow('holt: alpha must be a number in (0, 1], got -0.1');
    expect(() => holt([1, 2], { alpha: 0.5, beta: 2 })).toThrow('holt: beta must be a number in (0, 1], got 2');
    expect(() => holt([1, 2], { alpha: 0.5, beta: 0.5, horizon: 0 })).toThrow('horizon must be a whole number >= 1, got 0');
    expect(() => holt([1, 2], { alpha: 0.5, beta: 0.5, horizon: 1.5 })).toThrow('got 1.5');
  });
});
