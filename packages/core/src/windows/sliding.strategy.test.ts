import { describe, expect, it } from 'vitest';
import { checkStrategy, StrategyDriver, type StrategyRun } from '../testing/strategy-driver.test-support.js';
import { Random, SEEDS, SlidingModel, generate, idsOf, type Reading } from '../testing/window-reference.test-support.js';
import { slidingWindows } from './sliding.js';

/** The sliding strategy alone: no app, no driver; windows against brute force and the reference model. */

const emptyRun = (): StrategyRun => ({ closed: [], late: [], lateRecords: 0, updates: [] });
const reading = (id: number, ts: number, k = 'a'): Reading => ({ id, k, ts, v: id });

describe('sliding windows: definition', () => {
  it('keeps its description and default store name', () => {
    const window = slidingWindows('30s', { grace: '1s' });
    expect([window.kind, window.description, window.defaultStoreName('sum')]).toEqual(['sliding', 'sliding(30000ms, grace 1000ms)', 'sliding-30000ms-grace-1000ms-sum']);
  });
});

describe('sliding windows: assignment', () => {
  it.each(SEEDS)('a record updates the open windows (t - size, t] of the timestamps t it falls in, by brute force (seed %i)', (seed) => {
    const random = new Random(seed);
    const size = random.int(1, 40);
    const driver = new StrategyDriver(slidingWindows(size, { grace: 1_000_000 }));
    const run = emptyRun();
    const seen = new Set<number>();
    for (let id = 0; id < 60; id++) {
      const ts = random.int(0, 100);
      seen.add(ts);
      run.updates.length = 0;
      driver.send(reading(id, ts), id, run);
      // With a grace this long nothing closes: every timestamp seen has its window open.
      const expected = [...seen].filter((windowTime) => windowTime - size < ts && ts <= windowTime).sort((a, b) => a - b);
      expect(run.updates.map((update) => [update.start, update.end])).toEqual(expected.map((windowTime) => [windowTime - size + 1, windowTime + 1]));
    }
  });

  it('closes the window of t at t + 1 + grace, in timestamp order, and expires a bucket once no window can need it', () => {
    const driver = new StrategyDriver(slidingWindows(5, { grace: 2 }));
    const run = emptyRun();
    driver.send(reading(0, 12), 0, run);
    driver.send(reading(1, 10), 1, run);
    const state = driver.keys.get('a')!;
    expect(driver.strategy.due(state)).toBe(13);
    driver.advance(12, 2, run);
    expect(run.closed).toEqual([]);
    driver.advance(13, 2, run);
    expect(run.closed.map((window) => [window.start, window.end, idsOf(window.value)])).toEqual([[6, 11, [1]]]);
    driver.advance(15, 2, run);
    expect(run.closed.map((window) => [window.start, window.end, idsOf(window.value)])).toEqual([
      [6, 11, [1]],
      [8, 13, [1, 0]],
    ]);
    // The bucket of 10 stays while a window could still cover it: until 10 + size + grace.
    expect(state.buckets.map((bucket) => bucket.start)).toEqual([10, 12]);
    driver.advance(17, 2, run);
    expect(state.buckets.map((bucket) => bucket.start)).toEqual([12]);
    driver.advance(19, 2, run);
    expect(driver.keys.has('a')).toBe(false);
  });

  it('a record whose own window closed is late for it, and for later emitted ones, yet counts for later open ones', () => {
    const driver = new StrategyDriver(slidingWindows(5, { grace: 0 }));
    const run = emptyRun();
    driver.send(reading(0, 10), 0, run);
    driver.send(reading(1, 13), 1, run);
    driver.send(reading(2, 11), 2, run);
    driver.send(reading(3, 14), 3, run);
    // Stream time 14: the windows of 10 and 13 are emitted, 11 never had one (its record came
    // late), 14's is open. Another record at 10 missed 10's and 13's, but belongs in 14's, (9, 14].
    driver.send(reading(4, 10), 4, run);
    expect(run.late.map((late) => [late.id, late.start, late.end])).toEqual([
      [2, 7, 12],
      [4, 6, 11],
      [4, 9, 14],
    ]);
    expect(run.lateRecords).toBe(2);
    expect(run.updates.filter((update) => update.at === 4).map((update) => [update.start, update.end, idsOf(update.value)])).toEqual([[10, 15, [0, 4, 2, 1, 3]]]);
    driver.advance(Infinity, 5, run);
    expect(run.closed.map((window) => [window.start, window.end, idsOf(window.value)])).toEqual([
      [6, 11, [0]],
      [9, 14, [0, 2, 1]],
      [10, 15, [0, 4, 2, 1, 3]],
    ]);
  });
});

const cases = [
  { name: 'size 5s, grace 500ms', size: 5000, grace: 500 },
  { name: 'size 1s, no grace', size: 1000, grace: 0 },
  { name: 'size 30ms (sparse windows)', size: 30, grace: 10 },
];

describe('sliding windows against the reference model', () => {
  for (const { name, size, grace } of cases) {
    const window = slidingWindows(size, { grace });
    it.each(SEEDS.slice(0, 6))(`${name}: closed, late and updated windows (seed %i)`, (seed) => {
      const readings = generate(seed, { count: 400, keys: 3, start: -3000, jitter: 3000, lateBy: 20 * size });
      const result = checkStrategy({ window, model: new SlidingModel(size, grace, { forgetEmitted: true }), readings, flushAtEnd: true, updates: true });
      expect(result.differences).toEqual([]);
      expect(result.stats.windows).toBeGreaterThan(10);
      expect(result.stats.lateCalls).toBeGreaterThan(0);
    });

    it.each(SEEDS.slice(0, 6))(`${name}: the same after restarts from the stored bytes (seed %i)`, (seed) => {
      const readings = generate(seed, { count: 400, keys: 3, jitter: 3000, lateBy: 20 * size });
      const restarts = new Random(seed);
      const model = new SlidingModel(size, grace, { forgetEmitted: true });
      const result = checkStrategy({ window, model, readings, flushAtEnd: true, updates: true, restartAfter: () => restarts.chance(0.05) });
      expect(result.differences).toEqual([]);
    });
  }

  it.each(SEEDS.slice(0, 4))('counts open windows as openWindows lists them (seed %i)', (seed) => {
    const driver = new StrategyDriver(slidingWindows(2000, { grace: 200 }));
    const run = emptyRun();
    for (const [index, item] of generate(seed, { count: 300, keys: 3, pauseChance: 0.05, pause: 6000 }).entries()) {
      driver.send(item, index, run);
      for (const state of driver.keys.values()) expect(driver.strategy.countOpen(state)).toBe(driver.strategy.openWindows(state).length);
    }
  });
});
