/**
 * Windowed stream–stream joins (inner, left, outer) against a brute-force reference: random
 * records of two streams, out of order by less than the grace, in the TestDriver with 1 and 4
 * partitions. Every pair of one key within `within` is joined once; with left and outer joins a
 * record with no partner comes once, with undefined for the other side, when its window closes.
 */
import { describe, expect, it } from 'vitest';
import { createApp, memoryTransport, silentLogger } from '../index.js';
import { mulberry32, TestDriver } from '../testing/index.js';

type Mode = 'inner' | 'left' | 'outer';
interface Event {
  side: 'left' | 'right';
  id: number;
  key: string;
  timestamp: number;
}

const SEEDS = [5, 19, 1234];
const WITHIN = 500;
const GRACE = 300;

/** Events in arrival order: each at most 0.9 × grace older than anything before it. */
function randomEvents(seed: number, count: number): Event[] {
  const random = mulberry32(seed);
  let time = 10_000;
  const events = Array.from({ length: count }, (_, id) => {
    time += Math.floor(random() * 200);
    return { side: random() < 0.5 ? 'left' : 'right', id, key: `k${Math.floor(random() * 5)}`, timestamp: time } as Event;
  });
  const arrival = new Map(events.map((event) => [event, event.timestamp + random() * GRACE * 0.9]));
  return events.sort((a, b) => arrival.get(a)! - arrival.get(b)!);
}

const joiner = (left: Event | undefined, right: Event | undefined) => ({ left: left?.id ?? null, right: right?.id ?? null });

function reference(events: readonly Event[], mode: Mode): Array<{ key: string; value: unknown; timestamp: number }> {
  const out: Array<{ key: string; value: unknown; timestamp: number }> = [];
  const lefts = events.filter((event) => event.side === 'left');
  const rights = events.filter((event) => event.side === 'right');
  const partnered = new Set<Event>();
  for (const left of lefts) {
    for (const right of rights) {
      if (left.key !== right.key || Math.abs(left.timestamp - right.timestamp) > WITHIN) continue;
      partnered.add(left).add(right);
      out.push({ key: left.key, value: joiner(left, right), timestamp: Math.max(left.timestamp, right.timestamp) });
    }
  }
  for (const event of events) {
    if (partnered.has(event)) continue;
    if (event.side === 'left' && mode !== 'inner') out.push({ key: event.key, value: joiner(event, undefined), timestamp: event.timestamp });
    if (event.side === 'right' && mode === 'outer') out.push({ key: event.key, value: joiner(undefined, event), timestamp: event.timestamp });
  }
  return sorted(out);
}

const sorted = <T>(records: T[]) => records.map((record) => JSON.stringify(record)).sort().map((text) => JSON.parse(text) as T);

function joinApp(mode: Mode, id: string) {
  const app = createApp({ id, logger: silentLogger, idleTimeout: '1s' });
  const lefts = app.from<Event>('lefts').keyBy((event) => event.key);
  const rights = app.from<Event>('rights').keyBy((event) => event.key);
  const options = { within: WITHIN, grace: GRACE };
  const joined = mode === 'inner' ? lefts.join(rights, joiner, options) : mode === 'left' ? lefts.leftJoin(rights, joiner, options) : lefts.outerJoin(rights, joiner, options);
  joined.to('joined');
  return app;
}

describe('windowed stream–stream join', () => {
  for (const partitions of [1, 4]) {
    for (const mode of ['inner', 'left', 'outer'] as const) {
      it(`joins every pair within reach once, and the unmatched once their window closes (${mode}, ${partitions} partition${partitions > 1 ? 's' : ''}, seeds ${SEEDS.join(', ')})`, async () => {
        for (const seed of SEEDS) {
          const events = randomEvents(seed, 300);
          const app = joinApp(mode, `stream-join-${mode}-${partitions}-${seed}`);
          const driver = await TestDriver.start(app, { partitions });
          for (const event of events) await driver.send(event.side === 'left' ? 'lefts' : 'rights', event, { key: `in-${event.id % 7}`, timestamp: event.timestamp });
          await driver.advanceTime('1h');
          const actual = sorted(driver.read('joined').map(({ key, value, timestamp }) => ({ key: key!, value, timestamp })));
          expect(actual, `seed ${seed}`).toEqual(reference(events, mode));
          expect(app.metrics().lateRecords, `seed ${seed}`).toBe(0);
          await driver.stop();
        }
      });
    }
  }

  it('a restarted app restores both buffers from the changelog and joins across the restart', async () => {
    const transport = memoryTransport({ defaultPartitions: 2 });
    const events = randomEvents(8, 300);
    const send = (driver: TestDriver, event: Event) => driver.send(event.side === 'left' ? 'lefts' : 'rights', event, { key: `in-${event.id % 7}`, timestamp: event.timestamp });
    const first = await TestDriver.start(joinApp('outer', 'stream-join-restart'), { transport });
    for (const event of events.slice(0, 150)) await send(first, event);
    await first.stop();
    const app = joinApp('outer', 'stream-join-restart');
    const again = await TestDriver.start(app, { transport });
    expect(app.metrics().restoredRecords).toBeGreaterThan(0);
    for (const event of events.slice(150)) await send(again, event);
    await again.advanceTime('1h');
    const actual = sorted(again.read('joined').map(({ key, value, timestamp }) => ({ key: key!, value, timestamp })));
    expect(actual).toEqual(reference(events, 'outer'));
    await again.stop();
  });

  it('a record with no partner is emitted when its window closes, never before', async () => {
    const app = joinApp('left', 'stream-join-timing');
    const driver = await TestDriver.start(app);
    const lone: Event = { side: 'left', id: 1, key: 'a', timestamp: 1_000 };
    await driver.send('lefts', lone, { timestamp: 1_000 });
    // Stream time at 1,000 + within + grace: the window is still open.
    await driver.send('rights', { side: 'right', id: 2, key: 'b', timestamp: 1_000 + WITHIN + GRACE }, { timestamp: 1_000 + WITHIN + GRACE });
    expect(driver.read('joined')).toEqual([]);
    await driver.send('rights', { side: 'right', id: 3, key: 'b', timestamp: 1_001 + WITHIN + GRACE }, { timestamp: 1_001 + WITHIN + GRACE });
    expect(driver.read('joined').map((record) => record.value)).toEqual([{ left: 1, right: null }]);
    // Now late: its window has closed.
    await driver.send('rights', { side: 'right', id: 4, key: 'a', timestamp: 1_000 }, { timestamp: 1_000 });
    expect(app.metrics().lateRecords).toBe(1);
    expect(driver.read('joined')).toHaveLength(1);
    await driver.stop();
  });

  it('needs { within } to join two streams, and describe() shows the join and its store', () => {
    const app = createApp({ id: 'stream-join-config', logger: silentLogger });
    const lefts = app.from<Event>('lefts').keyBy((event) => event.key);
    const rights = app.from<Event>('rights').keyBy((event) => event.key);
    expect(() => lefts.join(rights, joiner, {} as never)).toThrow(/give \{ within \}/);
    lefts.outerJoin(rights, joiner, { within: '5s', grace: '1s', name: 'pairs' }).to('out');
    expect(app.describe()).toMatch(/outerJoin within 5000ms, grace 1000ms \[store pairs\]/);
  });
});
