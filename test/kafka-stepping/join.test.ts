/**
 * A windowed stream–stream join of two re-keyed inputs (two source topics, so two sub-topologies,
 * two alignment groups) on a backlog, in order, grace 0: README says no record is late and the
 * join sees its sides merged by timestamp. Pairs checked against a brute-force reference.
 */
import { createApp, type App } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from '../kafka/broker.ts';
import { createTopics, deleteAppTopics, gatherTopic, recordingLogger, testAdmin, testProducer, waitFor } from '../kafka/helpers.ts';
import { baseTime, clicks, type Click } from './harness.ts';

const W = 1_000;

interface JoinCase {
  leftPartitions: number;
  rightPartitions: number;
  /** Right side gets only clicks whose time offset (ms from base) passes this. */
  rightFilter: (offset: number, seq: number) => boolean;
  fetchBytes?: number;
  guarantee: 'at-least-once' | 'exactly-once';
}

describeKafka('stepping: windowed join of two re-keyed inputs', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  const cases: Array<[string, JoinCase]> = [
    ['3+3 partitions, the right side with a 40 s gap in event time', { leftPartitions: 3, rightPartitions: 3, rightFilter: (o, s) => s % 3 === 0 && (o < 10_000 || o >= 50_000), guarantee: 'at-least-once' }],
    ['3+3 partitions, even, fetches of 1 KiB', { leftPartitions: 3, rightPartitions: 3, rightFilter: (_o, s) => s % 3 === 0, fetchBytes: 1_024, guarantee: 'at-least-once' }],
    ['3 partitions left, 1 partition right (a group of one)', { leftPartitions: 3, rightPartitions: 1, rightFilter: (_o, s) => s % 3 === 0, guarantee: 'at-least-once' }],
  ];

  for (const [name, c] of cases) {
    it(`${name}: none late, every pair once`, async () => {
      const prefix = uniqueName('eddy-srj');
      const topics = { left: `${prefix}-left`, right: `${prefix}-right`, out: `${prefix}-pairs` };
      const appId = `${prefix}-app`;
      await createTopics(brokers, [
        { name: topics.left, partitions: c.leftPartitions },
        { name: topics.right, partitions: c.rightPartitions },
        { name: topics.out, partitions: 1 },
      ]);
      const base = baseTime();
      const input = clicks(11, base, 2_400, 60_000, 0);
      const right = input.filter((x) => c.rightFilter(x.ts - base, x.seq));
      const rightSet = new Set(right.map((x) => x.seq));
      const left = input.filter((x) => !rightSet.has(x.seq));
      const expected = new Set<string>();
      for (const l of left) for (const r of right) if (l.user === r.user && Math.abs(l.ts - r.ts) <= W) expected.add(`${l.seq}-${r.seq}`);
      const producer = testProducer(brokers);
      const logger = recordingLogger();
      let app: App | undefined;
      const out = await gatherTopic(brokers, topics.out);
      try {
        await producer.send(topics.left, left.map((x) => ({ key: String(x.seq), value: JSON.stringify(x), timestamp: x.ts })));
        await producer.send(topics.right, right.map((x) => ({ key: String(x.seq), value: JSON.stringify(x), timestamp: x.ts })));
        const consumer = c.fetchBytes ? { consumer: { maxBytesPerPartition: c.fetchBytes } } : {};
        app = createApp({ id: appId, transport: kafkaTransport({ brokers, ...consumer }), idleTimeout: false, logger, guarantee: c.guarantee, commitInterval: '200ms' });
        const l = app.from<Click>(topics.left).keyBy((x) => x.user);
        const r = app.from<Click>(topics.right).keyBy((x) => x.user);
        l.join(r, (a, b) => ({ l: a.seq, r: b.seq }), { within: W, grace: 0 }).to(topics.out);
        await app.start();
        const pairs = () => out.records.map((rec) => JSON.parse(rec.value!) as { l: number; r: number }).map((p) => `${p.l}-${p.r}`);
        await waitFor('pairs', () => pairs().length >= expected.size, { timeoutMs: 40_000 }).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        const got = pairs();
        const late = app.metrics().lateRecords;
        const missing = [...expected].filter((p) => !got.includes(p));
        const extra = got.filter((p) => !expected.has(p));
        const summary = { late, expected: expected.size, got: got.length, distinct: new Set(got).size, missing: missing.length, extra: extra.length };
        expect(summary).toEqual({ late: 0, expected: expected.size, got: expected.size, distinct: expected.size, missing: 0, extra: 0 });
      } finally {
        await app?.stop();
        await out.stop();
        await producer.close();
        await deleteAppTopics(admin, appId);
        await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => undefined);
      }
    }, 90_000);
  }
});
