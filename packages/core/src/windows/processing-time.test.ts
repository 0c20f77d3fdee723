import { describe, expect, it } from 'vitest';
import { createApp } from '../index.js';
import { TestDriver } from '../testing/index.js';
import {
  SEEDS,
  CountModel,
  HoppingModel,
  Random,
  SessionModel,
  SlidingModel,
  idsOf,
  simulate,
  type Reading,
  type WindowModel,
} from '../testing/window-reference.test-support.js';
import { closedDifference } from '../testing/window-compare.test-support.js';
import { runTable, type TableBuilder } from '../testing/window-runner.test-support.js';

/**
 * Readings sent at random clock gaps (often 0: equal timestamps); `ts` is the clock at arrival,
 * which is what processing time uses. `gaps[i]` is the clock advance before reading i.
 */
function arrivals(seed: number, count: number, keys: number, maxGap: number): { readings: Reading[]; gaps: number[] } {
  const random = new Random(seed);
  const readings: Reading[] = [];
  const gaps: number[] = [];
  let clock = 0;
  for (let id = 0; id < count; id++) {
    const gap = random.chance(0.3) ? 0 : random.chance(0.05) ? random.int(0, 20 * maxGap) : random.int(1, maxGap);
    clock += gap;
    gaps.push(gap);
    readings.push({ id, k: `k${random.int(0, keys - 1)}`, ts: clock, v: random.int(-100, 100) });
  }
  return { readings, gaps };
}

interface ProcessingCase {
  name: string;
  model: () => WindowModel;
  table: TableBuilder;
  /** Close time (clock) of a window; undefined for count windows, emitted on arrival. */
  closeOf?: (window: { start: number; end: number }) => number;
  /** Clock advance that closes everything after the last record. */
  tail: number;
}

const cases: ProcessingCase[] = [
  { name: 'tumbling 1s, grace 0', model: () => new HoppingModel(1000, 1000, 0), table: (keyed) => keyed.tumbling('1s').collect(), closeOf: (window) => window.end, tail: 1001 },
  {
    name: 'hopping 1s/400ms, grace 150ms',
    model: () => new HoppingModel(1000, 400, 150),
    table: (keyed) => keyed.hopping(1000, 400, { grace: 150 }).collect(),
    closeOf: (window) => window.end + 150,
    tail: 1151,
  },
  {
    name: 'sliding 500ms, grace 100ms',
    model: () => new SlidingModel(500, 100),
    table: (keyed) => keyed.sliding(500, { grace: 100 }).collect(),
    closeOf: (window) => window.end + 100,
    tail: 601,
  },
  {
    name: 'session gap 300ms, grace 50ms',
    model: () => new SessionModel(300, 50),
    table: (keyed) => keyed.session(300, { grace: 50 }).collect(),
    closeOf: (window) => window.end - 1 + 300 + 50,
    tail: 351,
  },
  { name: 'countWindow(4, 2)', model: () => new CountModel(4, 2), table: (keyed) => keyed.countWindow(4, 2).collect(), tail: 0 },
];

describe('processing time against the reference', () => {
  for (const testCase of cases) {
    it.each(SEEDS.slice(0, 4))(`${testCase.name}: timestamps are arrival clock times, windows close on timers at exactly their close time (seed %i)`, async (seed) => {
      const { readings, gaps } = arrivals(seed, 500, 3, 60);
      const reference = simulate(testCase.model(), readings, { flushAtEnd: true });
      // The extractor's timestamps must be ignored: send nonsense in `ts`.
      const sent = readings.map((reading) => ({ ...reading, ts: -reading.id * 1_000_003 }));
      const run = await runTable({
        readings: sent,
        table: testCase.table,
        app: { time: 'processing' },
        advanceBefore: (index) => gaps[index]!,
        advanceAfter: testCase.tail,
      });
      // A window closing at the clock time a record arrives closes (on its timer) just before it:
      // compare contents and clock times, not the record index.
      const withoutIndex = <T extends { at: number }>(windows: readonly T[]) => windows.map((window) => ({ ...window, at: 0 }));
      expect(closedDifference(withoutIndex(run.closed), withoutIndex(reference.closed), undefined, undefined, testCase.closeOf)).toBeUndefined();
      // Count windows close on the arrival of their last record, the latest one in processing time.
      const expectedNow = testCase.closeOf ?? ((window: { end: number }) => window.end - 1);
      expect(run.closed.map((window) => ({ key: window.key, end: window.end, now: window.now }))).toEqual(
        run.closed.map((window) => ({ key: window.key, end: window.end, now: expectedNow(window) })),
      );
      expect(run.late).toEqual([]);
      expect(run.metrics.lateRecords).toBe(0);
      expect(run.closed.length).toBeGreaterThan(20);
    });
  }
});

describe('processing time: exact cases', () => {
  it('tumbling(1s): records at clock 0 and 300 close at clock 1000 exactly, not before', async () => {
    const app = createApp({ id: 'processing-exact', time: 'processing' });
    const closed: Array<{ start: number; end: number; ids: number[]; now: number }> = [];
    const clock = { now: (): number => Number.NaN };
    app
      .from<Reading>('in')
      .keyBy((reading) => reading.k)
      .tumbling('1s')
      .collect()
      .onClose((window) => void closed.push({ start: window.start, end: window.end, ids: idsOf(window.value), now: clock.now() }))
      .to('out');
    const driver = await TestDriver.start(app, { startTime: 0 });
    clock.now = () => driver.now();
    await driver.send('in', { id: 0, k: 'a', ts: 0, v: 0 }, { key: 'a', timestamp: 123_456 });
    await driver.advanceTime(300);
    await driver.send('in', { id: 1, k: 'a', ts: 0, v: 0 }, { key: 'a' });
    await driver.advanceTime(699);
    expect(closed).toEqual([]);
    await driver.advanceTime(1);
    expect(closed).toEqual([{ start: 0, end: 1000, ids: [0, 1], now: 1000 }]);
    // A record at clock 1000 goes to the next window.
    await driver.send('in', { id: 2, k: 'a', ts: 0, v: 0 }, { key: 'a' });
    await driver.advanceTime(1000);
    expect(closed[1]).toEqual({ start: 1000, end: 2000, ids: [2], now: 2000 });
    await driver.stop();
  });

  it('a session closes at last + gap + grace on the clock, extended by each arrival', async () => {
    const readings = [0, 1, 2].map((id) => ({ id, k: 'a', ts: 0, v: id }));
    const run = await runTable({
      readings,
      table: (keyed) => keyed.session(500, { grace: 100 }).collect(),
      app: { time: 'processing' },
      advanceBefore: (index) => [1000, 400, 450][index]!,
      advanceAfter: 10_000,
    });
    // Arrivals at 1000, 1400, 1850: one session [1000, 1851), closing at 1850 + 600 = 2450.
    expect(run.closed.map((window) => [window.start, window.end, idsOf(window.value), window.now])).toEqual([[1000, 1851, [0, 1, 2], 2450]]);
  });
});
