import { describe, expect, it } from 'vitest';
import { countAggregation } from '../aggregations.js';
import { StrategyDriver, type StrategyRun } from '../testing/strategy-driver.test-support.js';
import { Random, SEEDS, generate } from '../testing/window-reference.test-support.js';
import { countWindows } from './count.js';
import { sessionWindows } from './session.js';
import { slidingWindows } from './sliding.js';
import type { Bucket, WindowDefinition } from './strategy.js';
import { hoppingWindows, tumblingWindows } from './tumbling-hopping.js';

/**
 * State written before the window kinds had a file each must read back: every kind stores its
 * buckets byte for byte as the one shared encoder did, `[end, partial, own, count, start]` with
 * the sliding window state in `own` and the count window's record count in `count`.
 */
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytesOf = (json: string) => new TextEncoder().encode(json);

function formerEncoding(bucket: Bucket & { endingWindow?: string; count?: number }): string {
  return JSON.stringify([bucket.end, bucket.partial, bucket.endingWindow ?? null, bucket.count ?? null, bucket.start]);
}

const kinds: Array<[string, WindowDefinition]> = [
  ['tumbling', tumblingWindows(1000, { grace: 200 })],
  ['hopping', hoppingWindows(2500, 1000, { grace: 300 })],
  ['sliding', slidingWindows(2000, { grace: 200 })],
  ['session', sessionWindows(700, { grace: 100 })],
  ['count', countWindows(5, 2)],
];

describe('bucket bytes', () => {
  it.each([
    ['tumbling', tumblingWindows(1000), '[2000,[[1500,3,{"id":3}],[1999,4,{"id":4}]],null,null,1000]', { start: 1000, end: 2000 }],
    ['hopping', hoppingWindows(2500, 1000), '[-1000,7,null,null,-2000]', { start: -2000, end: -1000, partial: 7 }],
    ['sliding', slidingWindows(2000), '[11,[[10,0,"a"]],"pending",null,10]', { start: 10, end: 11, endingWindow: 'pending' }],
    ['sliding', slidingWindows(2000), '[11,5,"emitted",null,10]', { start: 10, end: 11, partial: 5, endingWindow: 'emitted' }],
    ['sliding', slidingWindows(2000), '[11,5,"none",null,10]', { endingWindow: 'none' }],
    ['session', sessionWindows(700), '[31,[2,3],null,null,0]', { start: 0, end: 31, partial: [2, 3] }],
    ['count', countWindows(3, 1), '[0,[[5,0,"x"],[7,1,"y"]],null,2,0]', { start: 0, end: 0, count: 2 }],
  ] as const)('%s: reads %s as written before, and writes it back the same', (_kind, window, stored, expected) => {
    const driver = new StrategyDriver(window);
    const bucket = driver.strategy.decode(bytesOf(stored));
    expect(bucket).toMatchObject({ ...expected, stored: true });
    expect(text(driver.strategy.encode(bucket))).toBe(stored);
  });

  for (const [name, window] of kinds) {
    it.each(SEEDS.slice(0, 4))(`${name}: every bucket a run makes is stored as the former encoder stored it (seed %i)`, (seed) => {
      for (const aggregation of [undefined, countAggregation<unknown>()]) {
        const driver = new StrategyDriver(window, aggregation);
        const run: StrategyRun = { closed: [], late: [], lateRecords: 0, updates: [] };
        const restarts = new Random(seed);
        let checked = 0;
        const different: Array<[string, string]> = [];
        for (const [index, reading] of generate(seed, { count: 300, keys: 3, jitter: 3000 }).entries()) {
          driver.send(reading, index, run);
          for (const state of driver.keys.values()) {
            for (const bucket of state.buckets) {
              const [now, before] = [text(driver.strategy.encode(bucket)), formerEncoding(bucket)];
              if (now !== before) different.push([now, before]);
              checked++;
            }
          }
          if (restarts.chance(0.05)) driver.restart();
        }
        expect(different.slice(0, 3)).toEqual([]);
        expect(checked).toBeGreaterThan(100);
      }
    });
  }
});
