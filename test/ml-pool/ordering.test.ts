/**
 * Results against window close order: hopping windows over two partitions, a pool of three workers
 * finishing out of order, some windows failing their first attempt; every window exactly once,
 * equal to a brute-force reference, in window order per key. And windows closing together travel
 * in a few batches, counted by the worker itself.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { createApp, memoryTransport, silentLogger } from '@eddy/core';
import { mulberry32 } from '@eddy/core/testing';
import { workerPool } from '@eddy/ml';
import { calls, count, decode, MODEL, strip, tempDir, text, until, windowId, type Reading, type Result } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** Every hopping(size, slide) window with records, closed once stream time (max ts, per task) reaches its end. */
function hoppingReference(readings: readonly Reading[], size: number, slide: number, closedBy: number) {
  const windows = new Map<string, Result>();
  for (const r of readings) {
    for (let start = Math.floor(r.ts / slide) * slide; start > r.ts - size; start -= slide) {
      if (start + size > closedBy) continue;
      const id = `${r.k}@${start}`;
      const w = windows.get(id) ?? { key: r.k, start, end: start + size, n: 0, sum: 0 };
      w.n += 1;
      w.sum += r.v;
      windows.set(id, w);
    }
  }
  return windows;
}

describe('workerPool results order', () => {
  it('hopping windows on two partitions, three workers finishing out of order, flaky windows: each window once, equal to the reference, in window order per key', async () => {
    const log = tempDir('order');
    dirs.push(log);
    const random = mulberry32(20240607);
    const transport = memoryTransport({ defaultPartitions: 2 });
    const pool = workerPool(MODEL, { size: 3, batchSize: 4, retries: 2, timeout: '10s' });
    const app = createApp({ id: 'mlorder', transport, idleTimeout: false, commitInterval: '50ms', logger: silentLogger });
    app.from<Reading>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.k).hopping(1000, 250).collect().onClose(pool).to('out');
    await app.start();
    const readings: Reading[] = [];
    for (let t = 0; t < 120; t++) {
      for (let k = 0; k < 6; k++) {
        const flaky = random() < 0.05;
        readings.push({ k: `k${k}`, v: Math.floor(random() * 50), ts: t * 100 + k, sleep: Math.floor(random() * 6), log, ...(flaky ? { act: 'flaky' } : {}) });
      }
    }
    // One far reading per key: each partition's stream time passes every window of the readings.
    const flushes: Reading[] = Array.from({ length: 6 }, (_, k) => ({ k: `k${k}`, v: 0, ts: 1_000_000 + k }));
    for (const r of readings) await app.send('in', r, { key: r.k });
    await transport.idle();
    for (const r of flushes) await app.send('in', r, { key: r.k });
    const ref = hoppingReference([...readings, ...flushes], 1000, 250, 1_000_000);
    await until(() => transport.records('out').length + transport.records('mlorder-dlq').length >= ref.size, 40_000, 'every window');
    await transport.idle();
    await app.stop();
    expect(transport.records('mlorder-dlq')).toHaveLength(0);
    const out = transport.records('out');
    const results = out.map((record) => decode(record.value) as Result);
    const seen = count(results.map(windowId));
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(results.map(strip).sort((a, b) => windowId(a).localeCompare(windowId(b)))).toEqual([...ref.values()].sort((a, b) => windowId(a).localeCompare(windowId(b))));
    for (const [index, record] of out.entries()) {
      expect(text(record.key)).toBe(results[index]!.key);
      expect(record.timestamp).toBe(results[index]!.end - 1);
    }
    for (let k = 0; k < 6; k++) {
      const ends = results.filter((r) => r.key === `k${k}`).map((r) => r.end);
      expect(ends).toEqual([...ends].sort((a, b) => a - b));
    }
    // Some windows did fail their first attempt (so the retry path was exercised).
    const called = count(calls(log));
    expect([...called.values()].some((n) => n === 2)).toBe(true);
  }, 90_000);

  it('200 windows closing on one record reach the workers in a few messages of at most batchSize, not one each', async () => {
    const transport = memoryTransport();
    const pool = workerPool(new URL('./counter.mjs', import.meta.url), { size: 2, batchSize: 32, timeout: '10s' });
    const app = createApp({ id: 'mlbatch', transport, idleTimeout: false, commitInterval: '1s', logger: silentLogger });
    app.from<Reading>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.k).tumbling(1000).collect().onClose(pool).to('out');
    await app.start();
    await app.sendBatch('in', Array.from({ length: 200 }, (_, k) => ({ value: { k: `k${k}`, v: k, ts: k }, key: `k${k}` })));
    await transport.idle();
    await app.send('in', { k: 'flush', v: 0, ts: 5000 }, { key: 'flush' });
    await until(() => transport.records('out').length >= 200, 20_000, '200 results');
    await transport.idle();
    await app.stop();
    const results = transport.records('out').map((record) => decode(record.value) as { key: string; thread: number; message: number });
    expect(new Set(results.map((r) => r.key)).size).toBe(200);
    const batches = count(results.map((r) => `${r.thread}/${r.message}`));
    expect(Math.max(...batches.values())).toBeLessThanOrEqual(32);
    expect(batches.size).toBeLessThanOrEqual(Math.ceil(200 / 32) + 2);
  }, 30_000);
});
