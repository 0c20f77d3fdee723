/**
 * Local hand-off to a task that reads two repartition topics: two re-keyed, windowed branches of
 * one stream, merged. On Kafka the input task hands each record to that task directly, once per
 * branch; both copies must reach their own branch (they once went down the first one).
 */
import { createApp } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { createTopics, gatherTopic, produce, recordingLogger, waitFor } from './helpers.ts';

interface Reading {
  sensor: string;
  v: number;
  ts: number;
}

describeKafka('local hand-off on Kafka', (brokers) => {
  it('hands each copy of a record to its own repartition topic’s branch of the reading task', async () => {
    const id = uniqueName('hand-off-branches');
    const input = `${id}-in`;
    const output = `${id}-out`;
    await createTopics(brokers, [
      { name: input, partitions: 1 },
      { name: output, partitions: 1 },
    ]);
    const logger = recordingLogger();
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger }), idleTimeout: false, commitInterval: '200ms', logger });
    const readings = app.from<Reading>(input, { timestamp: (reading) => reading.ts });
    const counts = readings.keyBy((reading) => reading.sensor).tumbling('10s').count().onClose((window) => ({ b: 'count', k: window.key, c: window.value }));
    const sums = readings.keyBy((reading) => reading.sensor, { name: 'by-sensor-for-sums' }).tumbling('10s').sum((reading) => reading.v).onClose((window) => ({ b: 'sum', k: window.key, c: window.value }));
    counts.merge(sums).to(output);
    const gathered = await gatherTopic(brokers, output);
    try {
      await app.start();
      const base = Math.floor((Date.now() - 60_000) / 10_000) * 10_000;
      await produce(
        brokers,
        input,
        [[1_000, 2], [3_000, 3], [50_000, 0]].map(([t, v]) => ({ key: 'K', value: JSON.stringify({ sensor: 's', v, ts: base + t! }) })),
      );
      await waitFor('both branches’ windows', () => gathered.records.length >= 2, { timeoutMs: 30_000, intervalMs: 100 });
      expect(gathered.records.map((record) => JSON.parse(record.value!) as unknown)).toEqual(expect.arrayContaining([{ b: 'count', k: 's', c: 2 }, { b: 'sum', k: 's', c: 5 }]));
      expect(app.metrics().recordsHandedOff).toBeGreaterThan(0);
      expect(app.metrics().duplicatesDropped).toBe(0);
    } finally {
      await gathered.stop();
      await app.stop();
    }
  });
});
