/**
 * Exactly-once on a real broker: each task commits its outputs, changelog records and input
 * offsets in one Kafka transaction of its own transactional producer (`<app id>-<task id>`), and
 * a newer producer of the same id fences the older one.
 */
import { createApp, EddyError, partitionForKey, type App, type KeyedStream, type TransactionalProducer, type WindowedTable } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { allCommitted, committedOffsets, createTopics, deleteAppTopics, endOffsets, gatherTopic, produceReadings, recordingLogger, taskTroubles, testAdmin, waitFor, type Gathered } from './helpers.ts';

interface Reading {
  sensor: string;
  ts: number;
}

interface WindowCount {
  sensor: string;
  start: number;
  count: number;
}

const bytes = (text: string) => new TextEncoder().encode(text);
const decode = (records: readonly Gathered[]): WindowCount[] => records.map((record) => JSON.parse(record.value!) as WindowCount);


describeKafka('exactly-once on Kafka', (brokers) => {
  const admin = testAdmin(brokers);

  afterAll(() => admin.close());

  /** A fresh id with an input and an output topic of `partitions` partitions. */
  async function freshTopics(prefix: string, partitions: number): Promise<{ id: string; input: string; output: string }> {
    const id = uniqueName(prefix);
    const [input, output] = [`${id}-in`, `${id}-out`];
    await createTopics(brokers, [
      { name: input, partitions },
      { name: output, partitions },
    ]);
    return { id, input, output };
  }

  /** Readings counted per sensor and window under exactly-once, each count sent to `output`. */
  function countingApp(
    id: string,
    input: string,
    output: string,
    windows: (keyed: KeyedStream<string, Reading>) => WindowedTable<string, number, Reading>,
    logger = recordingLogger(),
  ): App {
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger }), guarantee: 'exactly-once', idleTimeout: false, commitInterval: '200ms', logger });
    windows(app.from<Reading>(input, { timestamp: (reading) => reading.ts }).keyBy((reading) => reading.sensor))
      .onClose((window) => ({ sensor: window.key, start: window.start, count: window.value }))
      .to(output);
    return app;
  }

  it('counts hopping windows through a repartition topic; read_committed sees each window once, with the right count', async () => {
    const { id, input, output } = await freshTopics('eddy-eos', 3);
    const base = Math.floor((Date.now() - 120_000) / 1000) * 1000;
    const sensors = Array.from({ length: 8 }, (_, index) => `sensor-${index}`);
    const readings: Reading[] = [];
    for (let step = 0; step < 200; step++) for (const sensor of sensors) readings.push({ sensor, ts: base + step * 100 + sensors.indexOf(sensor) });
    const expected = new Map<string, number>();
    for (const { sensor, ts } of readings) {
      const slice = Math.floor(ts / 1000) * 1000;
      for (const start of [slice - 1000, slice]) expected.set(`${sensor}@${start}`, (expected.get(`${sensor}@${start}`) ?? 0) + 1);
    }
    // A late-enough reading per sensor closes every window above; its own windows stay open.
    const closers = sensors.map((sensor) => ({ sensor, ts: base + 1_000_000 }));
    await produceReadings(brokers, input, [...readings, ...closers]);

    const app = countingApp(id, input, output, (keyed) => keyed.hopping('2s', '1s').count());
    const committed = await gatherTopic(brokers, output, { readUncommitted: false });
    try {
      await app.start();
      await waitFor('every window', () => committed.records.length >= expected.size, { timeoutMs: 45_000, intervalMs: 100 });
      await app.stop();
      // Anything that should not come (a repeat) would come by now.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const results = decode(committed.records);
      expect(results.map((result) => `${result.sensor}@${result.start}`).sort(), 'each window exactly once').toEqual([...expected.keys()].sort());
      for (const result of results) expect(result.count, `${result.sensor}@${result.start}`).toBe(expected.get(`${result.sensor}@${result.start}`));
      expect(app.failure).toBeUndefined();
      // The input offsets came with the transactions (the app never commits through its consumer).
      expect(await committedOffsets(admin, id, input)).toEqual(await endOffsets(admin, input));
    } finally {
      await app.stop();
      await committed.stop();
    }
  }, 60_000);

  it('registers its transactionTimeout: with 30 s, a commit interval of 16 s commits (the client\'s 5 s, registered before, had the broker abort every transaction)', async () => {
    const { id, input, output } = await freshTopics('eddy-eos-long', 1);
    const logger = recordingLogger();
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger, transactionTimeout: '30s' }), guarantee: 'exactly-once', idleTimeout: false, commitInterval: '16s', logger });
    app.from<Reading>(input).map((reading) => ({ sensor: reading.sensor })).to(output);
    const committed = await gatherTopic(brokers, output, { readUncommitted: false });
    try {
      await app.start();
      await produceReadings(brokers, input, Array.from({ length: 20 }, (_, i) => ({ sensor: `s${i}`, ts: Date.now() })));
      // The first commit that holds them is at most 16 s away. A transaction open past its timeout
      // is aborted at the broker's next check (every 10 s): with the old 5 s, always before 16 s.
      await waitFor('the records, committed', () => committed.records.length >= 20, { timeoutMs: 40_000, intervalMs: 200 });
      expect(committed.records.map((record) => JSON.parse(record.value!).sensor).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `s${i}`).sort());
      expect(app.metrics().commitFailures).toBe(0);
      expect(logger.entries.filter((entry) => entry.level === 'warn' || entry.level === 'error').map((entry) => entry.message)).toEqual([]);
    } finally {
      await app.stop();
      await committed.stop();
      await deleteAppTopics(admin, id);
    }
  }, 60_000);

  it('input written in transactions: aborted readings never count, and the committed offsets reach the end, past the markers', async () => {
    const { id, input, output } = await freshTopics('eddy-markers', 2);
    const base = Math.floor((Date.now() - 60_000) / 1000) * 1000;
    const sensors = ['a', 'b', 'c', 'd'];
    const readings: Reading[] = [];
    for (let step = 0; step < 30; step++) for (const sensor of sensors) readings.push({ sensor, ts: base + step * 100 });
    const closers = sensors.map((sensor) => ({ sensor, ts: base + 1_000_000 }));
    const transport = kafkaTransport({ brokers, logger: recordingLogger() });
    const upstream = (await transport.createProducer({ transactionalId: `${id}-upstream` })) as TransactionalProducer;
    const record = (reading: Reading) => {
      const key = bytes(reading.sensor);
      return { topic: input, partition: partitionForKey(key, 2), key, value: bytes(JSON.stringify(reading)), timestamp: reading.ts };
    };
    try {
      // Every partition ends with a commit marker, aborted readings and an abort marker.
      await upstream.begin();
      await upstream.send([...readings, ...closers].map(record));
      await upstream.commit();
      await upstream.begin();
      await upstream.send(sensors.map((sensor) => record({ sensor, ts: base + 500 })));
      await upstream.abort();
    } finally {
      await upstream.close();
      await transport.close();
    }

    const app = countingApp(id, input, output, (keyed) => keyed.tumbling('1s').count());
    const committed = await gatherTopic(brokers, output, { readUncommitted: false });
    try {
      await app.start();
      await waitFor('every window', () => committed.records.length >= sensors.length * 3, { timeoutMs: 30_000, intervalMs: 100 });
      // The first second of each sensor holds 10 committed readings; the aborted one at +500 ms is not among them.
      expect(decode(committed.records).filter((result) => result.start === base).map((result) => [result.sensor, result.count]).sort()).toEqual(sensors.map((sensor) => [sensor, 10]));
      await waitFor('the input committed up to its end, markers included', () => allCommitted(admin, id, [input]), { timeoutMs: 15_000, intervalMs: 200 });
      expect(app.metrics().lag).toBe(0);
    } finally {
      await app.stop();
      await committed.stop();
    }
  }, 60_000);

  it('read_committed readers skip every aborted transaction, also several interleaved ones', async () => {
    const name = uniqueName('eddy-aborts');
    const topic = `${name}-out`;
    await createTopics(brokers, [{ name: topic, partitions: 1 }]);
    const transport = kafkaTransport({ brokers, logger: recordingLogger() });
    const committed = await gatherTopic(brokers, topic, { readUncommitted: false });
    try {
      // Producer ids grow with creation; the later producers write first, so the broker's list of
      // aborted transactions (by producer id) is not in offset order.
      const producers: TransactionalProducer[] = [];
      for (let index = 0; index < 3; index++) producers.push((await transport.createProducer({ transactionalId: `${name}-${index}` })) as TransactionalProducer);
      for (const producer of producers) await producer.begin();
      for (const [index, producer] of [...producers.entries()].reverse()) {
        await producer.send([{ topic, partition: 0, key: null, value: bytes(`aborted-${index}`), timestamp: Date.now() }]);
      }
      for (const producer of producers) await producer.abort();
      await producers[0]!.begin();
      await producers[0]!.send([{ topic, partition: 0, key: null, value: bytes('committed'), timestamp: Date.now() }]);
      await producers[0]!.commit();
      await Promise.all(producers.map((producer) => producer.close()));
      await waitFor('the committed record', () => committed.records.some((record) => record.value === 'committed'));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(committed.records.map((record) => record.value)).toEqual(['committed']);
      // The transport's own reader (state restore) too.
      const read: string[] = [];
      for await (const batch of transport.readPartition({ topic, partition: 0 }, 0)) read.push(...batch.map((record) => new TextDecoder().decode(record.value!)));
      expect(read).toEqual(['committed']);
    } finally {
      await committed.stop();
      await transport.close();
    }
  });

  it('a newer producer of a transactional id fences the older one: its commit fails, not retriable', async () => {
    const transactionalId = uniqueName('eddy-fence');
    const topic = `${transactionalId}-out`;
    const group = `${transactionalId}-group`;
    await createTopics(brokers, [{ name: topic, partitions: 1 }]);
    const transport = kafkaTransport({ brokers, logger: recordingLogger() });
    const committed = await gatherTopic(brokers, topic, { readUncommitted: false });
    try {
      const older = (await transport.createProducer({ transactionalId })) as TransactionalProducer;
      await older.begin();
      await older.send([{ topic, partition: 0, key: null, value: bytes('older'), timestamp: Date.now() }]);
      await older.sendOffsets(group, [{ topic, partition: 0, offset: 1 }]);

      const newer = (await transport.createProducer({ transactionalId })) as TransactionalProducer;
      const failure = await older.commit().catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(EddyError);
      expect(failure).toMatchObject({ code: 'TRANSPORT_FAILED', retriable: false });
      expect((failure as Error).message).toMatch(/fenced/);
      // Broken for good: a fenced producer cannot begin again.
      await expect(older.begin()).rejects.toMatchObject({ code: 'TRANSPORT_FAILED' });
      await older.close();

      await newer.begin();
      await newer.send([{ topic, partition: 0, key: null, value: bytes('newer'), timestamp: Date.now() }]);
      await newer.sendOffsets(group, [{ topic, partition: 0, offset: 2 }]);
      await newer.commit();
      await newer.close();

      await waitFor('the newer record', () => committed.records.length > 0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(committed.records.map((record) => record.value)).toEqual(['newer']);
      expect(await committedOffsets(admin, group, topic)).toEqual([2]);
    } finally {
      await committed.stop();
      await transport.close();
    }
  });

  it('a task whose producer is fenced while the group still gives it this instance starts again from its last commit: its aborted transaction never shows, each record once', async () => {
    const { id, input, output } = await freshTopics('eddy-zombie', 1);
    const logger = recordingLogger();
    const app: App = createApp({ id, transport: kafkaTransport({ brokers, logger }), guarantee: 'exactly-once', commitInterval: '200ms', logger });
    app
      .from<Reading>(input)
      .map((reading) => ({ ...reading, seen: true }))
      .to(output);
    const committed = await gatherTopic(brokers, output, { readUncommitted: false });
    const takeover = kafkaTransport({ brokers, logger: recordingLogger() });
    try {
      await app.start();
      await produceReadings(brokers, input, [{ sensor: 'a', ts: 1 }]);
      await waitFor('the first record', () => committed.records.length === 1, { timeoutMs: 20_000 });
      // Another producer takes the transactional id of the task of the input over (as a new owner would), but
      // the group still assigns the partition to this instance: the task's next commit fails, and
      // the task is opened again from its last commit (its new producer fences the other one).
      const other = await takeover.createProducer({ transactionalId: `${id}:${input}:0` });
      await produceReadings(brokers, input, [{ sensor: 'a', ts: 2 }]);
      const explain = () => taskTroubles(app, logger.entries);
      await waitFor('the task to be rebuilt', () => logger.entries.some((entry) => entry.message === 'task started again from its last commit'), { timeoutMs: 20_000, explain });
      await produceReadings(brokers, input, [{ sensor: 'a', ts: 3 }]);
      await waitFor('every record', () => committed.records.length >= 3, { timeoutMs: 20_000, explain });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(app.failure).toBeUndefined();
      expect(logger.entries.find((entry) => entry.message.startsWith('a task lost its work since its last commit'))?.fields).toMatchObject({ task: '0_0', error: expect.stringMatching(/fenced/) });
      expect(committed.records.map((record) => (JSON.parse(record.value!) as Reading).ts)).toEqual([1, 2, 3]);
      await app.stop();
      expect(await committedOffsets(admin, id, input)).toEqual([3]);
      await other.close().catch(() => undefined);
    } finally {
      await app.stop();
      await takeover.close();
      await committed.stop();
    }
  });

  it('when the window task starts again, the task that handed it records since its last commit starts again with it: each window once, with the right count', async () => {
    const { id, input, output } = await freshTopics('eddy-cascade', 1);
    const base = Math.floor((Date.now() - 120_000) / 1000) * 1000;
    const logger = recordingLogger();
    const app = countingApp(id, input, output, (keyed) => keyed.tumbling('1s').count(), logger);
    const lost = () => logger.entries.filter((entry) => entry.message === 'a task lost its work since its last commit; it starts again from there');
    const rebuilt = () => logger.entries.filter((entry) => entry.message === 'task started again from its last commit');
    const committed = await gatherTopic(brokers, output, { readUncommitted: false });
    const takeover = kafkaTransport({ brokers, logger: recordingLogger() });
    try {
      await app.start();
      // Window 0 closes: the input task (0_0) has handed records to the window task (1_0), which committed them.
      await produceReadings(brokers, input, [{ sensor: 'a', ts: base + 1 }, { sensor: 'a', ts: base + 2 }, { sensor: 'a', ts: base + 1_500 }]);
      await waitFor('the first window', () => committed.records.length === 1, { timeoutMs: 20_000 });
      // Another producer takes the window task's transactional id over: its next commit fails and it
      // starts again from its last commit. What the input task handed it since then is gone with
      // its state, so the input task must start again too and hand those readings again.
      const [repartition] = (await admin.listTopics()).filter((topic) => topic.startsWith(`${id}-`) && topic.endsWith('-repartition'));
      const other = await takeover.createProducer({ transactionalId: `${id}:${repartition}:0` });
      await produceReadings(brokers, input, [{ sensor: 'a', ts: base + 1_600 }, { sensor: 'a', ts: base + 1_700 }]);
      const explain = () => taskTroubles(app, logger.entries);
      await waitFor('both tasks to start again', () => rebuilt().length >= 2, { timeoutMs: 20_000, explain });
      await produceReadings(brokers, input, [{ sensor: 'a', ts: base + 5_000 }]);
      await waitFor('the second window', () => committed.records.length >= 2, { timeoutMs: 20_000, explain });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(app.failure).toBeUndefined();
      // The input task started again because the window task did (not one commit later, when it would find its records uncommitted).
      expect(lost().find((entry) => entry.fields.task === '0_0')?.fields.error).toMatch(/task 1_0 started again: what task 0_0 handed it since its last commit is lost/);
      expect(lost().find((entry) => entry.fields.task === '1_0')?.fields.error).toMatch(/fenced/);
      expect(decode(committed.records)).toEqual([
        { sensor: 'a', start: base, count: 2 },
        { sensor: 'a', start: base + 1_000, count: 3 },
      ]);
      await other.close().catch(() => undefined);
    } finally {
      await app.stop();
      await takeover.close();
      await committed.stop();
    }
  }, 60_000);
});
