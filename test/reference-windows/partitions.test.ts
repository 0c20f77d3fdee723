/**
 * Windows on 2 and 3 partitions: each task keeps its own stream time, so a window closes by the
 * records of its own partition only. The input is keyed by the window key, or by another key so
 * that the engine repartitions it. The reference routes records with Kafka's default
 * partitioner, written independently in ref.ts and checked here against the exported one.
 */
import { describe, expect, it } from 'vitest';
import { partitionForKey } from '@eddy/core';
import { generate, partitionOf, specs, ONE_PER_KIND } from './ref.ts';
import { diff, reference, run } from './harness.ts';

const AGGREGATIONS = ['count', 'mean', 'collect', 'aggregateWithoutMerge'];
const SPECS = specs(...ONE_PER_KIND, 'count 4/2');
const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'sensor-1', 'sensor-22'];

describe('windows against the reference: partitions, stream time per task', () => {
  it("the reference's murmur2 partitioner agrees with the exported partitionForKey", () => {
    for (const key of KEYS) for (const partitions of [2, 3, 4]) expect(partitionOf(key, partitions)).toBe(partitionForKey(new TextEncoder().encode(key), partitions));
  });

  for (const [name, spec] of SPECS) {
    for (const partitions of [2, 3]) {
      for (const route of ['same-key', 'repartition'] as const) {
        for (const flush of ['record', 'idle'] as const) {
          it.each([11, 12, 13])(`${name}, ${partitions} partitions, ${route}, flush ${flush} (seed %i)`, async (seed) => {
            const readings = generate(seed, { count: 200, keys: KEYS, quantum: 5, maxStep: 3, jitter: 8, lateBy: 40 });
            const inputKey = route === 'same-key' ? undefined : (reading: { id: number }) => `in-${reading.id}`;
            const options = { spec, readings, aggregations: AGGREGATIONS, flush, partitions, inputKey };
            const result = await run(options);
            expect(diff(options, result, reference(options, result.input))).toEqual([]);
          });
        }
      }
    }
  }
});
