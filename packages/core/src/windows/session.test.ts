import { describe, expect, it } from 'vitest';
import { SEEDS, SessionModel, generate, idsOf, type Reading } from '../testing/window-reference.test-support.js';
import { checkAgainstReference, runTable } from '../testing/window-runner.test-support.js';

/** Readings of one key `a` (unless given), ids in send order. */
function readings(...items: Array<number | [ts: number, key: string]>): Reading[] {
  return items.map((item, id) => (typeof item === 'number' ? { id, k: 'a', ts: item, v: id } : { id, k: item[1], ts: item[0], v: id }));
}

const windowsOf = (closed: Array<{ key: string; start: number; end: number; value: unknown; at: number }>) =>
  closed.map((window) => ({ key: window.key, start: window.start, end: window.end, ids: idsOf(window.value), at: window.at }));

const lateOf = (late: Array<{ key: string; start: number; end: number; id: number; at: number }>) => late.map(({ key, start, end, id, at }) => ({ key, start, end, id, at }));

describe('session windows: exact cases', () => {
  it('a session [first, last + 1) closes when stream time reaches last + gap', async () => {
    const input = readings(0, 5, 14, 30);
    const run = await runTable({ readings: input, table: (keyed) => keyed.session(10).collect() });
    expect(windowsOf(run.closed)).toEqual([{ key: 'a', start: 0, end: 15, ids: [0, 1, 2], at: 3 }]);
    expect(run.out.map((record) => record.timestamp)).toEqual([14]);
  });

  it('records exactly gap apart join; gap + 1 apart do not', async () => {
    const input = readings(0, 10, 21, 100);
    const run = await runTable({ readings: input, table: (keyed) => keyed.session(10).collect() });
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: 0, end: 11, ids: [0, 1], at: 2 },
      { key: 'a', start: 21, end: 22, ids: [2], at: 3 },
    ]);
  });

  it('an out-of-order record that bridges two open sessions merges them', async () => {
    const input = readings(0, 20, 10, 50);
    const run = await runTable({ readings: input, table: (keyed) => keyed.session(10, { grace: 20 }).collect() });
    expect(windowsOf(run.closed)).toEqual([{ key: 'a', start: 0, end: 21, ids: [0, 2, 1], at: 3 }]);
    expect(run.late).toEqual([]);
  });

  it('a bridge merges three sessions, and a record earlier than the first extends its start', async () => {
    const input = readings(100, 120, 140, 110, 130, 95, 300);
    const run = await runTable({ readings: input, table: (keyed) => keyed.session(10, { grace: 100 }).collect() });
    expect(windowsOf(run.closed)).toEqual([{ key: 'a', start: 95, end: 141, ids: [5, 0, 3, 1, 4, 2], at: 6 }]);
  });

  it('a record that joins no open session is late when t + gap + grace ≤ stream time, else it opens a session', async () => {
    const input = readings(0, 30, 5, 25, 14, 15, 60);
    const run = await runTable({ readings: input, table: (keyed) => keyed.session(10).collect() });
    expect(lateOf(run.late)).toEqual([
      { key: 'a', start: 5, end: 6, id: 2, at: 2 },
      { key: 'a', start: 14, end: 15, id: 4, at: 4 },
    ]);
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: 0, end: 1, ids: [0], at: 1 },
      { key: 'a', start: 15, end: 31, ids: [5, 3, 1], at: 6 },
    ]);
    expect(run.metrics.lateRecords).toBe(2);
  });

  it('with grace, an old record still opens a session of its own', async () => {
    const input = readings(0, 30, 17, 32);
    const run = await runTable({ readings: input, table: (keyed) => keyed.session(10, { grace: 5 }).collect() });
    expect(run.late).toEqual([]);
    expect(windowsOf(run.closed)).toEqual([
      { key: 'a', start: 0, end: 1, ids: [0], at: 1 },
      { key: 'a', start: 17, end: 18, ids: [2], at: 3 },
    ]);
  });

  it('keys have sessions of their own, in negative time too', async () => {
    const input = readings([-50, 'a'], [-45, 'b'], [-42, 'a'], [-20, 'b'], [-25, 'a'], [0, 'c']);
    const run = await runTable({ readings: input, table: (keyed) => keyed.session(10).collect() });
    const sorted = windowsOf(run.closed).sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.end - y.end));
    expect(sorted).toEqual([
      { key: 'a', start: -50, end: -41, ids: [0, 2], at: 3 },
      { key: 'a', start: -25, end: -24, ids: [4], at: 5 },
      { key: 'b', start: -45, end: -44, ids: [1], at: 3 },
      { key: 'b', start: -20, end: -19, ids: [3], at: 5 },
    ]);
  });
});

interface SessionCase {
  name: string;
  gap: number;
  grace: number;
  keys: number;
  count: number;
  start?: number;
  maxStep?: number;
  jitter?: number;
  flush?: 'idle';
}

const sessionCases: SessionCase[] = [
  { name: 'gap 2s, grace 0', gap: 2000, grace: 0, keys: 6, count: 1500 },
  { name: 'gap 2s, grace 3s', gap: 2000, grace: 3000, keys: 6, count: 1500 },
  { name: 'gap 500ms, grace 100ms, negative times', gap: 500, grace: 100, keys: 4, count: 1500, start: -300_000 },
  { name: 'gap 5s, long sessions with bridges', gap: 5000, grace: 1000, keys: 2, count: 1500, jitter: 8000 },
  { name: 'gap 20ms, dense duplicate timestamps', gap: 20, grace: 5, keys: 3, count: 1500, maxStep: 10, jitter: 60 },
  { name: 'gap 1s, 300 keys', gap: 1000, grace: 500, keys: 300, count: 3000 },
  { name: 'gap 2s, flushed by the idle timeout', gap: 2000, grace: 500, keys: 6, count: 800, flush: 'idle' },
];

describe('session windows against the reference', () => {
  for (const testCase of sessionCases) {
    it.each(SEEDS.slice(0, 6))(`${testCase.name} (seed %i)`, async (seed) => {
      const { gap, grace } = testCase;
      const maxStep = testCase.maxStep ?? 300;
      const result = await checkAgainstReference({
        readings: generate(seed, {
          count: testCase.count,
          keys: testCase.keys,
          start: testCase.start ?? 0,
          maxStep,
          jitter: testCase.jitter ?? 3000,
          lateBy: 30 * gap,
          pauseChance: 0.05,
          pause: 4 * gap,
        }),
        model: new SessionModel(gap, grace),
        table: (keyed) => keyed.session(gap, { grace }).collect(),
        flush: testCase.flush === 'idle' ? { idleAdvance: 5000 + gap + grace + 1 } : 'record',
        closeOf: (window) => window.end - 1 + gap + grace,
      });
      expect(result.differences).toEqual([]);
      expect(result.stats.windows).toBeGreaterThan(10);
      expect(result.stats.lateCalls).toBeGreaterThan(0);
    });
  }

  it.each(SEEDS.slice(0, 4))('onUpdate() after each record, for the session it joined (seed %i)', async (seed) => {
    const result = await checkAgainstReference({
      readings: generate(seed, { count: 600, keys: 4, jitter: 3000, pauseChance: 0.05, pause: 8000 }),
      model: new SessionModel(2000, 500),
      table: (keyed) => keyed.session(2000, { grace: 500 }).collect(),
      flush: 'record',
      updates: true,
    });
    expect(result.differences).toEqual([]);
    expect(result.stats.updates).toBeGreaterThan(500);
  });
});
