/**
 * Every window kind and every aggregation on one partition, against the brute-force reference
 * (ref.ts): closed windows with their values and the record after which each closed, the output
 * topic, every onLate call and the lateRecords metric. The last windows close either by a
 * far-future record or by the idle timeout.
 */
import { describe, expect, it } from 'vitest';
import { generate, specs, WITH_AND_WITHOUT_GRACE } from './ref.ts';
import { diff, reference, run } from './harness.ts';

const ALL_AGGREGATIONS = ['count', 'sum', 'min', 'max', 'mean', 'collect', 'reduce', 'aggregate', 'aggregateWithoutMerge'];

const SPECS = specs(
  ...WITH_AND_WITHOUT_GRACE,
  // Graces on the 5 ms grid, so that records land exactly on end + grace.
  'tumbling 20 g10',
  'hopping 30/10 g5',
  'sliding 20 g4',
  'sliding 15 g9',
  'session 15 g5',
  'session 10 g0',
  'count 4/2',
  'count 3/3',
  'count 2/3',
);

const SEEDS = [101, 202, 303, 404, 505, 606];

describe('windows against the reference: every kind and aggregation, one partition', () => {
  for (const [name, spec] of SPECS) {
    for (const flush of ['record', 'idle'] as const) {
      it.each(SEEDS)(`${name}, flush by ${flush} (seed %i)`, async (seed) => {
        const readings = generate(seed, { count: 220, keys: ['a', 'b', 'c'], quantum: 5, maxStep: 3, jitter: 8, lateBy: 40, start: seed % 2 ? -500 : 0 });
        const options = { spec, readings, aggregations: ALL_AGGREGATIONS, flush };
        const result = await run(options);
        const expected = reference(options, result.input);
        expect(diff(options, result, expected)).toEqual([]);
        // The input is long enough to close windows, so the comparison is not vacuous.
        expect(expected.closed.length).toBeGreaterThan(5);
      });
    }
  }
});
