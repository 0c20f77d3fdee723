import { describe, expect, it } from 'vitest';
import { createApp } from '../index.js';
import { TestDriver } from '../testing/index.js';
import { SEEDS, HoppingModel, generate, idsOf, withFlush, type Reading } from '../testing/window-reference.test-support.js';
import { checkAgainstReference, runTable, runTables } from '../testing/window-runner.test-support.js';

const hoppingClose = (size: number, grace: number) => (window: { start: number }) => window.start + size + grace;

/** Readings of one key `a` (unless given), ids in send order. */
function readings(...items: Array<number | [ts: number, key: string]>): Reading[] {
  return items.map((item, id) => (typeof item === 'number' ? { id, k: 'a', ts: item, v: id } : { id, k: item[1], ts: item[0], v: id }));
}

const windowsOf = (closed: Array<{ key: string; start: number; end: number; value: unknown; at: number }>) =>
  closed.map((window) => ({ key: window.key, start: window.start, end: window.end, ids: idsOf(window.value), at: window.at }));

const lateOf = (late: Array<{ key: string; start: number; end: number; id: number; timestamp: number; at: number }>) =>
  late.map(({ key, start, end, id, timestamp, at }) => ({ key, start, end, id, timestamp, at }));

describe('tumbling windows: exact cases', () => {
  it('closes [0, 10) when stream time reaches 10, drops a record late for its only window, keeps later windows open', async () => {
    const input = readings(1, 5, 9, 12, 3, 15, 25, 20);
    const run = await runTable({ readings: input, table: (keyed) => keyed.tumbling(10).collect() });
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: 0, end: 10, ids: [0, 1, 2], at: 3 },
      { key: 'a', start: 10, end: 20, ids: [3, 5], at: 6 },
    ]);
    expect(lateOf(run.late)).toEqual([{ key: 'a', start: 0, end: 10, id: 4, timestamp: 3, at: 4 }]);
    expect(run.metrics.lateRecords).toBe(1);
    expect(run.out.map((record) => [record.key, record.timestamp])).toEqual([
      ['a', 9],
      ['a', 19],
    ]);
  });

  it('with grace: accepts stragglers until stream time reaches end + grace', async () => {
    const input = readings(1, 12, 8, 14, 15, 9, 19);
    const run = await runTable({ readings: input, table: (keyed) => keyed.tumbling(10, { grace: 5 }).collect() });
    // [0, 10) closes at 15: 8 (st 12) and nothing else is late before; 9 at st 15 is late.
    expect(windowsOf(run.closed)).toEqual([{ key: 'a', start: 0, end: 10, ids: [0, 2], at: 4 }]);
    expect(lateOf(run.late)).toEqual([{ key: 'a', start: 0, end: 10, id: 5, timestamp: 9, at: 5 }]);
  });

  it('a window closes exactly at end + grace, not one millisecond before', async () => {
    const input = readings(0, 11, 12);
    const run = await runTable({ readings: input, table: (keyed) => keyed.tumbling(10, { grace: 2 }).count() });
    expect(run.closed.map((window) => [window.start, window.value, window.at])).toEqual([[0, 1, 2]]);
  });

  it('stream time is shared by keys: a record of one key closes windows of another', async () => {
    const input = readings([1, 'a'], [2, 'b'], [3, 'a'], [10, 'b'], [4, 'a']);
    const run = await runTable({ readings: input, table: (keyed) => keyed.tumbling(10).collect() });
    expect(windowsOf(run.closed).sort((x, y) => (x.key < y.key ? -1 : 1))).toEqual([
      { key: 'a', start: 0, end: 10, ids: [0, 2], at: 3 },
      { key: 'b', start: 0, end: 10, ids: [1], at: 3 },
    ]);
    expect(lateOf(run.late)).toEqual([{ key: 'a', start: 0, end: 10, id: 4, timestamp: 4, at: 4 }]);
  });

  it('handles negative timestamps (epoch-aligned floor, not truncation)', async () => {
    const input = readings(-15, -1, -10, -25, 0, 5, 15);
    const run = await runTable({ readings: input, table: (keyed) => keyed.tumbling(10).collect() });
    // -15 is in [-20, -10), not [-10, 0); -25 arrives at stream time -1, after [-30, -20) closed.
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: -20, end: -10, ids: [0], at: 1 },
      { key: 'a', start: -10, end: 0, ids: [2, 1], at: 4 },
      { key: 'a', start: 0, end: 10, ids: [4, 5], at: 6 },
    ]);
    expect(lateOf(run.late)).toEqual([{ key: 'a', start: -30, end: -20, id: 3, timestamp: -25, at: 3 }]);
  });

  it('collect() orders by timestamp, ties in arrival order; output timestamp is end - 1', async () => {
    const input = readings(5, 3, 5, 3, 0, 5, 20);
    const run = await runTable({ readings: input, table: (keyed) => keyed.tumbling(10).collect() });
    expect(windowsOf(run.closed)).toEqual([{ key: 'a', start: 0, end: 10, ids: [4, 1, 3, 0, 2, 5], at: 6 }]);
    expect(run.out[0]).toMatchObject({ key: 'a', timestamp: 9 });
  });

  it('toStream() emits { key, start, end, value } per closed window', async () => {
    const app = createApp({ id: 'to-stream', idleTimeout: false });
    app
      .from<Reading>('in', { timestamp: (reading) => reading.ts })
      .keyBy((reading) => reading.k)
      .tumbling(10)
      .sum((reading) => reading.v)
      .toStream()
      .to('out');
    const driver = await TestDriver.start(app);
    for (const reading of readings([1, 'x'], [4, 'y'], [7, 'x'], [30, 'z'])) await driver.send('in', { ...reading, v: reading.ts * 10 }, { key: reading.k });
    const out = driver.read('out').map(({ key, value, timestamp }) => ({ key, value, timestamp }));
    await driver.stop();
    expect(out.sort((a, b) => (String(a.key) < String(b.key) ? -1 : 1))).toEqual([
      { key: 'x', value: { key: 'x', start: 0, end: 10, value: 80 }, timestamp: 9 },
      { key: 'y', value: { key: 'y', start: 0, end: 10, value: 40 }, timestamp: 9 },
    ]);
  });
});

describe('hopping windows: exact cases', () => {
  it('hopping(10, 4) with negative times: a record is in every window containing it, late only for the closed ones', async () => {
    const input = readings(-3, 1, 7, 5);
    const run = await runTable({ readings: input, table: (keyed) => keyed.hopping(10, 4).collect(), app: { idleTimeout: 1000 }, advanceAfter: 20_000 });
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: -12, end: -2, ids: [0], at: 1 },
      { key: 'a', start: -8, end: 2, ids: [0, 1], at: 2 },
      { key: 'a', start: -4, end: 6, ids: [0, 1], at: 2 },
      { key: 'a', start: 0, end: 10, ids: [1, 3, 2], at: 4 },
      { key: 'a', start: 4, end: 14, ids: [3, 2], at: 4 },
    ]);
    expect(lateOf(run.late)).toEqual([{ key: 'a', start: -4, end: 6, id: 3, timestamp: 5, at: 3 }]);
    expect(run.metrics.lateRecords).toBe(1);
  });

  it('hopping(10, 4, grace 3): slide not dividing size, a record late for two of its three windows', async () => {
    // Windows of 9: [0, 10), [4, 14), [8, 18) closing at 13, 17, 21.
    const input = readings(9, 17, 9, 30);
    const run = await runTable({ readings: input, table: (keyed) => keyed.hopping(10, 4, { grace: 3 }).collect() });
    expect(lateOf(run.late)).toEqual([
      { key: 'a', start: 0, end: 10, id: 2, timestamp: 9, at: 2 },
      { key: 'a', start: 4, end: 14, id: 2, timestamp: 9, at: 2 },
    ]);
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: 0, end: 10, ids: [0], at: 1 },
      { key: 'a', start: 4, end: 14, ids: [0], at: 1 },
      { key: 'a', start: 8, end: 18, ids: [0, 2, 1], at: 3 },
      { key: 'a', start: 12, end: 22, ids: [1], at: 3 },
      { key: 'a', start: 16, end: 26, ids: [1], at: 3 },
    ]);
  });

  it('only windows that received a record are emitted (gaps produce nothing)', async () => {
    const input = readings(1, 100, 200);
    const run = await runTable({ readings: input, table: (keyed) => keyed.hopping(10, 5).count() });
    expect(run.closed.map((window) => [window.start, window.end, window.value])).toEqual([
      [-5, 5, 1],
      [0, 10, 1],
      [95, 105, 1],
      [100, 110, 1],
    ]);
  });
});

interface HoppingCase {
  name: string;
  size: number;
  slide: number;
  grace: number;
  keys: number;
  count: number;
  start?: number;
  flush?: 'record' | 'idle';
}

const hoppingCases: HoppingCase[] = [
  { name: 'tumbling 10s, grace 0', size: 10_000, slide: 10_000, grace: 0, keys: 4, count: 1500 },
  { name: 'tumbling 10s, grace 2s', size: 10_000, slide: 10_000, grace: 2000, keys: 4, count: 1500 },
  { name: 'tumbling 1s (many small windows), grace 0', size: 1000, slide: 1000, grace: 0, keys: 3, count: 1500 },
  { name: 'hopping 10s/4s (slice 2s), grace 0', size: 10_000, slide: 4000, grace: 0, keys: 4, count: 1500 },
  { name: 'hopping 10s/4s, grace 3s, negative times', size: 10_000, slide: 4000, grace: 3000, keys: 4, count: 1500, start: -200_000 },
  { name: 'hopping 7s/3s (slice 1s), grace 1s', size: 7000, slide: 3000, grace: 1000, keys: 3, count: 1500 },
  { name: 'hopping 10s/1s (10 windows per record), grace 0', size: 10_000, slide: 1000, grace: 0, keys: 3, count: 1000 },
  { name: 'hopping 6s/250ms (24 windows per record), grace 500ms', size: 6000, slide: 250, grace: 500, keys: 2, count: 600 },
  { name: 'hopping 10s/4s, 300 keys', size: 10_000, slide: 4000, grace: 1000, keys: 300, count: 3000 },
  { name: 'tumbling 10s, flushed by the idle timeout', size: 10_000, slide: 10_000, grace: 1000, keys: 5, count: 1000, flush: 'idle' },
  { name: 'hopping 10s/4s, flushed by the idle timeout', size: 10_000, slide: 4000, grace: 0, keys: 5, count: 1000, flush: 'idle' },
];

describe('tumbling and hopping windows against the reference', () => {
  for (const testCase of hoppingCases) {
    it.each(SEEDS.slice(0, 6))(`${testCase.name} (seed %i)`, async (seed) => {
      const { size, slide, grace } = testCase;
      const result = await checkAgainstReference({
        readings: generate(seed, { count: testCase.count, keys: testCase.keys, start: testCase.start ?? 0, jitter: 4000, lateBy: 40_000 }),
        model: new HoppingModel(size, slide, grace),
        table: (keyed) => (size === slide ? keyed.tumbling(size, { grace }) : keyed.hopping(size, slide, { grace })).collect(),
        flush: testCase.flush === 'idle' ? { idleAdvance: 5000 + size + grace + 1 } : 'record',
        closeOf: hoppingClose(size, grace),
      });
      expect(result.differences).toEqual([]);
      expect(result.stats.windows).toBeGreaterThan(10);
      expect(result.stats.lateCalls).toBeGreaterThan(0);
    });
  }

  it.each(SEEDS.slice(0, 4))('onUpdate() after each record, for every open window it was added to (seed %i)', async (seed) => {
    const result = await checkAgainstReference({
      readings: generate(seed, { count: 600, keys: 3, jitter: 5000 }),
      model: new HoppingModel(10_000, 4000, 1000),
      table: (keyed) => keyed.hopping(10_000, 4000, { grace: 1000 }).collect(),
      flush: 'record',
      updates: true,
    });
    expect(result.differences).toEqual([]);
    expect(result.stats.updates).toBeGreaterThan(600);
  });

  it.each(SEEDS.slice(0, 4))('hopping(size, size) gives exactly what tumbling(size) gives (seed %i)', async (seed) => {
    const input = withFlush(generate(seed, { count: 1500, keys: 4, jitter: 6000 }));
    const { tables } = await runTables({
      readings: input,
      tables: {
        tumbling: (keyed) => keyed.tumbling(5000, { grace: 500 }).collect(),
        hopping: (keyed) => keyed.hopping(5000, 5000, { grace: 500, name: 'hopping-as-tumbling' }).collect(),
      },
    });
    const tumbling = tables['tumbling']!;
    const hopping = tables['hopping']!;
    expect(hopping.closed.length).toBeGreaterThan(10);
    expect(hopping.closed).toEqual(tumbling.closed);
    expect(hopping.late).toEqual(tumbling.late);
    expect(hopping.out.map((record) => [record.key, record.timestamp, record.value])).toEqual(tumbling.out.map((record) => [record.key, record.timestamp, record.value]));
  });
});
