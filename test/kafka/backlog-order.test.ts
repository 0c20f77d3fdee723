/**
 * An app started on input already full, on a real broker, whose keyBy moves records between
 * partitions: each fetch holds every partition's backlog, and delivering them in turn would put
 * one partition's records far ahead of another's in the repartition topic, so windows downstream
 * would close before the others' records came (about two thirds of them late, before the fix).
 * The fetch loop delivers the partitions in step in event time (packages/kafka/src/fetch-loop.ts):
 * no record is late for the backlog's order, and every window equals a brute-force reference.
 * Small fetches (`maxBytesPerPartition`) make the loop hold records across fetches, partitions
 * of uneven densities make one run out long before another, and a stop in the middle of the
 * backlog leaves held records undelivered for the next instance.
 */
import { createApp, type App } from '@eddy/core';
import { mulberry32 } from '@eddy/core/testing';
import { kafkaTransport } from '@eddy/kafka';
import { afterAll, expect, it } from 'vitest';
import { replaySeed } from '../replay-seed.ts';
import { windowReference } from '../window-reference.ts';
import { describeKafka, uniqueName } from './broker.ts';
import { createTopics, deleteAppTopics, gatherTopic, recordingLogger, testAdmin, testProducer, waitFor, type Gathered } from './helpers.ts';

interface Click { seq: number; user: string; ts: number }
interface Window { key: string; start: number; seqs: number[] }

interface Scenario {
  readonly partitions: number;
  readonly graceMs: number;
  /** Event time from the value (the record timestamps then say nothing). */
  readonly extractor: boolean;
  /** The chance that a click swaps places with the next one. */
  readonly disorder: number;
  readonly guarantee: 'at-least-once' | 'exactly-once';
  /** Per partition, its share of the clicks (default: even, by key). */
  readonly weights?: readonly number[];
  /** The consumer's fetch size per partition (default: the transport's, 1 MiB). */
  readonly fetchBytes?: number;
  /** Stop the app once this share of the windows is out, and go on with a new instance. */
  readonly restartAt?: number;
}

const SIZE = 5_000;
const CLICKS = 3_000;
const SPAN_MS = 120_000;
const seed = replaySeed(20261208);

/** `CLICKS` clicks over `SPAN_MS` of event time from `base`, adjacent ones swapped with probability `disorder`. */
function clicks(random: () => number, base: number, disorder: number): Click[] {
  const times = Array.from({ length: CLICKS }, (_, index) => base + Math.floor((index * SPAN_MS) / CLICKS));
  for (let index = 0; index < times.length - 1; index++) if (random() < disorder) [times[index], times[index + 1]] = [times[index + 1]!, times[index]!];
  return times.map((ts, seq) => ({ seq, user: `u${Math.floor(random() * 8)}`, ts }));
}

/** Each window's clicks, by brute force. */
const reference = (input: readonly Click[]) => windowReference(input, 'tumbling', { size: SIZE, slide: SIZE, gap: 0 });

/** A partition for each click, drawn by the weights. */
function partitionsFor(random: () => number, count: number, weights: readonly number[]): number[] {
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  return Array.from({ length: count }, () => {
    let draw = random() * total;
    const partition = weights.findIndex((weight) => (draw -= weight) < 0);
    return partition < 0 ? weights.length - 1 : partition;
  });
}

describeKafka('a backlog whose keyBy moves records between partitions, on Kafka', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  const scenarios: Array<[string, Scenario]> = [
    ['3 partitions, grace 10 s, record timestamps', { partitions: 3, graceMs: 10_000, extractor: false, disorder: 0.3, guarantee: 'at-least-once' }],
    ['4 partitions, grace 10 s, a timestamp extractor', { partitions: 4, graceMs: 10_000, extractor: true, disorder: 0.3, guarantee: 'at-least-once' }],
    ['3 partitions, grace 10 s, exactly-once (a producer per task)', { partitions: 3, graceMs: 10_000, extractor: false, disorder: 0.3, guarantee: 'exactly-once' }],
    ['4 partitions, grace 10 s, a timestamp extractor, exactly-once', { partitions: 4, graceMs: 10_000, extractor: true, disorder: 0.3, guarantee: 'exactly-once' }],
    ['3 partitions, grace 0, in order', { partitions: 3, graceMs: 0, extractor: false, disorder: 0, guarantee: 'at-least-once' }],
    [
      '4 partitions of uneven densities (one empty), fetches of 2 KiB, grace 10 s',
      { partitions: 4, graceMs: 10_000, extractor: false, disorder: 0.3, guarantee: 'at-least-once', weights: [10, 1, 0, 3], fetchBytes: 2_048 },
    ],
    [
      '3 partitions, fetches of 2 KiB, grace 0, in order, exactly-once',
      { partitions: 3, graceMs: 0, extractor: false, disorder: 0, guarantee: 'exactly-once', fetchBytes: 2_048 },
    ],
    [
      '3 partitions, fetches of 4 KiB, stopped a third of the way and started again, grace 10 s',
      { partitions: 3, graceMs: 10_000, extractor: false, disorder: 0.3, guarantee: 'at-least-once', fetchBytes: 4_096, restartAt: 1 / 3 },
    ],
  ];

  for (const [name, scenario] of scenarios) {
    it(`${name}: no record is late, every window equals the reference (seed ${seed})`, async () => {
      const prefix = uniqueName('eddy-backlog');
      const topics = { clicks: `${prefix}-clicks`, out: `${prefix}-out` };
      const appId = `${prefix}-app`;
      await createTopics(brokers, [
        { name: topics.clicks, partitions: scenario.partitions },
        { name: topics.out, partitions: 1 },
      ]);
      const random = mulberry32(seed);
      // An hour back: the broker refuses timestamps more than an hour ahead of its clock.
      const base = Math.floor((Date.now() - 3_600_000) / SIZE) * SIZE;
      const input = clicks(random, base, scenario.disorder);
      const partitions = scenario.weights ? partitionsFor(random, input.length, scenario.weights) : undefined;
      const producer = testProducer(brokers);
      const logger = recordingLogger();
      const apps: App[] = [];
      const build = (): App => {
        const consumer = scenario.fetchBytes ? { consumer: { maxBytesPerPartition: scenario.fetchBytes } } : {};
        const app = createApp({ id: appId, transport: kafkaTransport({ brokers, ...consumer }), idleTimeout: false, logger, guarantee: scenario.guarantee, commitInterval: '200ms' });
        app
          .from<Click>(topics.clicks, scenario.extractor ? { timestamp: (click) => click.ts } : {})
          .keyBy((click) => click.user)
          .tumbling(SIZE, { grace: scenario.graceMs })
          .aggregate({ init: () => [] as number[], add: (seqs: number[], click) => [...seqs, click.seq], merge: (a: number[], b: number[]) => [...a, ...b] })
          .onClose(({ key, start, value }): Window => ({ key, start, seqs: [...value].sort((a, b) => a - b) }))
          .to(topics.out);
        apps.push(app);
        return app;
      };
      const expected = reference(input);
      const closer = base + 1_000_000;
      let out: { records: Gathered[]; stop(): Promise<void> } | undefined;
      /** The windows written so far, the last of each (a replay after the restart may write one again). */
      const windows = (): Map<string, number[]> => {
        const got = new Map<string, number[]>();
        for (const record of out!.records) {
          const window = JSON.parse(record.value!) as Window;
          if (window.start < closer - SIZE) got.set(`${window.key}@${window.start}@${window.start + SIZE}`, window.seqs);
        }
        return got;
      };
      try {
        // The whole input is in the topic before the app starts, keyed by seq (spread over the partitions) or in the partitions drawn.
        await producer.send(topics.clicks, input.map((click, index) => ({ key: String(click.seq), value: JSON.stringify(click), timestamp: scenario.extractor ? base : click.ts, ...(partitions ? { partition: partitions[index]! } : {}) })));
        out = await gatherTopic(brokers, topics.out);
        let app = build();
        await app.start();
        if (scenario.restartAt !== undefined) {
          await waitFor('a share of the windows', () => windows().size >= expected.size * scenario.restartAt!, { timeoutMs: 60_000, intervalMs: 5 });
          await app.stop();
          expect(app.metrics().lateRecords).toBe(0);
          app = build();
          await app.start();
        }
        // One record per user far ahead closes every window of the input.
        const users = [...new Set(input.map((click) => click.user))];
        await producer.send(topics.clicks, users.map((user, index) => ({ key: String(-1 - index), value: JSON.stringify({ seq: -1, user, ts: closer }), timestamp: scenario.extractor ? base : closer })));
        await waitFor(`${expected.size} windows`, () => windows().size >= expected.size, { timeoutMs: 60_000, explain: () => `${windows().size} windows, ${app.metrics().lateRecords} records late` });
        // A window whose result went out twice (replayed after the restart) settles on its last.
        await waitFor('every window equal to the reference', () => JSON.stringify([...windows()].sort()) === JSON.stringify([...expected].sort()), { timeoutMs: 10_000 }).catch(() => undefined);
        for (const each of apps) expect(each.metrics().lateRecords).toBe(0);
        expect(windows()).toEqual(expected);
      } finally {
        for (const each of apps) await each.stop();
        await out?.stop();
        await producer.close();
        await deleteAppTopics(admin, appId);
      }
    }, 180_000);
  }
});
