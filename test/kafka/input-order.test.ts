/**
 * A task reads its inputs in timestamp order, on a real broker: readings (re-keyed by sensor, so
 * through a repartition topic) and a table of sensors, both written before the app starts, the
 * readings first, their timestamps interleaved. Each reading must meet the table as of its
 * timestamp: the latest update of its sensor stamped at or before it. The app then stops, both
 * topics get more, and a fresh instance starts on them: again in timestamp order.
 */
import { createApp, type App } from '@eddy/core';
import { mulberry32 } from '@eddy/core/testing';
import { kafkaTransport } from '@eddy/kafka';
import { afterAll, expect, it } from 'vitest';
import { replaySeed } from '../replay-seed.ts';
import { describeKafka, uniqueName } from './broker.ts';
import { createTopics, deleteAppTopics, gatherTopic, recordingLogger, testAdmin, testProducer, waitFor, type TestMessage } from './helpers.ts';

interface Reading {
  sensor: string;
  seq: number;
}
interface Sensor {
  scale: number;
}
interface Update {
  sensor: string;
  value: Sensor | null;
  timestamp: number;
}

const seed = replaySeed(20261207);
const SENSORS = Array.from({ length: 8 }, (_, index) => `sensor-${index}`);

describeKafka('a task reads its inputs in timestamp order, on Kafka', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
    it(`joins each reading with the table as of its timestamp, though all readings were written before the table (${guarantee}, across a restart, seed ${seed})`, async () => {
      const prefix = uniqueName('eddy-order');
      const topics = { sensors: `${prefix}-sensors`, readings: `${prefix}-readings`, out: `${prefix}-out` };
      const appId = `${prefix}-app`;
      // One readings partition: each repartition partition then holds its readings in timestamp order.
      await createTopics(brokers, [
        { name: topics.sensors, partitions: 4 },
        { name: topics.readings, partitions: 1 },
        { name: topics.out, partitions: 2 },
      ]);
      const random = mulberry32(seed);
      const base = Date.now() - 3_600_000;
      const updates: Update[] = [];
      const readings: Array<Reading & { timestamp: number }> = [];
      let seq = 0;
      /** A round of input: readings every 3 ms and table updates every 10 ms over the same span. */
      const round = (from: number): { readings: TestMessage[]; updates: TestMessage[] } => {
        const roundReadings = Array.from({ length: 1_000 }, (_, index) => {
          const reading = { sensor: SENSORS[Math.floor(random() * SENSORS.length)]!, seq: seq++, timestamp: from + index * 3 };
          readings.push(reading);
          return reading;
        });
        const roundUpdates = Array.from({ length: 300 }, (_, index) => {
          const update = { sensor: SENSORS[Math.floor(random() * SENSORS.length)]!, value: random() < 0.1 ? null : { scale: 1 + Math.floor(random() * 50) }, timestamp: from + index * 10 + 1 };
          updates.push(update);
          return update;
        });
        return {
          readings: roundReadings.map(({ timestamp, ...reading }) => ({ key: `reading-${reading.seq}`, value: JSON.stringify(reading), timestamp })),
          updates: roundUpdates.map(({ sensor, value, timestamp }) => ({ key: sensor, value: (value === null ? null : JSON.stringify(value)) as string, timestamp })),
        };
      };
      /** What each reading must meet: the latest update of its sensor stamped at or before it. */
      const expected = (): Map<number, number | null> =>
        new Map(
          readings.map((reading) => {
            let value: Sensor | null = null;
            for (const update of updates) if (update.sensor === reading.sensor && update.timestamp <= reading.timestamp) value = update.value;
            return [reading.seq, value?.scale ?? null];
          }),
        );

      const logger = recordingLogger();
      const producer = testProducer(brokers);
      const output = await gatherTopic(brokers, topics.out);
      let app: App | undefined;
      const start = async () => {
        app = createApp({ id: appId, transport: kafkaTransport({ brokers, logger }), idleTimeout: false, commitInterval: '300ms', maxInputWait: '20s', guarantee, logger });
        const table = app.table<string, Sensor>(topics.sensors);
        app
          .from<Reading>(topics.readings)
          .keyBy((reading) => reading.sensor, { name: 'by-sensor' })
          .leftJoin(table, (reading, sensor) => ({ seq: reading.seq, scale: sensor?.scale ?? null }))
          .to(topics.out);
        await app.start();
      };
      const joined = () => new Map(output.records.map((record) => JSON.parse(record.value!) as { seq: number; scale: number | null }).map(({ seq: s, scale }) => [s, scale]));

      try {
        for (let run = 0; run < 2; run++) {
          const input = round(base + run * 10_000);
          // The readings first: read in the order written, every reading would meet the whole round's table.
          await producer.send(topics.readings, input.readings);
          await producer.send(topics.sensors, input.updates);
          await start();
          await waitFor(`run ${run}: every reading joined`, () => joined().size === readings.length, { timeoutMs: 60_000 });
          expect(app!.metrics().inputWaitsExpired, `run ${run}: the task never stopped waiting for an input`).toBe(0);
          await app!.stop();
          app = undefined;
        }
        const want = expected();
        const got = joined();
        const wrong = [...want].filter(([s, scale]) => got.get(s) !== scale).map(([s, scale]) => ({ seq: s, want: scale, got: got.get(s) }));
        expect(wrong, `seed ${seed}`).toEqual([]);
        // The data tells the orders apart: with the whole table applied first, many readings would differ.
        const tableFirst = readings.filter((reading) => {
          const last = updates.filter((update) => update.sensor === reading.sensor && update.timestamp < base + (reading.timestamp < base + 10_000 ? 10_000 : 20_000)).at(-1);
          return (last?.value?.scale ?? null) !== want.get(reading.seq);
        });
        expect(tableFirst.length).toBeGreaterThan(100);
        expect(logger.errors()).toEqual([]);
      } finally {
        await app?.stop().catch(() => undefined);
        await output.stop();
        await producer.close();
        await deleteAppTopics(admin, prefix);
      }
    }, 180_000);
  }
});
