import { describe, expect, it } from 'vitest';
import { checkStrategy, StrategyDriver, type StrategyRun } from '../testing/strategy-driver.test-support.js';
import { CountModel, Random, SEEDS, generate, idsOf, type Reading } from '../testing/window-reference.test-support.js';
import { countWindows } from './count.js';

/** The count strategy alone: no app, no driver; windows against brute force and the reference model. */

const emptyRun = (): StrategyRun => ({ closed: [], late: [], lateRecords: 0, updates: [] });

describe('count windows: definition', () => {
  it('keeps its description and default store name, the step defaulting to the size', () => {
    const window = countWindows(5, 2);
    expect([window.kind, window.description, window.defaultStoreName('collect')]).toEqual(['count', 'countWindow(5, step 2)', 'count-5-2-collect']);
    expect(countWindows(3, undefined).description).toBe('countWindow(3, step 3)');
  });

  it('refuses a size or step that is not a positive integer', () => {
    expect(() => countWindows(0, 1)).toThrow(/size must be a positive integer, got 0/);
    expect(() => countWindows(2, 1.5)).toThrow(/step must be a positive integer, got 1.5/);
  });
});

describe('count windows: assignment', () => {
  it.each(SEEDS)('every step-th record of a key closes the window of its last size records, by brute force (seed %i)', (seed) => {
    const random = new Random(seed);
    const size = random.int(1, 6);
    const step = random.int(1, 6);
    const driver = new StrategyDriver(countWindows(size, step));
    const run = emptyRun();
    const seen: Reading[] = [];
    for (let id = 0; id < 100; id++) {
      const item: Reading = { id, k: 'a', ts: random.int(-50, 50), v: id };
      seen.push(item);
      run.closed.length = 0;
      driver.send(item, id, run);
      const last = seen.slice(-size);
      const times = last.map((reading) => reading.ts);
      const expected = seen.length % step === 0 ? [[Math.min(...times), Math.max(...times) + 1, last.map((reading) => reading.id).sort((a, b) => seen[a]!.ts - seen[b]!.ts || a - b)]] : [];
      expect(run.closed.map((window) => [window.start, window.end, idsOf(window.value)])).toEqual(expected);
      // The one open window is updated by every record, whatever its timestamp; nothing is ever late or due.
      expect(run.updates.at(-1)).toMatchObject({ start: Math.min(...times), end: Math.max(...times) + 1, at: id });
      expect(run.late).toEqual([]);
      expect(driver.strategy.due(driver.keys.get('a')!)).toBeUndefined();
    }
  });
});

describe('count windows against the reference model', () => {
  for (const [size, step] of [
    [3, 3],
    [5, 2],
    [2, 5],
    [1, 1],
  ] as const) {
    it.each(SEEDS.slice(0, 6))(`countWindow(${size}, ${step}), with restarts from the stored bytes (seed %i)`, (seed) => {
      const readings = generate(seed, { count: 500, keys: 4, jitter: 5000, lateBy: 1_000_000 });
      const restarts = new Random(seed);
      const result = checkStrategy({ window: countWindows(size, step), model: new CountModel(size, step), readings, restartAfter: () => restarts.chance(0.05) });
      expect(result.differences).toEqual([]);
      expect(result.stats.windows).toBeGreaterThan(10);
    });
  }
});
