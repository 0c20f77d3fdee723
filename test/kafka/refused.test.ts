/**
 * Records the broker refuses for themselves, on a real broker: a window result stamped two hours
 * ahead (past Kafka's default `message.timestamp.after.max.ms` of an hour), a result larger than
 * its topic's `max.message.bytes`, and a record without a key for a compacted topic (which only
 * the broker can tell: INVALID_RECORD). Each goes to the dead letters with the broker's reason;
 * everything else reaches its topic, and the input offsets move on to the end. Under exactly-once
 * the first two are kept out of the transaction; the third dooms it, and the app stops and tells
 * its host instead of starting the task again forever. Under `onError: 'stop'` the app stops at
 * the first and commits nothing past it.
 */
import { createApp, type EddyError } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { ConfigResourceTypes } from '@platformatic/kafka';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { allCommitted, createTopics, deleteAppTopics, endOffsets, gatherTopic, produce, recordingLogger, testAdmin, waitFor, type Gathered, type TestMessage } from './helpers.ts';

interface Reading {
  sensor: string;
  ts: number;
  /** Padding: a window of sensor `big` collects past its topic's limit. */
  pad: string;
}

const windowMs = 1_000;
const sensors = ['a', 'b', 'c', 'd', 'big'];
const smallLimit = 4_000;

describeKafka('records the broker refuses', (brokers) => {
  const admin = testAdmin(brokers);

  afterAll(() => admin.close());

  /** Topics of one run: input (3 partitions), results with a small record limit, and a compacted copy of the input. */
  async function topics(prefix: string) {
    const names = { input: `${prefix}-in`, results: `${prefix}-results`, copies: `${prefix}-copies` };
    await createTopics(brokers, [
      { name: names.input, partitions: 3 },
      { name: names.results, partitions: 1 },
      { name: names.copies, partitions: 3, compacted: true },
    ]);
    await admin.alterConfigs({
      resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: names.results, configs: [{ name: 'max.message.bytes', value: String(smallLimit) }] }],
    });
    return names;
  }

  /**
   * Input: per sensor a reading every 100 ms for 3 s (event time a minute ago), the big sensor's
   * readings padded so its windows collect past the limit; one reading two hours ahead; one
   * reading without a key; then a reading per sensor well past every window, to close them.
   */
  async function produceInput(input: string) {
    const base = Math.floor((Date.now() - 60_000) / windowMs) * windowMs;
    const messages: TestMessage[] = [];
    for (let step = 0; step < 30; step++) {
      for (const sensor of sensors) {
        const reading: Reading = { sensor, ts: base + step * 100, pad: sensor === 'big' ? 'x'.repeat(500) : '' };
        messages.push({ key: sensor, value: JSON.stringify(reading), timestamp: Date.now() });
      }
    }
    const ahead: Reading = { sensor: 'a', ts: Date.now() + 2 * 3_600_000, pad: '' };
    messages.push({ key: 'a', value: JSON.stringify(ahead), timestamp: Date.now() });
    messages.push({ key: null, value: JSON.stringify({ sensor: 'nobody', ts: base, pad: '' }), timestamp: Date.now() });
    await produce(brokers, input, messages);
    return { base, ahead };
  }

  function buildApp(id: string, names: Awaited<ReturnType<typeof topics>>, options: { guarantee?: 'at-least-once' | 'exactly-once'; onError?: 'dead-letter' | 'stop' } = {}) {
    const logger = recordingLogger();
    const app = createApp({
      id,
      transport: kafkaTransport({ brokers, logger }),
      idleTimeout: false,
      commitInterval: '300ms',
      guarantee: options.guarantee ?? 'at-least-once',
      onError: options.onError ?? 'dead-letter',
      logger,
    });
    const readings = app.from<Reading>(names.input, { timestamp: (reading) => reading.ts });
    readings
      .keyBy((reading) => reading.sensor)
      .tumbling(windowMs)
      .collect()
      .onClose((window) => ({ sensor: window.key, start: window.start, count: window.value.length, pads: window.value.map((reading) => reading.pad) }))
      .to(names.results);
    readings.to(names.copies);
    return { app, logger };
  }

  const parsed = (records: readonly Gathered[]) => records.map((record) => JSON.parse(record.value!) as { sensor: string; start: number; count: number });

  for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
    it(`${guarantee}: each refused record is dead-lettered with the broker's reason, the rest is processed, the offsets move on`, async () => {
      const id = uniqueName(`refused-${guarantee}`);
      const names = await topics(id);
      const { base, ahead } = await produceInput(names.input);
      const { app, logger } = buildApp(id, names, { guarantee });
      const errors: EddyError[] = [];
      app.on('error', (error) => errors.push(error));
      let gathered: Array<{ stop(): Promise<void> }> = [];
      try {
        await app.start();
        // The app made the dead-letter topic.
        const [dead, results, copies] = await Promise.all([gatherTopic(brokers, `${id}-dlq`), gatherTopic(brokers, names.results), gatherTopic(brokers, names.copies)]);
        gathered = [dead, results, copies];
        // Closes every window of the input: a reading per sensor far past them (not past the broker's limit).
        await produce(brokers, names.input, sensors.map((sensor) => ({ key: sensor, value: JSON.stringify({ sensor, ts: base + 40_000, pad: '' }) })));

        const windows = 3 * (sensors.length - 1);
        if (guarantee === 'exactly-once') {
          // The record without a key dooms its transaction: the app stops and says why.
          await waitFor('the app to stop on the refusal inside its transaction', () => app.state === 'failed', { timeoutMs: 30_000, intervalMs: 100 });
          expect(errors).toHaveLength(1);
          expect(errors[0]!.code).toBe('RECORD_REJECTED');
          expect(errors[0]!.message).toMatch(/INVALID_RECORD|CORRUPT_MESSAGE/);
          expect(app.health().status).toBe('failed');
          return;
        }
        await waitFor('every record processed and committed', () => allCommitted(admin, id, [names.input]), { timeoutMs: 30_000, intervalMs: 200 });
        await waitFor('the dead letters', () => dead.records.length >= 5, { timeoutMs: 30_000, intervalMs: 200 });
        await waitFor('the window results', () => new Set(parsed(results.records).map((result) => `${result.sensor}@${result.start}`)).size >= windows, { timeoutMs: 30_000, intervalMs: 200 });

        // What the dead letters say: where each was bound, and the broker's reason.
        const deadLetters = (await endOffsets(admin, `${id}-dlq`)).reduce((sum, end) => sum + end, 0);
        await waitFor(`the ${deadLetters} records of the dead letters`, () => dead.records.length >= deadLetters, { timeoutMs: 20_000 });
        const letters = dead.records.map((record) => record.headers);
        // The reading two hours ahead goes to the repartition topic of its keyBy too, unless it was
        // handed to its task in process: once the keyless reading has moved between partitions,
        // the app steps its input and hands nothing off (a backlog's order), and the broker refuses
        // it there as well.
        const repartitioned = letters.filter((headers) => headers['step']?.endsWith('-repartition'));
        expect(repartitioned.map((headers) => [headers['error.reason'], Number(headers['timestamp'])])).toEqual(repartitioned.length === 0 ? [] : [['INVALID_TIMESTAMP', ahead.ts]]);
        const refusals = letters.filter((headers) => !repartitioned.includes(headers)).map((headers) => `${headers['step']}: ${headers['error.reason']}`).sort();
        const keyless = letters.find((headers) => headers['step'] === `to ${names.copies}` && headers['error.reason'] !== 'INVALID_TIMESTAMP');
        expect(keyless?.['error.reason'], 'a keyless record for a compacted topic').toMatch(/^(INVALID_RECORD|CORRUPT_MESSAGE)$/);
        expect(refusals).toEqual(
          [
            ...Array<string>(3).fill(`to ${names.results}: MESSAGE_TOO_LARGE`),
            `to ${names.copies}: INVALID_TIMESTAMP`,
            `to ${names.copies}: ${keyless!['error.reason']}`,
          ].sort(),
        );
        expect(letters.every((headers) => headers['error.code'] === 'RECORD_REJECTED' && headers['error'] !== undefined)).toBe(true);
        expect(Number(letters.find((headers) => headers['error.reason'] === 'INVALID_TIMESTAMP')!['timestamp'])).toBe(ahead.ts);
        expect(letters.filter((headers) => headers['error.reason'] === 'MESSAGE_TOO_LARGE').every((headers) => headers['dropped'] === 'value (too large)')).toBe(true);

        // Everything else reached its topic: the windows of the small sensors, ten readings each, and every other copy.
        const small = parsed(results.records).filter((result) => result.sensor !== 'big' && result.sensor !== 'nobody' && result.start < base + 10_000);
        expect(new Set(small.map((result) => `${result.sensor}@${result.start}`)).size).toBe(windows);
        expect(small.every((result) => result.count === 10)).toBe(true);
        // Each copy written once: the batches the broker took before it refused another went again as they were, and it knew them.
        expect(copies.records).toHaveLength(sensors.length * 31);
        expect(app.state).toBe('running');
        expect(app.health().status).toBe('ok');
        expect(app.metrics().deadLetters).toBe(5 + repartitioned.length);
        expect(errors).toEqual([]);
        expect(logger.entries.filter((entry) => entry.message === 'the log refused a record')).toHaveLength(5 + repartitioned.length);
      } finally {
        await Promise.all(gathered.map((gatherer) => gatherer.stop()));
        await app.stop().catch(() => undefined);
        await deleteAppTopics(admin, id);
      }
    }, 90_000);
  }

  it('onError "stop": the app stops at the first refused record, tells its host, and commits nothing past it', async () => {
    const id = uniqueName('refused-stop');
    const names = await topics(id);
    await produceInput(names.input);
    const { app } = buildApp(id, names, { onError: 'stop' });
    const errors: EddyError[] = [];
    app.on('error', (error) => errors.push(error));
    try {
      await app.start();
      await waitFor('the app to stop on the refused record', () => app.state === 'failed', { timeoutMs: 30_000, intervalMs: 100 });
      await app.stop();
      expect(errors).toHaveLength(1);
      expect(errors[0]!.code).toBe('RECORD_REJECTED');
      // The record without a key is the last of its partition: its offset, at least, is not committed.
      expect(await allCommitted(admin, id, [names.input])).toBe(false);
    } finally {
      await app.stop().catch(() => undefined);
      await deleteAppTopics(admin, id);
    }
  }, 60_000);
});
