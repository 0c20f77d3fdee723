/**
 * `WindowDefinition.lateFrom` against the strategies themselves: the backlog stepping
 * (runtime/delivery-alignment.ts) delivers records up to what cannot make a waiting record late,
 * so its idea of lateness must be the windows' own. For tumbling, hopping and sliding windows a
 * record is late exactly from `lateFrom(t)` on; for sessions, `lateFrom(t)` is when the session a
 * record at t would extend (one that ended a gap before it) closes.
 */
import { describe, expect, it } from 'vitest';
import { countAggregation } from '../aggregations.js';
import { Random } from '../testing/window-reference.test-support.js';
import { sessionWindows } from './session.js';
import { slidingWindows } from './sliding.js';
import { Buckets, type WindowDefinition } from './strategy.js';
import { hoppingWindows, tumblingWindows } from './tumbling-hopping.js';

const noChanges = { changed: () => undefined, removed: () => undefined };
const strategyOf = (window: WindowDefinition) => window.createStrategy(new Buckets(countAggregation() as never, noChanges));

/** Whether a record stamped `timestamp`, the first of its key, misses a window at stream time `streamTime`. */
function missesAt(window: WindowDefinition, timestamp: number, streamTime: number): boolean {
  const strategy = strategyOf(window);
  let missed = false;
  strategy.add(strategy.createKeyState('k', 'k'), 1, timestamp, 0, streamTime, () => (missed = true), () => undefined);
  return missed;
}

describe('WindowDefinition.lateFrom', () => {
  const random = new Random(20261207);
  const kinds: Array<[string, () => WindowDefinition]> = [
    ['tumbling', () => tumblingWindows(random.int(1, 5_000), { grace: random.int(0, 2) === 0 ? 0 : random.int(1, 4_000) })],
    ['hopping', () => {
      const size = random.int(2, 5_000);
      return hoppingWindows(size, random.int(1, size), { grace: random.int(0, 2) === 0 ? 0 : random.int(1, 4_000) });
    }],
    ['sliding', () => slidingWindows(random.int(1, 5_000), { grace: random.int(0, 2) === 0 ? 0 : random.int(1, 4_000) })],
  ];

  for (const [kind, make] of kinds) {
    it(`${kind}: a record is late exactly from lateFrom(timestamp) on`, () => {
      for (let round = 0; round < 300; round++) {
        const window = make();
        const timestamp = random.int(-500_000, 500_000);
        const lateFrom = window.lateFrom!(timestamp);
        expect(lateFrom).toBeGreaterThan(timestamp);
        expect([missesAt(window, timestamp, lateFrom - 1), missesAt(window, timestamp, lateFrom)], `${window.description} at ${timestamp}`).toEqual([false, true]);
      }
    });
  }

  it('session: lateFrom(timestamp) is when the session a record there would extend, ended a gap before it, closes', () => {
    for (let round = 0; round < 300; round++) {
      const gap = random.int(1, 5_000);
      const window = sessionWindows(gap, { grace: random.int(0, 2) === 0 ? 0 : random.int(1, 4_000) });
      const timestamp = random.int(-500_000, 500_000);
      const strategy = strategyOf(window);
      const state = strategy.createKeyState('k', 'k');
      strategy.add(state, 1, timestamp - gap, 0, -Infinity, () => undefined, () => undefined);
      expect(strategy.due(state), `${window.description} at ${timestamp}`).toBe(window.lateFrom!(timestamp));
      // And a record alone there is not late before it.
      expect(missesAt(window, timestamp, window.lateFrom!(timestamp) - 1)).toBe(false);
    }
  });
});
