/**
 * A global table on levelState and a real broker: a restart on the same state directory loads the
 * table from disk and reads only the records written while it was down; once records after its
 * checkpoint are deleted from the log (DeleteRecords), the next start reads what is left whole.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, type App, type GlobalTable } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { levelState } from '@eddy/state';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { createTopics, deleteAppTopics, recordingLogger, testAdmin, testProducer } from './helpers.ts';

interface Place {
  site: string;
}

describeKafka('global tables in levelState on Kafka', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  it('a restart reads only the tail after the checkpoint; records deleted past it make the next start read the topic whole', async () => {
    const prefix = uniqueName('eddy-global-state');
    const topics = { places: `${prefix}-places`, readings: `${prefix}-readings`, out: `${prefix}-out` };
    await createTopics(brokers, [
      { name: topics.places, partitions: 3 },
      { name: topics.readings, partitions: 1 },
      { name: topics.out, partitions: 1 },
    ]);
    const stateDir = await mkdtemp(join(tmpdir(), 'eddy-global-state-'));
    const producer = testProducer(brokers);
    const table = new Map<string, Place>();
    let running: { app: App; places: GlobalTable<string, Place>; logger: ReturnType<typeof recordingLogger> } | undefined;

    const start = async () => {
      const logger = recordingLogger();
      const app = createApp({ id: `${prefix}-app`, transport: kafkaTransport({ brokers, logger }), state: levelState({ dir: stateDir, logger }), idleTimeout: false, logger });
      const places = app.globalTable<string, Place>(topics.places);
      app
        .from<{ place: string }>(topics.readings)
        .leftJoin(places, (reading) => reading.place, (reading, place) => ({ ...reading, site: place?.site ?? null }))
        .to(topics.out);
      await app.start();
      running = { app, places, logger };
      return running;
    };
    const setPlaces = async (changes: Array<[string, Place | null]>) => {
      for (const [key, place] of changes) {
        if (place === null) table.delete(key);
        else table.set(key, place);
      }
      await producer.send(topics.places, changes.map(([key, place]) => ({ key, value: (place === null ? null : JSON.stringify(place)) as string })));
    };
    const held = async () => new Map((await running!.app.store(running!.places).range()).map(({ key, value }) => [key, value]));
    const caughtUp = () => running!.logger.entries.find((entry) => entry.message === 'global table caught up')?.fields;
    const warnings = () => running!.logger.entries.filter((entry) => entry.level === 'warn' && /global table/.test(entry.message));

    try {
      await setPlaces(Array.from({ length: 40 }, (_, index): [string, Place] => [`p${index}`, { site: `s${index % 5}` }]));
      await start();
      expect(caughtUp()).toMatchObject({ read: 40 });
      expect(await held()).toEqual(table);
      await running!.app.stop();

      await setPlaces([['p1', null], ['p2', { site: 'moved' }], ['p40', { site: 'new' }], ['p3', null]]);
      await start();
      expect(caughtUp(), 'only the tail is read').toMatchObject({ read: 4 });
      expect(await held()).toEqual(table);
      expect(warnings()).toEqual([]);
      await running!.app.stop();

      // Records after the checkpoint of every partition are written, then the log is cut past it.
      await setPlaces(Array.from({ length: 30 }, (_, index): [string, Place] => [`q${index}`, { site: 'q' }]));
      const transport = kafkaTransport({ brokers, logger: recordingLogger() });
      await transport.connect();
      const left = new Map<string, Place>();
      for (let partition = 0; partition < 3; partition++) {
        const end = await transport.endOffset({ topic: topics.places, partition });
        await transport.deleteRecords({ topic: topics.places, partition }, end - 2);
        for await (const batch of transport.readPartition({ topic: topics.places, partition }, 0)) {
          for (const record of batch) if (record.value) left.set(new TextDecoder().decode(record.key!), JSON.parse(new TextDecoder().decode(record.value)) as Place);
        }
      }
      await transport.close();
      await start();
      expect(caughtUp()).toMatchObject({ read: 6 });
      expect(await held()).toEqual(left);
      expect(warnings().map((entry) => entry.fields.reason)).toEqual([expect.stringMatching(/starts at \d+, after the checkpoint's/)]);
      await running!.app.stop();
    } finally {
      await running?.app.stop().catch(() => undefined);
      await producer.close();
      await deleteAppTopics(admin, prefix);
      await rm(stateDir, { recursive: true, force: true });
    }
  }, 120_000);
});
