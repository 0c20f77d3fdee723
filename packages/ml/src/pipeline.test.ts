/**
 * The worker pool inside a pipeline, in virtual time: real worker threads behind `onClose`, the
 * TestDriver waiting for their results, failures dead-lettered with the reason, backpressure
 * losing nothing.
 */
import { describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { workerPool } from './index.js';

const model = new URL('../test-fixtures/pipeline-model.mjs', import.meta.url);

interface Reading {
  sensor: string;
  value: number;
  ts: number;
}

interface Scored {
  key: string;
  start: number;
  sum: number;
}

function buildApp(pool: ReturnType<typeof workerPool>) {
  const app = createApp({ id: 'pooled', idleTimeout: false, logger: silentLogger });
  app
    .from<Reading>('readings', { timestamp: (r) => r.ts })
    .keyBy((r) => r.sensor)
    .hopping(1000, 500)
    .collect()
    .onClose(pool)
    .to('scores');
  return app;
}

/** The windows of `readings` by brute force: every hopping(1000, 500) window with records. */
function expectedScores(readings: Reading[], skip: (values: number[]) => boolean = () => false): Scored[] {
  const windows = new Map<string, Scored & { values: number[] }>();
  for (const { sensor, value, ts } of readings) {
    for (let start = Math.floor(ts / 500) * 500; start > ts - 1000; start -= 500) {
      const id = `${sensor}@${start}`;
      const window = windows.get(id) ?? { key: sensor, start, sum: 0, values: [] };
      window.sum += value;
      window.values.push(value);
      windows.set(id, window);
    }
  }
  return [...windows.values()].filter((w) => w.start + 1000 <= 100_000 && !skip(w.values)).map(({ key, start, sum }) => ({ key, start, sum }));
}

const byKeyThenStart = (a: Scored, b: Scored) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.start - b.start);

describe('a worker pool as a close handler', () => {
  it('gives every window its result, in window order per key, within advanceTime', async () => {
    const pool = workerPool(model, { size: 2, batchSize: 8 });
    const app = buildApp(pool);
    const driver = await TestDriver.start(app);
    const readings: Reading[] = [];
    for (let i = 0; i < 120; i++) readings.push({ sensor: `s${i % 3}`, value: i, ts: i * 60 });
    for (const reading of readings) await driver.send('readings', reading);
    await driver.send('readings', { sensor: 'flush', value: 0, ts: 100_000 });
    const scores = driver.read<Scored>('scores').map((record) => record.value);
    expect([...scores].sort(byKeyThenStart)).toEqual(expectedScores(readings).sort(byKeyThenStart));
    for (const sensor of ['s0', 's1', 's2']) {
      const starts = scores.filter((score) => score.key === sensor).map((score) => score.start);
      expect(starts).toEqual([...starts].sort((a, b) => a - b));
    }
    expect(driver.read('scores').every((record) => record.key === (record.value as Scored).key)).toBe(true);
    await driver.stop();
  });

  it('dead-letters a window whose model throws or kills its worker, after retries, and keeps the rest', async () => {
    const pool = workerPool(model, { size: 2, retries: 1, timeout: '5s' });
    const app = buildApp(pool);
    const driver = await TestDriver.start(app);
    const readings: Reading[] = [
      { sensor: 'a', value: 1, ts: 100 },
      { sensor: 'b', value: -1, ts: 200 },
      { sensor: 'c', value: -2, ts: 300 },
      { sensor: 'a', value: 2, ts: 1700 },
    ];
    for (const reading of readings) await driver.send('readings', reading);
    await driver.send('readings', { sensor: 'flush', value: 0, ts: 100_000 });
    const scores = driver.read<Scored>('scores').map((record) => record.value);
    expect(scores.sort(byKeyThenStart)).toEqual(expectedScores(readings, (values) => values.some((v) => v < 0)).sort(byKeyThenStart));
    const dead = driver.read('pooled-dlq');
    // b and c each have two windows ([-500, 500) and [0, 1000)).
    expect(dead).toHaveLength(4);
    const codes = dead.map((record) => record.headers['error.code']).sort();
    expect(codes).toEqual(['HANDLER_FAILED', 'HANDLER_FAILED', 'WORKER_CRASHED', 'WORKER_CRASHED']);
    expect(dead.find((record) => record.headers['error.code'] === 'HANDLER_FAILED')!.headers.error).toMatch(/cannot score window b/);
    expect(app.metrics().deadLetters).toBe(4);
    await driver.stop();
  });

  it('loses nothing when a small queue pauses the source', async () => {
    const pool = workerPool(model, { size: 1, maxQueue: 2, batchSize: 2 });
    const app = buildApp(pool);
    const driver = await TestDriver.start(app);
    const readings: Reading[] = [];
    for (let i = 0; i < 400; i++) readings.push({ sensor: `k${i % 10}`, value: i % 7, ts: i * 25 });
    for (const reading of readings) await driver.send('readings', reading);
    await driver.send('readings', { sensor: 'flush', value: 0, ts: 100_000 });
    const scores = driver.read<Scored>('scores').map((record) => record.value);
    expect(scores.sort(byKeyThenStart)).toEqual(expectedScores(readings).sort(byKeyThenStart));
    await driver.stop();
  });
});
