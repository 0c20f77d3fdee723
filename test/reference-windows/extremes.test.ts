/**
 * Windows far from the usual timestamps: huge forward gaps (up to 1e9 ms between records) and
 * timestamps around ±2^52 and 1.7e12. Every window kind must still close, report late records
 * and aggregate exactly as the brute-force reference (ref.ts) does.
 */
import { describe, expect, it } from 'vitest';
import { generate, specs } from './ref.ts';
import { diff, reference, run } from './harness.ts';

const AGGREGATIONS = ['count', 'min', 'max', 'mean', 'collect', 'aggregateWithoutMerge'];
const SPECS = specs(
  'tumbling 20 g7',
  'hopping 30/10 g5',
  'hopping 200/7 g0 (1 ms slices)',
  'sliding 20 g6',
  'session 15 g4',
  'count 4/2',
);

describe('windows against the reference: extreme timestamps and huge gaps', () => {
  for (const [name, spec] of SPECS) {
    it.each([41, 42, 43])(`${name}: huge forward gaps (up to 1e9 ms) (seed %i)`, async (seed) => {
      const readings = generate(seed, { count: 150, keys: ['a', 'b', 'c'], quantum: 5, maxStep: 3, jitter: 8, lateBy: 40, gapChance: 0.05, gap: 1e9 });
      const options = { spec, readings, aggregations: AGGREGATIONS, flush: 'record' as const };
      const result = await run(options);
      expect(diff(options, result, reference(options, result.input))).toEqual([]);
    });
    for (const start of [2 ** 52, -(2 ** 52), 1.7e12]) {
      it(`${name}: timestamps around ${start}`, async () => {
        const readings = generate(7, { count: 150, keys: ['a', 'b', 'c'], quantum: 5, maxStep: 3, jitter: 8, lateBy: 40, start });
        const options = { spec, readings, aggregations: AGGREGATIONS, flush: 'idle' as const };
        const result = await run(options);
        expect(diff(options, result, reference(options, result.input))).toEqual([]);
      });
    }
  }
});
