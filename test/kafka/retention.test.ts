/**
 * Repartition topics on Kafka: unlimited retention (old event times), trimmed with DeleteRecords.
 * Input records deleted before an app read them: it reads on after them, counts and warns.
 */
import { expect, it } from 'vitest';
import { createApp } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { ConfigResourceTypes } from '@platformatic/kafka';
import { describeKafka, uniqueName } from './broker.ts';
import { createTopics, deleteAppTopics, gatherTopic, recordingLogger, testAdmin, testProducer, waitFor } from './helpers.ts';

describeKafka('repartition topic retention on Kafka', (brokers) => {
  it('creates them with retention.ms=-1 and deletes committed records on request', async () => {
    const topic = uniqueName('repartition');
    const transport = kafkaTransport({ brokers, logLevel: 'nothing' });
    const admin = testAdmin(brokers);
    try {
      await transport.ensureTopics([{ name: topic, partitions: 1, unlimitedRetention: true }]);
      const described = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic }], includeSynonyms: false });
      expect(described[0]!.configs.find((entry) => entry.name === 'retention.ms')?.value).toBe('-1');

      const producer = await transport.createProducer();
      // Event times a year old: time-based retention would drop these at once.
      const yearAgo = Date.now() - 365 * 86_400_000;
      await producer.send(Array.from({ length: 10 }, (_, index) => ({ topic, partition: 0, key: null, value: new TextEncoder().encode(String(index)), timestamp: yearAgo + index })));
      await transport.deleteRecords!({ topic, partition: 0 }, 6);
      const left: number[] = [];
      for await (const batch of transport.readPartition({ topic, partition: 0 }, 0)) for (const record of batch) left.push(record.offset);
      expect(left).toEqual([6, 7, 8, 9]);
      await producer.close();
    } finally {
      await admin.close();
      await transport.close();
    }
  });

  it('an app down while its unread input is deleted reads on after it, counts it in recordsLostToRetention and warns', async () => {
    const id = uniqueName('eddy-lost');
    const topics = { in: `${id}-in`, out: `${id}-out` };
    await createTopics(brokers, [{ name: topics.in, partitions: 1 }, { name: topics.out, partitions: 1 }]);
    const admin = testAdmin(brokers);
    const transport = kafkaTransport({ brokers, logLevel: 'nothing' });
    const producer = testProducer(brokers);
    const out = await gatherTopic(brokers, topics.out);
    const run = async (check: (app: ReturnType<typeof createApp>, logger: ReturnType<typeof recordingLogger>) => Promise<void>) => {
      const logger = recordingLogger();
      const app = createApp({ id, transport: kafkaTransport({ brokers, logLevel: 'nothing' }), logger, commitInterval: '100ms' });
      app.from<{ n: number }>(topics.in).map((value) => ({ n: value.n * 10 })).to(topics.out);
      await app.start();
      try {
        await check(app, logger);
      } finally {
        await app.stop();
      }
    };
    const send = (from: number, to: number) => producer.send(topics.in, Array.from({ length: to - from }, (_, i) => ({ key: null, value: JSON.stringify({ n: from + i }) })));
    try {
      await send(0, 10);
      await run(async () => {
        await waitFor('the first ten', () => out.records.length === 10);
        await new Promise((resolve) => setTimeout(resolve, 400)); // committed
      });
      // While the app is down: 20 more, of which retention (here DeleteRecords) takes the first 15.
      await send(10, 30);
      await transport.deleteRecords!({ topic: topics.in, partition: 0 }, 25);
      await run(async (app, logger) => {
        await waitFor('the records left', () => out.records.length === 15);
        expect(out.records.map((record) => JSON.parse(record.value!).n)).toEqual([...Array.from({ length: 10 }, (_, n) => n * 10), 250, 260, 270, 280, 290]);
        expect(app.metrics().recordsLostToRetention).toBe(15);
        expect(logger.entries.filter((entry) => entry.level === 'warn').map((entry) => [entry.message, entry.fields.from, entry.fields.to])).toContainEqual(['records were deleted before they were read; reading on after them', 10, 25]);
      });
    } finally {
      await out.stop();
      await producer.close();
      await transport.close();
      await deleteAppTopics(admin, id);
      await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => undefined);
      await admin.close();
    }
  });
});
