/**
 * Table–table and windowed stream–stream joins on a real broker, each across a clean restart with
 * the same id (memory state, so the restarted instance restores from the changelogs alone):
 * - an outer join of two tables (2 partitions each) with updates and deletes on both sides, its
 *   store checked against a reference outer join of the two maps before and after the restart;
 * - a left join of two streams re-keyed by sensor (`within: '2s', grace: '5s'`), its output checked
 *   against every pair of records of one sensor at most 2 s apart, plus each left record with no
 *   such partner once its window has closed. Repeats are allowed only as identical copies.
 */
import { createApp, partitionForKey, type App, type Table } from '@eddy/core';
import { mulberry32 } from '@eddy/core/testing';
import { kafkaTransport } from '@eddy/kafka';
import { afterAll, expect, it } from 'vitest';
import { replaySeed } from '../replay-seed.ts';
import { describeKafka, uniqueName } from './broker.ts';
import { allCommitted, createTopics, deleteAppTopics, gatherTopic, recordingLogger, testAdmin, testProducer, waitFor, type Gathered, type TestMessage } from './helpers.ts';

const seed = replaySeed(20260502);
const PARTITIONS = 2;

interface Left {
  a: number;
}
interface Right {
  b: string;
}
interface Outer {
  key: string;
  a: number | null;
  b: string | null;
}

interface Event {
  sensor: string;
  side: 'left' | 'right';
  seq: number;
  ts: number;
}
interface Paired {
  key: string;
  l: number;
  r: number | null;
}

/** Keys covering every partition of a topic of `partitions` (murmur2, as Kafka's partitioner puts them). */
function keysCovering(prefix: string, partitions: number, count: number): string[] {
  const keys = Array.from({ length: count }, (_, index) => `${prefix}${index}`);
  const covered = new Set(keys.map((key) => partitionForKey(new TextEncoder().encode(key), partitions)));
  expect(covered.size, 'the keys of the test cover every partition').toBe(partitions);
  return keys;
}

/** A null value is a tombstone: the producer's string serializer writes none for it. */
const changes = <V,>(map: Map<string, V>, updates: ReadonlyArray<[string, V | null]>): TestMessage[] => {
  for (const [key, value] of updates) {
    if (value === null) map.delete(key);
    else map.set(key, value);
  }
  return updates.map(([key, value]) => ({ key, value: (value === null ? null : JSON.stringify(value)) as string }));
};

describeKafka('windowed and table–table joins on Kafka', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  it('a table–table outer join matches a reference across a clean restart', async () => {
    const prefix = uniqueName('eddy-ttjoin');
    const topics = { left: `${prefix}-left`, right: `${prefix}-right` };
    const id = `${prefix}-app`;
    await createTopics(brokers, [
      { name: topics.left, partitions: PARTITIONS },
      { name: topics.right, partitions: PARTITIONS },
    ]);
    const keys = keysCovering('k', PARTITIONS, 7);
    const logger = recordingLogger();
    const producer = testProducer(brokers);
    const leftMap = new Map<string, Left>();
    const rightMap = new Map<string, Right>();
    let running: { app: App; joined: Table<string, Outer> } | undefined;

    const start = async () => {
      const app = createApp({ id, transport: kafkaTransport({ brokers, logger }), idleTimeout: false, commitInterval: '300ms', logger });
      const joined = app
        .table<string, Left>(topics.left)
        .outerJoin(app.table<string, Right>(topics.right), (left, right, key): Outer => ({ key, a: left?.a ?? null, b: right?.b ?? null }));
      await app.start();
      running = { app, joined };
    };
    const stop = async () => {
      const stopping = running;
      running = undefined;
      await stopping?.app.stop();
    };
    const want = (key: string): Outer | undefined =>
      leftMap.has(key) || rightMap.has(key) ? { key, a: leftMap.get(key)?.a ?? null, b: rightMap.get(key)?.b ?? null } : undefined;
    const mismatches = async () => {
      const wrong: Array<{ key: string; want: Outer | undefined; got: unknown }> = [];
      for (const key of keys) {
        const got = await running!.app.store(running!.joined).get(key);
        if (JSON.stringify(got) !== JSON.stringify(want(key))) wrong.push({ key, want: want(key), got });
      }
      return wrong;
    };
    const waitForJoin = async (what: string) => {
      try {
        await waitFor(what, async () => (await mismatches()).length === 0, { timeoutMs: 20_000 });
      } catch (error) {
        console.log(`[joins-windowed] ${what}: mismatches`, JSON.stringify(await mismatches()));
        throw error;
      }
    };

    try {
      // k6 is in neither table at first; k4 only left, k5 only right.
      await producer.send(topics.left, changes(leftMap, [['k0', { a: 0 }], ['k1', { a: 1 }], ['k2', { a: 2 }], ['k3', { a: 3 }], ['k4', { a: 4 }]]));
      await producer.send(topics.right, changes(rightMap, [['k0', { b: 'x0' }], ['k1', { b: 'x1' }], ['k3', { b: 'x3' }], ['k5', { b: 'x5' }]]));
      await start();
      await waitForJoin('the initial outer join');
      // Updates on both sides, deletes on both: k1 leaves the right (left only now), k3 leaves both (no result).
      await producer.send(topics.left, changes(leftMap, [['k0', { a: 10 }], ['k3', null], ['k6', { a: 6 }]]));
      await producer.send(topics.right, changes(rightMap, [['k1', null], ['k2', { b: 'x2' }], ['k3', null], ['k0', { b: 'y0' }]]));
      await waitForJoin('the outer join after updates and deletes');
      await waitFor('inputs committed', () => allCommitted(admin, id, [topics.left, topics.right]));
      await stop();

      await start();
      expect(running!.app.metrics().restoredRecords, 'the restarted app restored its stores from the changelogs').toBeGreaterThan(0);
      expect(await mismatches(), 'the restarted app holds the join as it was').toEqual([]);
      // k3 comes back on the right only, k4 goes from the left (no result left), k5 gains a left, k2 leaves the left.
      await producer.send(topics.right, changes(rightMap, [['k3', { b: 'z3' }], ['k6', { b: 'z6' }]]));
      await producer.send(topics.left, changes(leftMap, [['k4', null], ['k5', { a: 55 }], ['k2', null]]));
      await waitForJoin('the outer join after the restart');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(await mismatches(), 'the join stays as the reference').toEqual([]);
      await stop();
      expect(logger.errors()).toEqual([]);
    } finally {
      await running?.app.stop().catch(() => undefined);
      await producer.close();
      await deleteAppTopics(admin, prefix);
    }
  }, 120_000);

  it(`a windowed stream–stream left join matches a reference across a clean restart (seed ${seed})`, async () => {
    const prefix = uniqueName('eddy-ssjoin');
    const topics = { left: `${prefix}-left`, right: `${prefix}-right`, out: `${prefix}-out` };
    const id = `${prefix}-app`;
    await createTopics(brokers, [
      { name: topics.left, partitions: PARTITIONS },
      { name: topics.right, partitions: PARTITIONS },
      { name: topics.out, partitions: PARTITIONS },
    ]);
    // s0..s3 on both sides, s4 only on the left (never matched until the far-future records), s5 only on the right.
    const sensors = keysCovering('s', PARTITIONS, 4);
    const all = [...sensors, 's4', 's5'];
    const random = mulberry32(seed);
    const logger = recordingLogger();
    const producer = testProducer(brokers);
    const output = await gatherTopic(brokers, topics.out);
    const events: Event[] = [];
    let seq = 0;
    let app: App | undefined;

    const start = async () => {
      app = createApp({ id, transport: kafkaTransport({ brokers, logger }), idleTimeout: false, commitInterval: '300ms', logger });
      app
        .from<Event>(topics.left)
        .keyBy((event) => event.sensor, { name: 'left-by-sensor' })
        .leftJoin(app.from<Event>(topics.right).keyBy((event) => event.sensor, { name: 'right-by-sensor' }), (l, r, key): Paired => ({ key, l: l.seq, r: r?.seq ?? null }), {
          within: '2s',
          grace: '5s',
        })
        .to(topics.out);
      await app.start();
    };
    const stop = async () => {
      const stopping = app;
      app = undefined;
      await stopping?.stop();
    };
    /**
     * Events of both sides in [from, from + spanMs), sorted by timestamp per side: the span stays
     * under the grace, so whatever order the task reads the two sides in, nothing is late.
     */
    const half = (from: number, spanMs: number, perSide: number): Event[] => {
      const made: Event[] = [];
      for (const side of ['left', 'right'] as const) {
        const pool = side === 'left' ? [...sensors, 's4'] : [...sensors, 's5'];
        const stamps = Array.from({ length: perSide }, () => from + Math.floor(random() * spanMs)).sort((a, b) => a - b);
        for (const ts of stamps) made.push({ sensor: pool[Math.floor(random() * pool.length)]!, side, seq: seq++, ts });
      }
      events.push(...made);
      return made;
    };
    const message = (event: Event): TestMessage => ({ key: `${event.side}-${event.seq}`, value: JSON.stringify(event), timestamp: event.ts });
    /** Sends both sides interleaved in timestamp order, a few records a request. */
    const send = async (batch: readonly Event[]) => {
      const ordered = [...batch].sort((a, b) => a.ts - b.ts || a.seq - b.seq);
      for (let index = 0; index < ordered.length; index += 4) {
        const chunk = ordered.slice(index, index + 4);
        await Promise.all((['left', 'right'] as const).map((side) => producer.send(topics[side], chunk.filter((event) => event.side === side).map(message))));
      }
    };
    /** Every pair at most 2 s apart, and (once windows close) each left event with no partner. */
    const reference = (of: readonly Event[], withUnmatched: boolean) => {
      const expected = new Map<string, { value: Paired; timestamp: number | undefined }>();
      for (const l of of.filter((event) => event.side === 'left')) {
        const partners = of.filter((r) => r.side === 'right' && r.sensor === l.sensor && Math.abs(r.ts - l.ts) <= 2_000);
        for (const r of partners) {
          const value = { key: l.sensor, l: l.seq, r: r.seq };
          expected.set(JSON.stringify(value), { value, timestamp: Math.max(l.ts, r.ts) });
        }
        if (partners.length === 0 && withUnmatched) {
          const value = { key: l.sensor, l: l.seq, r: null };
          expected.set(JSON.stringify(value), { value, timestamp: undefined });
        }
      }
      return expected;
    };
    const got = () => distinct(output.records);
    const waitForPairs = async (what: string, expected: Map<string, unknown>) => {
      await waitFor(`${what}: every expected record`, () => {
        const have = got();
        return [...expected.keys()].every((record) => have.has(record));
      });
      await waitFor(`${what}: inputs committed`, () => allCommitted(admin, id, [topics.left, topics.right, `${id}-left-by-sensor-repartition`, `${id}-right-by-sensor-repartition`]));
    };

    const base = Date.now() - 120_000;
    try {
      await start();
      const first = half(base, 4_500, 14);
      await send(first);
      // Pairs come as soon as the second record arrives; no window has closed yet (stream time < base + 4.5 s + 7 s).
      await waitForPairs('the first half', reference(first, false));
      await stop();

      await start();
      expect(app!.metrics().restoredRecords, 'the restarted app restored the join buffers').toBeGreaterThan(0);
      const second = half(base + 5_500, 4_500, 14);
      await send(second);
      await waitForPairs('the second half', reference(events, false));

      // Far-future records on both sides for every sensor: stream time passes every window in every partition.
      const far = base + 60_000;
      const closing = all.flatMap((sensor) => (['left', 'right'] as const).map((side): Event => ({ sensor, side, seq: seq++, ts: far })));
      events.push(...closing);
      await send(closing);
      const expected = reference(events, true);
      await waitForPairs('after the far-future records', expected);
      // Let anything that should not come (a repeat, a wrong pair, an early unmatched record) come.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await stop();

      const have = got();
      const missing = [...expected.keys()].filter((record) => !have.has(record));
      const unexpected = [...have.keys()].filter((record) => !expected.has(record));
      expect({ missing, unexpected }, `left join (seed ${seed})`).toEqual({ missing: [], unexpected: [] });
      const wrongTimestamps = [...expected].filter(([record, { timestamp }]) => timestamp !== undefined && !have.get(record)!.has(timestamp));
      expect(wrongTimestamps, 'a pair carries the later of its two timestamps').toEqual([]);
      // Repeats (at-least-once) only as identical copies: one timestamp per distinct record.
      const varied = [...have].filter(([, stamps]) => stamps.size > 1);
      expect(varied, 'repeats are identical').toEqual([]);
      const unmatched = [...expected.values()].filter(({ value }) => value.r === null).length;
      console.log(
        `[joins-windowed] ${expected.size} expected (${unmatched} unmatched left), ${output.records.length} records out (${output.records.length - have.size} repeated)`,
      );
      expect(unmatched, 'the run has unmatched left records').toBeGreaterThan(0);
      expect(logger.errors()).toEqual([]);
    } finally {
      await app?.stop().catch(() => undefined);
      await output.stop();
      await producer.close();
      await deleteAppTopics(admin, prefix);
    }
  }, 120_000);
});

/** Output records by content (key and value), with the timestamps each came with. */
function distinct(records: readonly Gathered[]): Map<string, Set<number>> {
  const byContent = new Map<string, Set<number>>();
  for (const record of records) {
    const value = JSON.parse(record.value!) as Paired;
    expect(value.key, 'the output is keyed by sensor').toBe(record.key);
    const content = JSON.stringify(value);
    const stamps = byContent.get(content) ?? new Set<number>();
    stamps.add(record.timestamp);
    byContent.set(content, stamps);
  }
  return byContent;
}
