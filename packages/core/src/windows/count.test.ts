import { describe, expect, it } from 'vitest';
import { SEEDS, CountModel, generate, idsOf, type Reading } from '../testing/window-reference.test-support.js';
import { checkAgainstReference, runTable } from '../testing/window-runner.test-support.js';

/** Readings of one key `a` (unless given), ids in send order. */
function readings(...items: Array<number | [ts: number, key: string]>): Reading[] {
  return items.map((item, id) => (typeof item === 'number' ? { id, k: 'a', ts: item, v: id } : { id, k: item[1], ts: item[0], v: id }));
}

const windowsOf = (closed: Array<{ key: string; start: number; end: number; value: unknown; at: number }>) =>
  closed.map((window) => ({ key: window.key, start: window.start, end: window.end, ids: idsOf(window.value), at: window.at }));

describe('count windows: exact cases', () => {
  it('countWindow(3): every 3 records of a key, bounds from their timestamps, values in timestamp order', async () => {
    const input = readings(5, 1, 9, 2, 8, 7, 100);
    const run = await runTable({ readings: input, table: (keyed) => keyed.countWindow(3).collect() });
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: 1, end: 10, ids: [1, 0, 2], at: 2 },
      { key: 'a', start: 2, end: 9, ids: [3, 5, 4], at: 5 },
    ]);
    expect(run.out.map((record) => [record.key, record.timestamp])).toEqual([
      ['a', 9],
      ['a', 8],
    ]);
  });

  it('countWindow(3, 1): after every record, the last min(3, seen) records', async () => {
    const input = readings(5, 1, 9, 2);
    const run = await runTable({ readings: input, table: (keyed) => keyed.countWindow(3, 1).collect() });
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: 5, end: 6, ids: [0], at: 0 },
      { key: 'a', start: 1, end: 6, ids: [1, 0], at: 1 },
      { key: 'a', start: 1, end: 10, ids: [1, 0, 2], at: 2 },
      { key: 'a', start: 1, end: 10, ids: [1, 3, 2], at: 3 },
    ]);
  });

  it('countWindow(2, 3): a step larger than the size skips records', async () => {
    const input = readings(1, 2, 3, 4, 5, 6);
    const run = await runTable({ readings: input, table: (keyed) => keyed.countWindow(2, 3).collect() });
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: 2, end: 4, ids: [1, 2], at: 2 },
      { key: 'a', start: 5, end: 7, ids: [4, 5], at: 5 },
    ]);
  });

  it('counts per key, never late, and never emits an incomplete window (not even when idle)', async () => {
    const input = readings([100, 'a'], [100, 'b'], [-5_000, 'a'], [100, 'a'], [-9_000_000, 'b'], [7, 'b']);
    const run = await runTable({
      readings: input,
      table: (keyed) => keyed.countWindow(2).collect(),
      app: { idleTimeout: 1000 },
      advanceAfter: 60_000,
    });
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: -5000, end: 101, ids: [2, 0], at: 2 },
      { key: 'b', start: -9_000_000, end: 101, ids: [4, 1], at: 4 },
    ]);
    expect(run.late).toEqual([]);
    expect(run.metrics.lateRecords).toBe(0);
  });
});

describe('count windows against the reference', () => {
  const cases = [
    { size: 5, step: 5, keys: 4 },
    { size: 10, step: 3, keys: 5 },
    { size: 3, step: 7, keys: 2 },
    { size: 1, step: 1, keys: 3 },
    { size: 4, step: 1, keys: 200 },
  ];
  for (const { size, step, keys } of cases) {
    it.each(SEEDS.slice(0, 6))(`countWindow(${size}, ${step}), ${keys} keys (seed %i)`, async (seed) => {
      const result = await checkAgainstReference({
        readings: generate(seed, { count: 1200, keys, jitter: 5000, lateBy: 1_000_000 }),
        model: new CountModel(size, step),
        table: (keyed) => keyed.countWindow(size, step).collect(),
        flush: seed % 2 === 0 ? 'record' : { idleAdvance: 60_000 },
      });
      expect(result.differences).toEqual([]);
      expect(result.stats.windows).toBeGreaterThan(10);
      expect(result.stats.lateCalls).toBe(0);
    });
  }
});
