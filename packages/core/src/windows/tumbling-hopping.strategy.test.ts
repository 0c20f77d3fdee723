import { describe, expect, it } from 'vitest';
import { checkStrategy, StrategyDriver, type StrategyRun } from '../testing/strategy-driver.test-support.js';
import { HoppingModel, Random, SEEDS, generate, idsOf } from '../testing/window-reference.test-support.js';
import { hoppingWindows, tumblingWindows } from './tumbling-hopping.js';

/** The hopping strategy alone: no app, no driver; windows against brute force and the reference model. */

const emptyRun = (): StrategyRun => ({ closed: [], late: [], lateRecords: 0, updates: [] });

/** Every window `[k*slide, k*slide + size)` holding `t`, by trying every start near it. */
function windowsHolding(t: number, size: number, slide: number): Array<[number, number]> {
  const windows: Array<[number, number]> = [];
  for (let k = Math.floor((t - size) / slide) - 2; k * slide <= t + 2 * slide; k++) {
    const start = k * slide;
    if (start <= t && t < start + size) windows.push([start, start + size]);
  }
  return windows;
}

describe('tumbling and hopping windows: definitions', () => {
  it('keep their descriptions and default store names', () => {
    const tumbling = tumblingWindows('1m');
    expect([tumbling.kind, tumbling.description, tumbling.defaultStoreName('count')]).toEqual(['tumbling', 'tumbling(60000ms, grace 0ms)', 'tumbling-60000ms-grace-0ms-count']);
    const hopping = hoppingWindows(10_000, 1000, { grace: '2s' });
    expect([hopping.kind, hopping.description, hopping.defaultStoreName('collect')]).toEqual([
      'hopping',
      'hopping(10000ms, 1000ms, grace 2000ms)',
      'hopping-10000ms-1000ms-grace-2000ms-collect',
    ]);
  });

  it('refuse a slide larger than the size', () => {
    expect(() => hoppingWindows(1000, 2000)).toThrow(/slide 2000 is larger than size 1000/);
  });
});

describe('tumbling and hopping windows: assignment', () => {
  it.each(SEEDS)('a record updates exactly the windows holding its timestamp, which then close one by one at end + grace (seed %i)', (seed) => {
    const random = new Random(seed);
    for (let round = 0; round < 100; round++) {
      const slide = random.int(1, 50);
      const size = slide * random.int(1, 6) + (random.chance(0.5) ? 0 : random.int(0, slide - 1));
      const grace = random.int(0, 30);
      const t = random.int(-1000, 1000);
      const expected = windowsHolding(t, size, slide);
      const driver = new StrategyDriver(hoppingWindows(size, slide, { grace }));
      const run = emptyRun();
      driver.send({ id: 0, k: 'a', ts: t, v: 0 }, 0, run);
      const context = { seed, round, size, slide, grace, t };
      expect(run.updates.map((update) => [update.start, update.end]), JSON.stringify(context)).toEqual(expected);

      // Each window closes when stream time reaches its end + grace, not a millisecond before.
      const state = driver.keys.get('a')!;
      for (const [index, [, end]] of expected.entries()) {
        expect(driver.strategy.due(state), JSON.stringify(context)).toBe(end + grace);
        driver.advance(end + grace - 1, 1, run);
        expect(run.closed.length).toBe(index);
        driver.advance(end + grace, 1, run);
        expect(run.closed.length).toBe(index + 1);
      }
      expect(run.closed.map((window) => [window.start, window.end])).toEqual(expected);
      expect(driver.keys.has('a')).toBe(false);
    }
  });

  it('a record only for closed windows is late for each, and leaves no state', () => {
    const driver = new StrategyDriver(hoppingWindows(10, 5, { grace: 2 }));
    const run = emptyRun();
    driver.send({ id: 0, k: 'a', ts: 100, v: 0 }, 0, run);
    driver.send({ id: 1, k: 'b', ts: 80, v: 0 }, 1, run);
    expect(run.late.map((late) => [late.key, late.start, late.end])).toEqual([
      ['b', 75, 85],
      ['b', 80, 90],
    ]);
    expect(run.lateRecords).toBe(1);
    expect(driver.keys.has('b')).toBe(false);
  });

  it('a record late for some windows still counts for the open ones', () => {
    // Stream time 16 closes [0, 10) (at 10 + grace 2) but not [5, 15) (at 17).
    const driver = new StrategyDriver(hoppingWindows(10, 5, { grace: 2 }));
    const run = emptyRun();
    driver.send({ id: 0, k: 'a', ts: 14, v: 0 }, 0, run);
    driver.send({ id: 1, k: 'a', ts: 11, v: 0 }, 1, run);
    expect(run.late).toEqual([]);
    driver.send({ id: 2, k: 'a', ts: 16, v: 0 }, 2, run);
    driver.send({ id: 3, k: 'a', ts: 9, v: 0 }, 3, run);
    expect(run.late.map((late) => [late.id, late.start, late.end])).toEqual([[3, 0, 10]]);
    driver.advance(Infinity, 4, run);
    expect(run.closed.map((window) => [window.start, window.end, idsOf(window.value)])).toEqual([
      [5, 15, [3, 1, 0]],
      [10, 20, [1, 0, 2]],
      [15, 25, [2]],
    ]);
  });
});

const cases = [
  { name: 'tumbling 1s', size: 1000, slide: 1000, grace: 0 },
  { name: 'tumbling 1s, grace 300ms', size: 1000, slide: 1000, grace: 300 },
  { name: 'hopping 4s / 1s', size: 4000, slide: 1000, grace: 500 },
  { name: 'hopping 2.5s / 1s (slide does not divide size)', size: 2500, slide: 1000, grace: 200 },
  { name: 'hopping 300ms / 3ms (many slices)', size: 300, slide: 3, grace: 0 },
];

describe('tumbling and hopping windows against the reference model', () => {
  for (const { name, size, slide, grace } of cases) {
    const window = size === slide ? tumblingWindows(size, { grace }) : hoppingWindows(size, slide, { grace });
    it.each(SEEDS.slice(0, 6))(`${name}: closed, late and updated windows (seed %i)`, (seed) => {
      const readings = generate(seed, { count: 400, keys: 3, start: -5000, jitter: 3000, lateBy: 20_000 });
      const result = checkStrategy({ window, model: new HoppingModel(size, slide, grace), readings, flushAtEnd: true, updates: true });
      expect(result.differences).toEqual([]);
      expect(result.stats.windows).toBeGreaterThan(10);
      expect(result.stats.lateCalls).toBeGreaterThan(0);
    });

    it.each(SEEDS.slice(0, 6))(`${name}: the same after restarts from the stored bytes (seed %i)`, (seed) => {
      const readings = generate(seed, { count: 400, keys: 3, jitter: 3000, lateBy: 20_000 });
      const restarts = new Random(seed);
      const result = checkStrategy({ window, model: new HoppingModel(size, slide, grace), readings, flushAtEnd: true, restartAfter: () => restarts.chance(0.05) });
      expect(result.differences).toEqual([]);
    });
  }

  it.each(SEEDS.slice(0, 4))('counts open windows as openWindows lists them (seed %i)', (seed) => {
    const driver = new StrategyDriver(hoppingWindows(2500, 1000, { grace: 300 }));
    const run = emptyRun();
    for (const [index, reading] of generate(seed, { count: 300, keys: 3, pauseChance: 0.05, pause: 6000 }).entries()) {
      driver.send(reading, index, run);
      for (const state of driver.keys.values()) expect(driver.strategy.countOpen(state)).toBe(driver.strategy.openWindows(state).length);
    }
  });
});
