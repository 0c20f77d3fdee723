/**
 * A global table on a real broker: every partition of its topic is read before the app's tasks
 * start, updates keep arriving after, and a restarted instance reads the whole table again (its
 * consumer never commits). Readings join it by the place they name, with no repartition.
 */
import { createApp, type App, type GlobalTable } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { createTopics, deleteAppTopics, gatherTopic, recordingLogger, testAdmin, testProducer, waitFor } from './helpers.ts';

interface Reading {
  seq: number;
  place: string;
}
interface Place {
  site: string;
}

describeKafka('global tables on Kafka', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  it('reads the whole table before tasks start, follows its updates, and reads it whole again after a restart', async () => {
    const prefix = uniqueName('eddy-global');
    const topics = { places: `${prefix}-places`, readings: `${prefix}-readings`, out: `${prefix}-out` };
    await createTopics(brokers, [
      { name: topics.places, partitions: 3 },
      { name: topics.readings, partitions: 2 },
      { name: topics.out, partitions: 1 },
    ]);
    const logger = recordingLogger();
    const producer = testProducer(brokers);
    const output = await gatherTopic(brokers, topics.out);
    const table = new Map<string, Place>();
    const expected: Array<{ seq: number; site: string | null }> = [];
    let seq = 0;
    let running: { app: App; places: GlobalTable<string, Place> } | undefined;

    const start = async () => {
      const app = createApp({ id: `${prefix}-app`, transport: kafkaTransport({ brokers, logger }), idleTimeout: false, commitInterval: '300ms', logger });
      const places = app.globalTable<string, Place>(topics.places);
      app
        .from<Reading>(topics.readings)
        .leftJoin(places, (reading) => reading.place, (reading, place) => ({ seq: reading.seq, site: place?.site ?? null }))
        .to(topics.out);
      await app.start();
      running = { app, places };
    };
    const setPlaces = async (changes: Array<[string, Place | null]>) => {
      for (const [key, place] of changes) {
        if (place === null) table.delete(key);
        else table.set(key, place);
      }
      // A null value is a tombstone: the producer's string serializer writes none for it.
      await producer.send(topics.places, changes.map(([key, place]) => ({ key, value: (place === null ? null : JSON.stringify(place)) as string })));
    };
    const tableHeld = async () => {
      for (const key of ['p0', 'p1', 'p2', 'p3', 'p4', 'p5']) {
        if (JSON.stringify(await running!.app.store(running!.places).get(key)) !== JSON.stringify(table.get(key))) return false;
      }
      return true;
    };
    const sendReadings = async (count: number) => {
      const batch = Array.from({ length: count }, () => {
        const reading: Reading = { seq: seq++, place: `p${seq % 6}` };
        expected.push({ seq: reading.seq, site: table.get(reading.place)?.site ?? null });
        return { key: `r${reading.seq % 5}`, value: JSON.stringify(reading) };
      });
      await producer.send(topics.readings, batch);
      await waitFor('every joined reading', () => new Set(output.records.map((record) => (JSON.parse(record.value!) as { seq: number }).seq)).size >= expected.length);
    };

    try {
      await setPlaces([['p0', { site: 'north' }], ['p1', { site: 'south' }], ['p2', { site: 'east' }], ['p3', { site: 'west' }], ['p4', { site: 'north' }]]);
      await start();
      // start() resolves once the table is whole: no wait needed before reading it.
      expect(await tableHeld(), 'the table is whole when start() resolves').toBe(true);
      await sendReadings(60);
      await setPlaces([['p1', null], ['p5', { site: 'centre' }], ['p2', { site: 'far east' }]]);
      await waitFor('the table update', tableHeld);
      await sendReadings(60);
      await running!.app.stop();
      await start();
      expect(await tableHeld(), 'a restarted instance reads the whole table again').toBe(true);
      await sendReadings(60);
      await running!.app.stop();

      const got = new Map(output.records.map((record) => {
        const value = JSON.parse(record.value!) as { seq: number; site: string | null };
        return [value.seq, value];
      }));
      expect([...got.values()].sort((a, b) => a.seq - b.seq)).toEqual(expected);
      expect(logger.errors()).toEqual([]);
    } finally {
      await running?.app.stop().catch(() => undefined);
      await output.stop();
      await producer.close();
      await deleteAppTopics(admin, prefix);
    }
  }, 120_000);
});
