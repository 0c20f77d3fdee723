import { describe, expect, it } from 'vitest';
import { SEEDS, SlidingModel, generate, idsOf, type Reading } from '../testing/window-reference.test-support.js';
import { checkAgainstReference, runTable } from '../testing/window-runner.test-support.js';

/** Readings of one key `a` (unless given), ids in send order. */
function readings(...items: Array<number | [ts: number, key: string]>): Reading[] {
  return items.map((item, id) => (typeof item === 'number' ? { id, k: 'a', ts: item, v: id } : { id, k: item[1], ts: item[0], v: id }));
}

const windowsOf = (closed: Array<{ key: string; start: number; end: number; value: unknown; at: number }>) =>
  closed.map((window) => ({ key: window.key, start: window.start, end: window.end, ids: idsOf(window.value), at: window.at }));

const lateOf = (late: Array<{ start: number; end: number; id: number; at: number }>) => late.map(({ start, end, id, at }) => ({ start, end, id, at }));

describe('sliding windows: exact cases', () => {
  it('one window per distinct timestamp, covering (t - size, t], closing at t + 1', async () => {
    const input = readings(5, 8, 8, 12, 30);
    const run = await runTable({ readings: input, table: (keyed) => keyed.sliding(10).collect() });
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: -4, end: 6, ids: [0], at: 1 },
      { key: 'a', start: -1, end: 9, ids: [0, 1, 2], at: 3 },
      { key: 'a', start: 3, end: 13, ids: [0, 1, 2, 3], at: 4 },
    ]);
    expect(run.late).toEqual([]);
    expect(run.out.map((record) => record.timestamp)).toEqual([5, 8, 12]);
  });

  it('a record whose own window closed is late for it and for emitted windows after it, and joins the open ones', async () => {
    // 3 arrives at stream time 8: its own window [-6, 4) and window 5 ([-4, 6)) have closed;
    // window 8 ([-1, 9)) is open and takes it. No window is created for 3.
    const input = readings(5, 8, 3, 20);
    const run = await runTable({ readings: input, table: (keyed) => keyed.sliding(10).collect() });
    expect(lateOf(run.late)).toEqual([
      { start: -6, end: 4, id: 2, at: 2 },
      { start: -4, end: 6, id: 2, at: 2 },
    ]);
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: -4, end: 6, ids: [0], at: 1 },
      { key: 'a', start: -1, end: 9, ids: [2, 0, 1], at: 3 },
    ]);
    expect(run.metrics.lateRecords).toBe(1);
  });

  it('a record whose own window closed counts for a later window that comes after it, as it would for an open one', async () => {
    // 3 arrives at stream time 10 (key b's record): its own window [-6, 4) has closed, and key a
    // has no window yet. Window 11 ([2, 12), closing at 12) comes next and holds it: whether 3
    // counts must not depend on whether a record at 4..11 of key a came before it.
    for (const [input, windows] of [
      [readings([10, 'b'], 3, 11, 40), [{ key: 'a', start: 2, end: 12, ids: [1, 2], at: 3 }]],
      [readings([10, 'b'], 10, 3, 11, 40), [
        { key: 'a', start: 1, end: 11, ids: [2, 1], at: 3 },
        { key: 'a', start: 2, end: 12, ids: [2, 1, 3], at: 4 },
      ]],
    ] as const) {
      const run = await runTable({ readings: [...input], table: (keyed) => keyed.sliding(10).collect() });
      const lateId = input.find((reading) => reading.ts === 3)!.id;
      expect(lateOf(run.late)).toEqual([{ start: -6, end: 4, id: lateId, at: lateId }]);
      expect(windowsOf(run.closed).filter((window) => window.key === 'a')).toEqual(windows);
      expect(run.metrics.lateRecords).toBe(1);
    }
  });

  it('a late record with no open window after it is dropped', async () => {
    // 25 arrives at stream time 35: its own window and the emitted window 30 are closed, and
    // window 35 covers [26, 35]: nothing open takes it.
    const input = readings(5, 30, 35, 25, 50);
    const run = await runTable({ readings: input, table: (keyed) => keyed.sliding(10).collect() });
    expect(lateOf(run.late)).toEqual([
      { start: 16, end: 26, id: 3, at: 3 },
      { start: 21, end: 31, id: 3, at: 3 },
    ]);
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: -4, end: 6, ids: [0], at: 1 },
      { key: 'a', start: 21, end: 31, ids: [1], at: 2 },
      { key: 'a', start: 26, end: 36, ids: [1, 2], at: 4 },
    ]);
    expect(run.metrics.lateRecords).toBe(1);
  });

  it('with grace: out-of-order records still open their own windows until t + 1 + grace', async () => {
    const input = readings(10, 14, 12, 16, 30);
    const run = await runTable({ readings: input, table: (keyed) => keyed.sliding(10, { grace: 5 }).collect() });
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: 1, end: 11, ids: [0], at: 3 },
      { key: 'a', start: 3, end: 13, ids: [0, 2], at: 4 },
      { key: 'a', start: 5, end: 15, ids: [0, 2, 1], at: 4 },
      { key: 'a', start: 7, end: 17, ids: [0, 2, 1, 3], at: 4 },
    ]);
    expect(run.late).toEqual([]);
  });

  // State stays bounded: an emitted window t'' is remembered until stream time passes
  // t'' + size + grace (when its records expire). A record later than that is reported late for
  // its own window only, not for emitted windows the task has forgotten (README, onLate).
  it('reports a very late record for its own window once the windows after it are forgotten', async () => {
    // Window 5 closes at 6 and nothing covers timestamp 5 after stream time 15; then 0 arrives.
    const input = readings(5, 20, 0);
    const run = await runTable({ readings: input, table: (keyed) => keyed.sliding(10).count() });
    expect(lateOf(run.late)).toEqual([{ start: -9, end: 1, id: 2, at: 2 }]);
  });

  it('negative timestamps and duplicate timestamps of several keys', async () => {
    const input = readings([-20, 'a'], [-20, 'b'], [-15, 'a'], [-20, 'a'], [-11, 'b'], [0, 'c']);
    const run = await runTable({ readings: input, table: (keyed) => keyed.sliding(10).collect() });
    const byKey = windowsOf(run.closed).sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.end - y.end));
    expect(byKey).toEqual([
      { key: 'a', start: -29, end: -19, ids: [0], at: 2 },
      { key: 'a', start: -24, end: -14, ids: [0, 3, 2], at: 4 },
      { key: 'b', start: -29, end: -19, ids: [1], at: 2 },
      { key: 'b', start: -20, end: -10, ids: [1, 4], at: 5 },
    ]);
    // The second -20 of `a` comes after its own window closed; window -15 still takes it.
    expect(lateOf(run.late)).toEqual([{ start: -29, end: -19, id: 3, at: 3 }]);
  });
});

interface SlidingCase {
  name: string;
  size: number;
  grace: number;
  keys: number;
  count: number;
  start?: number;
  maxStep?: number;
  jitter?: number;
  flush?: 'idle';
}

const slidingCases: SlidingCase[] = [
  { name: 'sliding 10s, grace 0', size: 10_000, grace: 0, keys: 4, count: 1200 },
  { name: 'sliding 10s, grace 2s', size: 10_000, grace: 2000, keys: 4, count: 1200 },
  { name: 'sliding 1s, grace 0, negative times', size: 1000, grace: 0, keys: 3, count: 1200, start: -100_000 },
  { name: 'sliding 50ms, dense duplicate timestamps', size: 50, grace: 10, keys: 2, count: 1200, maxStep: 5, jitter: 40 },
  { name: 'sliding 10s, 200 keys', size: 10_000, grace: 1000, keys: 200, count: 2500 },
  { name: 'sliding 5s, flushed by the idle timeout', size: 5000, grace: 500, keys: 4, count: 800, flush: 'idle' },
];

describe('sliding windows against the reference', () => {
  for (const testCase of slidingCases) {
    it.each(SEEDS.slice(0, 6))(`${testCase.name} (seed %i)`, async (seed) => {
      const { size, grace } = testCase;
      const result = await checkAgainstReference({
        readings: generate(seed, {
          count: testCase.count,
          keys: testCase.keys,
          start: testCase.start ?? 0,
          maxStep: testCase.maxStep ?? 300,
          jitter: testCase.jitter ?? 4000,
          lateBy: 20 * size,
        }),
        model: new SlidingModel(size, grace, { forgetEmitted: true }),
        table: (keyed) => keyed.sliding(size, { grace }).collect(),
        flush: testCase.flush === 'idle' ? { idleAdvance: 5000 + size + grace + 1 } : 'record',
        closeOf: (window) => window.end + grace,
      });
      expect(result.differences).toEqual([]);
      expect(result.stats.windows).toBeGreaterThan(10);
      expect(result.stats.lateCalls).toBeGreaterThan(0);
    });
  }

  it.each(SEEDS.slice(0, 4))('onUpdate() after each record, for every open window it was added to (seed %i)', async (seed) => {
    const result = await checkAgainstReference({
      readings: generate(seed, { count: 500, keys: 3, jitter: 3000 }),
      model: new SlidingModel(5000, 1000, { forgetEmitted: true }),
      table: (keyed) => keyed.sliding(5000, { grace: 1000 }).collect(),
      flush: 'record',
      updates: true,
    });
    expect(result.differences).toEqual([]);
    expect(result.stats.updates).toBeGreaterThan(500);
  });
});

describe('sliding windows: the stated late semantics, without the retention horizon', () => {
  // A record at most size + grace behind stream time never meets a forgotten window (one needs
  // st ≥ t'' + size + grace with t'' > t), so there the exact semantics must hold. The generator's
  // lateness is at most jitter + 20 records × maxStep = 6000 + 6000 ms here.
  it.each(SEEDS.slice(0, 4))('onLate calls match the unbounded semantics when lateness stays within the horizon (seed %i)', async (seed) => {
    const size = 10_000;
    const grace = 2000;
    const result = await checkAgainstReference({
      readings: generate(seed, { count: 1000, keys: 3, maxStep: 300, jitter: 6000, lateChance: 0 }),
      model: new SlidingModel(size, grace),
      table: (keyed) => keyed.sliding(size, { grace }).collect(),
      flush: 'record',
    });
    expect(result.differences).toEqual([]);
    expect(result.stats.lateCalls).toBeGreaterThan(0);
  });
});
