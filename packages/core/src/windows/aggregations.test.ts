import { describe, expect, it } from 'vitest';
import { createApp, type KeyedStream, type WindowedStream } from '../index.js';
import { TestDriver } from '../testing/index.js';
import {
  SEEDS,
  CountModel,
  HoppingModel,
  Random,
  SessionModel,
  SlidingModel,
  byTimeThenArrival,
  collectedIds,
  generate,
  simulate,
  withFlush,
  type Reading,
  type WindowModel,
} from '../testing/window-reference.test-support.js';
import { closedDifference, lateDifference } from '../testing/window-compare.test-support.js';
import { runTables, type TableBuilder } from '../testing/window-runner.test-support.js';

/** A window kind over any keyed stream; `name` keeps the store names of the tables apart. */
interface Kind {
  model: () => WindowModel;
  window: <V>(keyed: KeyedStream<string, V>, name: string) => WindowedStream<string, V>;
  /** The slice a timestamp falls in, for kinds whose partials merge per slice in time order. */
  slice?: (ts: number) => number;
  closeOf?: (window: { start: number; end: number }) => number;
}

const kinds: Record<string, Kind> = {
  tumbling: {
    model: () => new HoppingModel(10_000, 10_000, 1000),
    window: (keyed, name) => keyed.tumbling(10_000, { grace: 1000, name }),
    slice: (ts) => Math.floor(ts / 10_000),
    closeOf: (window) => window.end + 1000,
  },
  hopping: {
    // slice = gcd(10s, 4s) = 2s
    model: () => new HoppingModel(10_000, 4000, 0),
    window: (keyed, name) => keyed.hopping(10_000, 4000, { name }),
    slice: (ts) => Math.floor(ts / 2000),
    closeOf: (window) => window.end,
  },
  sliding: {
    model: () => new SlidingModel(5000, 500, { forgetEmitted: true }),
    window: (keyed, name) => keyed.sliding(5000, { grace: 500, name }),
    slice: (ts) => ts,
    closeOf: (window) => window.end + 500,
  },
  session: {
    model: () => new SessionModel(1500, 300),
    window: (keyed, name) => keyed.session(1500, { grace: 300, name }),
  },
  count: {
    model: () => new CountModel(7, 3),
    window: (keyed, name) => keyed.countWindow(7, 3, { name }),
  },
};

interface Stats {
  n: number;
  sum: number;
  maxId: number;
}

interface AggregationCase {
  table: (kind: Kind, name: string) => TableBuilder;
  expected: (records: Reading[], kind: Kind) => unknown;
  actual?: (value: unknown) => unknown;
  /** Tables over mapped values cannot name the late record. */
  mapped?: boolean;
  /** Only for kinds that merge slices in time order. */
  sliced?: boolean;
}

const values = (records: readonly Reading[]) => records.map((record) => record.v);
const sum = (records: readonly Reading[]) => values(records).reduce((total, value) => total + value, 0);

const aggregations: Record<string, AggregationCase> = {
  count: { table: (kind, name) => (keyed) => kind.window(keyed, name).count(), expected: (records) => records.length },
  sum: { table: (kind, name) => (keyed) => kind.window(keyed, name).sum((reading) => reading.v), expected: sum },
  'sum-of-values': { table: (kind, name) => (keyed) => kind.window(keyed.map((reading) => reading.v), name).sum(), expected: sum, mapped: true },
  min: { table: (kind, name) => (keyed) => kind.window(keyed, name).min((reading) => reading.v), expected: (records) => Math.min(...values(records)) },
  max: { table: (kind, name) => (keyed) => kind.window(keyed, name).max((reading) => reading.v), expected: (records) => Math.max(...values(records)) },
  'min-of-values': { table: (kind, name) => (keyed) => kind.window(keyed.map((reading) => reading.v), name).min(), expected: (records) => Math.min(...values(records)), mapped: true },
  'max-of-values': { table: (kind, name) => (keyed) => kind.window(keyed.map((reading) => reading.v), name).max(), expected: (records) => Math.max(...values(records)), mapped: true },
  mean: { table: (kind, name) => (keyed) => kind.window(keyed, name).mean((reading) => reading.v), expected: (records) => sum(records) / records.length },
  'mean-of-values': { table: (kind, name) => (keyed) => kind.window(keyed.map((reading) => reading.v), name).mean(), expected: (records) => sum(records) / records.length, mapped: true },
  collect: { table: (kind, name) => (keyed) => kind.window(keyed, name).collect(), expected: collectedIds, actual: (value) => (value as Reading[]).map((reading) => reading.id) },
  reduce: {
    // Associative and commutative: the largest value, ties to the later id.
    table: (kind, name) => (keyed) => kind.window(keyed, name).reduce((a, b) => (b.v > a.v || (b.v === a.v && b.id > a.id) ? b : a)),
    expected: (records) => [...records].sort((a, b) => b.v - a.v || b.id - a.id)[0]!.id,
    actual: (value) => (value as Reading).id,
  },
  'aggregate-with-merge': {
    table: (kind, name) => (keyed) =>
      kind.window(keyed, name).aggregate<Stats>({
        init: () => ({ n: 0, sum: 0, maxId: -1 }),
        add: (stats, reading) => ({ n: stats.n + 1, sum: stats.sum + reading.v, maxId: Math.max(stats.maxId, reading.id) }),
        merge: (a, b) => ({ n: a.n + b.n, sum: a.sum + b.sum, maxId: Math.max(a.maxId, b.maxId) }),
      }),
    expected: (records) => ({ n: records.length, sum: sum(records), maxId: Math.max(...records.map((record) => record.id)) }),
  },
  'aggregate-merge-order': {
    // Not commutative: shows the documented order, slices in time order, each slice in arrival order.
    table: (kind, name) => (keyed) =>
      kind.window(keyed, name).aggregate<number[]>({
        init: () => [],
        add: (ids, reading) => [...ids, reading.id],
        merge: (earlier, later) => [...earlier, ...later],
      }),
    expected: (records, kind) => [...records].sort((a, b) => kind.slice!(a.ts) - kind.slice!(b.ts) || a.id - b.id).map((record) => record.id),
    sliced: true,
  },
  'aggregate-without-merge': {
    // Not commutative: folded with add in timestamp order, ties in arrival order.
    table: (kind, name) => (keyed) => kind.window(keyed, name).aggregate<string>({ init: () => '', add: (text, reading) => `${text}${reading.id},` }),
    expected: (records) => byTimeThenArrival(records).map((record) => `${record.id},`).join(''),
  },
};

describe('aggregations on every window kind against the reference', () => {
  for (const [kindName, kind] of Object.entries(kinds)) {
    it.each(SEEDS.slice(0, 4))(`${kindName}: count, sum, min, max, mean, collect, reduce, aggregate (seed %i)`, async (seed) => {
      const readings = withFlush(generate(seed, { count: 800, keys: 4, jitter: 4000, lateBy: 30_000, pauseChance: 0.03, pause: 6000 }));
      const reference = simulate(kind.model(), readings);
      const cases = Object.entries(aggregations).filter(([, aggregation]) => !aggregation.sliced || kind.slice);
      const tables: Record<string, TableBuilder> = {};
      for (const [name, aggregation] of cases) tables[name] = aggregation.table(kind, `${kindName}-${name}`);
      const run = await runTables({ readings, tables });
      expect(reference.closed.length).toBeGreaterThan(20);
      for (const [name, aggregation] of cases) {
        const table = run.tables[name]!;
        const difference = closedDifference(
          table.closed,
          reference.closed,
          (records) => aggregation.expected(records, kind),
          aggregation.actual ?? ((value) => value),
          kind.closeOf,
        );
        expect({ name, difference }).toEqual({ name, difference: undefined });
        if (!aggregation.mapped) expect({ name, difference: lateDifference(table.late, reference.late) }).toEqual({ name, difference: undefined });
        else expect(table.late.length).toBe(reference.late.length);
      }
      expect(run.metrics.lateRecords).toBe(reference.lateRecords * cases.length);
    });
  }
});

describe('handler results', () => {
  it.each(SEEDS.slice(0, 4))('a value, an array, undefined or a promise of them: records in window order, async or not (seed %i)', async (seed) => {
    const random = new Random(seed * 7919);
    const readings = withFlush(generate(seed, { count: 600, keys: 5, jitter: 3000 }));
    const reference = simulate(new HoppingModel(4000, 2000, 500), readings);
    const app = createApp({ id: 'handler-results', idleTimeout: false });
    const calls: Array<{ key: string; end: number; results: unknown[] }> = [];
    const hops = () => new Promise<void>((resolve) => setImmediate(resolve));
    app
      .from<Reading>('in', { timestamp: (reading) => reading.ts })
      .keyBy((reading) => reading.k)
      .hopping(4000, 2000, { grace: 500 })
      .count()
      .onClose((window) => {
        const shape = random.int(0, 5);
        const one = { key: window.key, start: window.start, count: window.value };
        const many = [one, { ...one, copy: 1 }, { ...one, copy: 2 }];
        const results = shape === 0 || shape === 3 ? [] : shape === 1 || shape === 4 ? [one] : many;
        if (window.key !== '~flush') calls.push({ key: window.key, end: window.end, results });
        const output = shape === 0 || shape === 3 ? undefined : shape === 1 || shape === 4 ? one : many;
        if (shape < 3) return output;
        // Resolve after a random number of event-loop turns, so later windows often finish first.
        const delay = random.int(0, 6);
        return (async () => {
          for (let turn = 0; turn < delay; turn++) await hops();
          return output;
        })();
      })
      .to('out');
    const driver = await TestDriver.start(app);
    for (const reading of readings) await driver.send('in', reading, { key: reading.k, timestamp: reading.ts });
    const out = driver.read('out').filter((record) => record.key !== '~flush');
    await driver.stop();
    // The handler saw the reference's windows, in close order per key.
    expect(closedDifference(
      calls.map((call) => ({ key: call.key, start: call.end - 4000, end: call.end, value: undefined, at: 0 })),
      reference.closed.map((window) => ({ ...window, at: 0 })),
      () => undefined,
      () => undefined,
    )).toBeUndefined();
    // Outputs: every result of every window, in the order the windows came, keyed and stamped end - 1.
    const expected = calls.flatMap((call) => call.results.map((value) => ({ key: call.key, value, timestamp: call.end - 1 })));
    expect(out.map(({ key, value, timestamp }) => ({ key, value, timestamp }))).toEqual(expected);
    expect(calls.some((call) => call.results.length === 3)).toBe(true);
  });
});
