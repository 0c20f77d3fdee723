/**
 * The other half of the idle rule, on a real broker: a stream that goes quiet has its last windows
 * closed by the idle timeout alone, once the broker has said for that long that there is nothing
 * more to read. Readings are re-keyed to another partition than they arrive on, so they travel
 * through the repartition topic (under exactly-once, in transactions: the reading task must see
 * past their markers to count as caught up).
 */
import { createApp, partitionForKey, type App } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { createTopics, gatherTopic, recordingLogger, testProducer, waitFor } from './helpers.ts';

interface Reading {
  sensor: string;
  site: string;
  ts: number;
}

const partitions = 2;
const windowMs = 2_000;

describeKafka('a quiet stream on Kafka', (brokers) => {
  for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
    it(`${guarantee}: its last windows close by the idle timeout alone, exact, none late`, async () => {
      const id = uniqueName(`idle-${guarantee}`);
      const inTopic = `${id}-in`;
      const outTopic = `${id}-out`;
      await createTopics(brokers, [
        { name: inTopic, partitions },
        { name: outTopic, partitions: 1 },
      ]);
      const encode = (text: string) => new TextEncoder().encode(text);
      // Each sensor's site lands on the other partition: every reading goes through the repartition topic.
      const sites = ['north', 'south', 'east', 'west', 'up', 'down'];
      const sensors = ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7'];
      const pairs = sensors.map((sensor) => ({ sensor, site: sites.find((site) => partitionForKey(encode(site), partitions) !== partitionForKey(encode(sensor), partitions))! }));
      expect(pairs.every((pair) => pair.site !== undefined)).toBe(true);

      const logger = recordingLogger();
      const app: App = createApp({ id, transport: kafkaTransport({ brokers, logger }), guarantee, commitInterval: '300ms', logger });
      app
        .from<Reading>(inTopic, { timestamp: (reading) => reading.ts })
        .keyBy((reading) => reading.site)
        .tumbling(windowMs)
        .count()
        .onClose((window) => ({ site: window.key, start: window.start, count: window.value }))
        .to(outTopic);
      const producer = testProducer(brokers);
      const output = await gatherTopic(brokers, outTopic);
      try {
        await app.start();
        const expected = new Map<string, number>();
        for (let step = 0; step < 20; step++) {
          const ts = Date.now();
          await producer.send(inTopic, pairs.map(({ sensor, site }) => ({ key: sensor, value: JSON.stringify({ sensor, site, ts }) })));
          for (const { site } of pairs) {
            const window = `${site}@${Math.floor(ts / windowMs) * windowMs}`;
            expected.set(window, (expected.get(window) ?? 0) + 1);
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const quietFrom = Date.now();
        // Nothing more: the idle timeout (5 s) and the last window (2 s) close everything.
        const results = () => output.records.map((record) => JSON.parse(record.value!) as { site: string; start: number; count: number });
        await waitFor('every window closed by the idle timeout', () => new Set(results().map((result) => `${result.site}@${result.start}`)).size >= expected.size, { timeoutMs: 30_000, intervalMs: 200 });
        const closedAfterMs = Date.now() - quietFrom;
        const got = new Map(results().map((result) => [`${result.site}@${result.start}`, result.count]));
        expect(Object.fromEntries(got)).toEqual(Object.fromEntries(expected));
        expect(app.metrics().lateRecords).toBe(0);
        // Not before the idle timeout: the broker's word had to hold for 5 s first.
        expect(closedAfterMs).toBeGreaterThanOrEqual(4_000);
        console.log(`[idle ${guarantee}] ${expected.size} windows closed ${(closedAfterMs / 1000).toFixed(1)} s after the input went quiet`);
      } finally {
        await output.stop();
        await producer.close().catch(() => undefined);
        await app.stop().catch(() => undefined);
      }
    }, 60_000);
  }
});
