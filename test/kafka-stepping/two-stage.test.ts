/**
 * Two re-keys in a row with a stateful step that is not windowed between them
 * (keyBy(user).reduce(latest).toStream().keyBy(region).tumbling), on Kafka: the first keyBy's
 * repartition topic is read by no windowed step, but leads to one, so its input is stepped too,
 * and stays stepped while the second keyBy moves records though the first moves none (input keyed
 * by user). Input in order: no record reaches the windows late because of the backlog's order.
 */
import { createApp, type App } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from '../kafka/broker.ts';
import { createTopics, deleteAppTopics, recordingLogger, testAdmin, testProducer, waitFor } from '../kafka/helpers.ts';
import { baseTime, clicks, diff, SIZE, twoStagePipeline, twoStageReference, windowReader } from './harness.ts';

describeKafka('stepping: two re-keys with a table between them', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  for (const [graceMs, keyedBy] of [[0, 'seq'], [10_000, 'seq'], [0, 'user']] as const) {
    it(`keyBy(user).reduce.toStream.keyBy(region).tumbling, 3 partitions, in order, grace ${graceMs}, input keyed by ${keyedBy}: none late`, async () => {
      const prefix = uniqueName('eddy-sr2');
      const topics = { in: `${prefix}-in`, out: `${prefix}-out` };
      const appId = `${prefix}-app`;
      await createTopics(brokers, [{ name: topics.in, partitions: 3 }, { name: topics.out, partitions: 1 }]);
      const base = baseTime();
      const input = clicks(3, base, 3_000, 120_000, 0);
      const expected = twoStageReference(input);
      const closerTs = base + 3_000_000;
      const reader = await windowReader(brokers, topics.out, closerTs - 10 * SIZE);
      const producer = testProducer(brokers);
      let app: App | undefined;
      try {
        await producer.send(topics.in, input.map((c) => ({ key: keyedBy === 'seq' ? String(c.seq) : c.user, value: JSON.stringify(c), timestamp: c.ts })));
        app = createApp({ id: appId, transport: kafkaTransport({ brokers }), idleTimeout: false, logger: recordingLogger(), commitInterval: '200ms' });
        twoStagePipeline(app, topics.in, topics.out, graceMs);
        await app.start();
        const users = [...new Set(input.map((c) => c.user))];
        await producer.send(topics.in, users.map((user, i) => ({ key: String(-1 - i), value: JSON.stringify({ seq: -1 - i, user, ts: closerTs }), timestamp: closerTs })));
        await waitFor('windows', () => reader.last().size >= expected.size, { timeoutMs: 30_000 }).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        const d = diff(expected, reader.last());
        const summary = { late: app.metrics().lateRecords, windows: expected.size, got: reader.last().size, ...d };
        expect(summary).toEqual({ late: 0, windows: expected.size, got: expected.size, missing: 0, wrong: 0, extra: 0, examples: [] });
      } finally {
        await app?.stop();
        await reader.stop();
        await producer.close();
        await deleteAppTopics(admin, appId);
        await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => undefined);
      }
    }, 90_000);
  }
});
