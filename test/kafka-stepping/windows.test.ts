/**
 * Windowed steps downstream of a re-keying keyBy on a Kafka backlog, against brute-force references:
 * hopping and session windows, two merged source topics with uneven densities and 1 KiB fetches,
 * a partition holding one far-future record, an empty partition, exactly-once input with aborted
 * transactions, a keyBy that moves nothing, live sends during the backlog, and a stop/restart under
 * exactly-once. Also: the offsets committed at the end reach the end of each input partition.
 */
import { createApp, type App } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { Producer, compatibilityPartitioner, stringSerializers } from '@platformatic/kafka';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from '../kafka/broker.ts';
import { allCommitted, createTopics, deleteAppTopics, recordingLogger, testAdmin, testProducer, waitFor, type TestMessage } from '../kafka/helpers.ts';
import { baseTime, clicks, delayedClicks, diff, disorder, GAP, reference, SIZE, SLIDE, windowReader, type Click, type Kind, type Win } from './harness.ts';

interface Source {
  readonly partitions: number;
  readonly extractor?: boolean;
  /** Per record: partition, or undefined (by key = seq). */
  readonly partitionOf?: (c: Click, index: number) => number;
  /** Key on the input topic (default String(seq)). */
  readonly keyOf?: (c: Click) => string;
}

interface Scenario {
  readonly kind: Kind;
  readonly graceMs: number;
  readonly guarantee: 'at-least-once' | 'exactly-once';
  readonly fetchBytes?: number;
  readonly count: number;
  readonly spanMs: number;
  readonly maxShift: number;
  readonly sources: readonly Source[];
  /** Extra records (already in the topic) not in the count, with their source index and partition. */
  readonly extra?: (base: number) => Array<{ source: number; click: Click; partition: number }>;
  /** Records of aborted transactions to add to source 0 (they must not show). */
  readonly aborted?: boolean;
  /** Send this share of the clicks (the later ones) only after the app started, in chunks. */
  readonly liveShare?: number;
  /** Stop once this share of windows is out, start a new instance. */
  readonly restartAt?: number;
  /** Pad values to this many characters. */
  readonly pad?: number;
  /** Send the clicks in sends of this many (one small record batch per partition each). */
  readonly chunk?: number;
  /** Instead of clicks(): input with an exact per-partition disorder, its partitions by seq. */
  readonly delayed?: { stepMs: number; delayMs: number; share: number };
}

const UNEVEN = (_c: Click, i: number) => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 3][i % 14]!;

describeKafka('stepping: windows downstream of a re-keying keyBy', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  const scenarios: Array<[string, Scenario]> = [
    ['hopping, 3 partitions, grace 6 s, disorder ≤ 3 s', { kind: 'hopping', graceMs: 6_000, guarantee: 'at-least-once', count: 3_000, spanMs: 120_000, maxShift: 60, sources: [{ partitions: 3 }] }],
    ['session, 4 partitions, grace 0, in order, 1 KiB fetches', { kind: 'session', graceMs: 0, guarantee: 'at-least-once', fetchBytes: 1_024, count: 2_500, spanMs: 200_000, maxShift: 0, sources: [{ partitions: 4 }] }],
    [
      'two merged topics (one by extractor), uneven densities, an empty partition, 1 KiB fetches, grace 0, in order, tumbling',
      {
        kind: 'tumbling', graceMs: 0, guarantee: 'at-least-once', fetchBytes: 1_024, count: 3_000, spanMs: 120_000, maxShift: 0, pad: 120,
        sources: [
          { partitions: 3, partitionOf: (_c, i) => [0, 0, 0, 0, 0, 0, 1, 0][i % 8]! },
          { partitions: 3, extractor: true, partitionOf: (_c, i) => [1, 1, 1, 2, 1, 1, 1, 1][i % 8]! },
        ],
      },
    ],
    [
      'one partition holds only one record 50 min ahead, hopping, grace 0, in order, 2 KiB fetches',
      {
        kind: 'hopping', graceMs: 0, guarantee: 'at-least-once', fetchBytes: 2_048, count: 3_000, spanMs: 120_000, maxShift: 0,
        sources: [{ partitions: 4, partitionOf: (_c, i) => i % 3 }],
        extra: (base) => [{ source: 0, click: { seq: 99_999, user: 'u1', ts: base + 50 * 60_000 }, partition: 3 }],
      },
    ],
    [
      'exactly-once input with aborted transactions, exactly-once app, 4 partitions, grace 4 s, disorder ≤ 2 s',
      { kind: 'tumbling', graceMs: 4_000, guarantee: 'exactly-once', count: 3_000, spanMs: 120_000, maxShift: 50, sources: [{ partitions: 4 }], aborted: true },
    ],
    [
      'a keyBy that moves nothing (input keyed by user), grace 0, in order, 3 partitions',
      { kind: 'tumbling', graceMs: 0, guarantee: 'at-least-once', count: 3_000, spanMs: 120_000, maxShift: 0, sources: [{ partitions: 3, keyOf: (c) => c.user }] },
    ],
    [
      'live sends while the backlog is worked (half preloaded), 4 partitions, grace 0, in order, 2 KiB fetches',
      { kind: 'tumbling', graceMs: 0, guarantee: 'at-least-once', fetchBytes: 2_048, count: 4_000, spanMs: 120_000, maxShift: 0, sources: [{ partitions: 4 }], liveShare: 0.5 },
    ],
    [
      'exactly-once, 4 partitions, grace 6 s, 2 KiB fetches, stopped 40% of the way and started again',
      { kind: 'tumbling', graceMs: 6_000, guarantee: 'exactly-once', fetchBytes: 2_048, count: 3_000, spanMs: 120_000, maxShift: 50, sources: [{ partitions: 4 }], restartAt: 0.4 },
    ],
    [
      'small batches (16 per send), 1 KiB fetches, 4 partitions of uneven densities (one empty), grace 0, in order',
      { kind: 'tumbling', graceMs: 0, guarantee: 'at-least-once', fetchBytes: 1_024, chunk: 16, count: 3_000, spanMs: 120_000, maxShift: 0, sources: [{ partitions: 4, partitionOf: UNEVEN }] },
    ],
    [
      'small batches, 1 KiB fetches, uneven densities, exactly-once, grace 4 s, disorder ≤ 2 s',
      { kind: 'tumbling', graceMs: 4_000, guarantee: 'exactly-once', fetchBytes: 1_024, chunk: 16, count: 3_000, spanMs: 120_000, maxShift: 50, sources: [{ partitions: 4, partitionOf: UNEVEN }] },
    ],
    [
      'small batches, 1 KiB fetches, uneven densities, grace 6 s, stopped 30% of the way and started again',
      { kind: 'hopping', graceMs: 6_000, guarantee: 'at-least-once', fetchBytes: 1_024, chunk: 16, count: 3_000, spanMs: 120_000, maxShift: 50, sources: [{ partitions: 4, partitionOf: UNEVEN }], restartAt: 0.3 },
    ],
    [
      'small batches, two merged topics (one by extractor), 1 KiB fetches, grace 0, in order, session',
      {
        kind: 'session', graceMs: 0, guarantee: 'at-least-once', fetchBytes: 1_024, chunk: 12, count: 2_400, spanMs: 200_000, maxShift: 0,
        sources: [
          { partitions: 3, partitionOf: (_c, i) => [0, 0, 0, 0, 0, 0, 1, 0][i % 8]! },
          { partitions: 3, extractor: true, partitionOf: (_c, i) => [1, 1, 1, 2, 1, 1, 1, 1][i % 8]! },
        ],
      },
    ],
    [
      'records larger than the 1 KiB fetch (1.5 KB values, 4 per send), 3 partitions, grace 0, in order',
      { kind: 'tumbling', graceMs: 0, guarantee: 'at-least-once', fetchBytes: 1_024, chunk: 4, pad: 1_500, count: 1_200, spanMs: 60_000, maxShift: 0, sources: [{ partitions: 3 }] },
    ],
    [
      'small batches, one partition holds only one record 50 min ahead, session, grace 0, exactly-once',
      {
        kind: 'session', graceMs: 0, guarantee: 'exactly-once', fetchBytes: 1_024, chunk: 16, count: 2_400, spanMs: 200_000, maxShift: 0,
        sources: [{ partitions: 4, partitionOf: (_c, i) => i % 3 }],
        extra: (base) => [{ source: 0, click: { seq: 99_999, user: 'u1', ts: base + 50 * 60_000 }, partition: 3 }],
      },
    ],
    [
      'sliding, 3 partitions, grace 4 s, disorder ≤ 2 s',
      { kind: 'sliding', graceMs: 4_000, guarantee: 'at-least-once', count: 2_400, spanMs: 120_000, maxShift: 40, sources: [{ partitions: 3 }] },
    ],
    [
      'each partition\'s own disorder exactly grace/2 (3 s, grace 6 s), 4 partitions, tumbling, at-least-once, small batches, 1 KiB fetches',
      { kind: 'tumbling', graceMs: 6_000, guarantee: 'at-least-once', fetchBytes: 1_024, chunk: 16, count: 4_000, spanMs: 0, maxShift: 0, sources: [{ partitions: 4 }], delayed: { stepMs: 100, delayMs: 3_000, share: 0.05 } },
    ],
    [
      'each partition\'s own disorder exactly grace/2 (2 s, grace 4 s), 4 partitions, session, exactly-once',
      { kind: 'session', graceMs: 4_000, guarantee: 'exactly-once', count: 3_000, spanMs: 0, maxShift: 0, sources: [{ partitions: 4 }], delayed: { stepMs: 60, delayMs: 2_000, share: 0.05 } },
    ],
  ];

  for (const [name, s] of scenarios) {
    it(`${name}: none late, every window equals the reference, offsets committed to the end`, async () => {
      const prefix = uniqueName('eddy-srw');
      const sourceTopics = s.sources.map((_src, i) => `${prefix}-in${i}`);
      const outTopic = `${prefix}-out`;
      const appId = `${prefix}-app`;
      await createTopics(brokers, [...s.sources.map((src, i) => ({ name: sourceTopics[i]!, partitions: src.partitions })), { name: outTopic, partitions: 1 }]);
      const base = baseTime();
      const made = s.delayed ? delayedClicks(5, base, s.count, s.sources[0]!.partitions, s.delayed.stepMs, s.delayed.delayMs, s.delayed.share) : undefined;
      const all = made ? made.clicks : clicks(7, base, s.count, s.spanMs, s.maxShift);
      // The contract's condition: grace at least twice the input's own disorder.
      expect(2 * disorder(all)).toBeLessThanOrEqual(s.graceMs);
      if (made) (s.sources[0] as { partitionOf?: (c: Click) => number }).partitionOf = (c) => made.partitionOf.get(c.seq) ?? 0;
      if (s.pad) for (const c of all) c.pad = 'x'.repeat(s.pad);
      const extra = s.extra?.(base) ?? [];
      const input = [...all, ...extra.map((e) => e.click)];
      const expected = reference(input, s.kind);
      const closerTs = base + 3_600_000 - 60_000;
      const reader = await windowReader(brokers, outTopic, closerTs - 10 * SIZE);
      const producer = testProducer(brokers);
      const logger = recordingLogger();
      const apps: App[] = [];
      const msg = (src: number, c: Click, index: number, partition?: number): TestMessage => {
        const source = s.sources[src]!;
        const p = partition ?? source.partitionOf?.(c, index);
        return { key: source.keyOf ? source.keyOf(c) : String(c.seq), value: JSON.stringify(c), timestamp: source.extractor ? base : c.ts, ...(p === undefined ? {} : { partition: p }) };
      };
      // Which source each click goes to: alternate when there are two.
      const sourceOf = (i: number) => (s.sources.length === 1 ? 0 : i % 2);
      const sendClicks = async (from: number, to: number): Promise<void> => {
        if (s.chunk && to - from > s.chunk) {
          for (let at = from; at < to; at += s.chunk) await sendClicks(at, Math.min(to, at + s.chunk));
          return;
        }
        for (let src = 0; src < s.sources.length; src++) {
          const batch = all.map((c, i) => ({ c, i })).filter(({ i }) => i >= from && i < to && sourceOf(i) === src).map(({ c, i }) => msg(src, c, i));
          await producer.send(sourceTopics[src]!, batch);
        }
      };
      const build = () => {
        const consumer = s.fetchBytes ? { consumer: { maxBytesPerPartition: s.fetchBytes } } : {};
        const app = createApp({ id: appId, transport: kafkaTransport({ brokers, ...consumer }), idleTimeout: false, logger, guarantee: s.guarantee, commitInterval: '200ms' });
        const streams = s.sources.map((src, i) => app.from<Click>(sourceTopics[i]!, src.extractor ? { timestamp: (c) => c.ts } : {}));
        const merged = streams.length === 1 ? streams[0]! : streams[0]!.merge(streams[1]!);
        const keyed = merged.keyBy((c) => c.user);
        const grace = { grace: s.graceMs };
        const windowed = s.kind === 'tumbling' ? keyed.tumbling(SIZE, grace) : s.kind === 'hopping' ? keyed.hopping(SIZE, SLIDE, grace) : s.kind === 'sliding' ? keyed.sliding(SIZE, grace) : keyed.session(GAP, grace);
        windowed
          .aggregate({ init: () => [] as number[], add: (seqs: number[], c: Click) => [...seqs, c.seq], merge: (a: number[], b: number[]) => [...a, ...b] })
          .onClose(({ key, start, end, value }): Win => ({ key: key as string, start, end, seqs: [...value].sort((a, b) => a - b) }))
          .to(outTopic);
        apps.push(app);
        return app;
      };
      let txProducer: Producer<string, string, string, string> | undefined;
      try {
        const preload = s.liveShare ? Math.floor(all.length * (1 - s.liveShare)) : all.length;
        if (s.aborted) {
          // Input written through transactions: committed chunks interleaved with aborted ones (seq ≥ 50,000, must not show).
          txProducer = new Producer({ clientId: 'eddy-review', bootstrapBrokers: brokers, transactionalId: uniqueName('eddy-srw-tx'), idempotent: true, acks: -1, partitioner: compatibilityPartitioner, serializers: stringSerializers });
          for (let from = 0; from < preload; from += 300) {
            const chunk = all.slice(from, Math.min(preload, from + 300)).map((c, j) => msg(0, c, from + j));
            const ok = await txProducer.beginTransaction();
            await ok.send({ messages: chunk.map((m) => ({ topic: sourceTopics[0]!, key: m.key!, value: m.value, timestamp: BigInt(m.timestamp!) })) });
            await ok.commit();
            const bad = await txProducer.beginTransaction();
            const junk = all.slice(from, from + 40).map((c, j) => ({ ...c, seq: 50_000 + from + j }));
            await bad.send({ messages: junk.map((c) => ({ topic: sourceTopics[0]!, key: String(c.seq), value: JSON.stringify(c), timestamp: BigInt(c.ts) })) });
            await bad.abort();
          }
        } else {
          await sendClicks(0, preload);
        }
        for (const e of extra) await producer.send(sourceTopics[e.source]!, [msg(e.source, e.click, -1, e.partition)]);
        let app = build();
        await app.start();
        if (s.liveShare) {
          for (let from = preload; from < all.length; from += 100) {
            await sendClicks(from, Math.min(all.length, from + 100));
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
        if (s.restartAt !== undefined) {
          await waitFor('a share of the windows', () => reader.last().size >= expected.size * s.restartAt!, { timeoutMs: 40_000, intervalMs: 5 });
          await app.stop();
          app = build();
          await app.start();
        }
        // One record per user far ahead closes every window (in source 0).
        const users = [...new Set(input.map((c) => c.user))];
        await producer.send(sourceTopics[0]!, users.map((user, i) => msg(0, { seq: -1 - i, user, ts: closerTs }, 0, s.sources[0]!.partitionOf ? 0 : undefined)));
        await waitFor('windows', () => reader.last().size >= expected.size, { timeoutMs: 45_000 }).catch(() => undefined);
        await waitFor('equal', () => diff(expected, reader.last()).wrong === 0, { timeoutMs: 3_000 }).catch(() => undefined);
        const committed = await waitFor('committed', () => allCommitted(admin, appId, sourceTopics), { timeoutMs: 8_000 }).then(() => true, () => false);
        const late = apps.map((a) => a.metrics().lateRecords);
        const d = diff(expected, reader.last());
        const summary = { late, windows: expected.size, got: reader.last().size, ...d, committed };
        expect(summary).toEqual({ late: late.map(() => 0), windows: expected.size, got: expected.size, missing: 0, wrong: 0, extra: 0, examples: [], committed: true });
      } finally {
        for (const app of apps) await app.stop();
        await reader.stop();
        await producer.close();
        await txProducer?.close();
        await deleteAppTopics(admin, appId);
        await admin.deleteTopics({ topics: [...sourceTopics, outTopic] }).catch(() => undefined);
      }
    }, 120_000);
  }
});
