/** Repartition topics on Kafka: unlimited retention (old event times), trimmed with DeleteRecords. */
import { expect, it } from 'vitest';
import { kafkaTransport } from '@eddy/kafka';
import { ConfigResourceTypes } from '@platformatic/kafka';
import { describeKafka, uniqueName } from './broker.ts';
import { testAdmin } from './helpers.ts';

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
});
