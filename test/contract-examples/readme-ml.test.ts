/**
 * README "Heavy handlers off the event loop (@eddy/ml)": workerPool options and defaults, results in
 * window order, a failing model dead-lettered with HANDLER_FAILED, and `models`.
 */
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { models, workerPool } from '@eddy/ml';

interface Reading { sensor: string; value: number; ts: number }

describe('README: workerPool', () => {
  it('accepts the options of the example; size defaults to CPUs - 1, maxQueue to 1000', () => {
    const model = workerPool(new URL('./model.js', import.meta.url), {
      size: 2,          // worker threads (default: CPUs - 1)
      exportName: 'default',
      timeout: '30s',   // per window; a hung worker is replaced
      maxQueue: 1000,   // windows waiting before the source pauses (backpressure)
      retries: 2,       // then the window is dead-lettered with the reason
      batchSize: 32,    // windows per message to a worker
    });
    expect(model.size).toBe(2);
    expect(model.maxQueue).toBe(1000);
    const defaults = workerPool(new URL('./model.js', import.meta.url));
    expect(defaults.size).toBe(Math.max(1, availableParallelism() - 1));
    expect(defaults.maxQueue).toBe(1000);
  });

  it('a bad option fails at once with code CONFIG_INVALID', () => {
    expect(() => workerPool(new URL('./model.js', import.meta.url), { timeout: 'forever' as '1s' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('windows.onClose(model).to("predictions"): results per key in window order; a throwing model is dead-lettered HANDLER_FAILED after retries', async () => {
    const app = createApp({ id: 'pool', logger: silentLogger });
    const windows = app.from<Reading>('readings', { timestamp: r => r.ts }).keyBy(r => r.sensor).tumbling('1s').collect();
    const model = workerPool(new URL('./flaky-model.js', import.meta.url), { size: 2, retries: 1, batchSize: 4 });
    windows.onClose(model).to('predictions');
    const driver = await TestDriver.start(app);
    await driver.send('readings', { sensor: 'bad', value: 0, ts: 100 });
    for (let i = 0; i < 5; i++) await driver.send('readings', { sensor: 'a', value: i, ts: i * 1_000 + 10 });
    await driver.send('readings', { sensor: 'a', value: 9, ts: 10_000 });
    await driver.advanceTime('1s');
    const out = driver.read('predictions');
    expect(out).toEqual([0, 1, 2, 3, 4].map(i => ({ key: 'a', value: { key: 'a', n: 1 }, timestamp: i * 1_000 + 999 })));
    const dead = driver.read('pool-dlq');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.headers['error.code']).toBe('HANDLER_FAILED');
    expect(dead[0]!.value).toEqual({ start: 0, end: 1_000, value: [{ sensor: 'bad', value: 0, ts: 100 }] });
    await driver.stop();
  });
});

describe('README: models', () => {
  it('linearTrend, ewma, holt, zScore, mad, scorePoint exist and compute', () => {
    const trend = models.linearTrend([1, 3, 5, 7]);
    expect(trend.slope).toBeCloseTo(2);
    expect(trend.forecast).toBeCloseTo(9);
    expect(models.ewma([1, 2, 3], { alpha: 0.5 }).last).toBeCloseTo(2.25);
    for (const name of ['holt', 'zScore', 'mad', 'scorePoint'] as const) expect(typeof models[name]).toBe('function');
  });
});
