/**
 * The flagship sensors pipeline on a real Kafka broker gives the same results as on the embedded
 * broker for the same input: the same predictions (anomaly flags, forecasts, locations from the
 * `sensors` table) and the same late readings.
 */
import { expect, it } from 'vitest';
import { memoryTransport, silentLogger } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { buildSensorsApp } from '../../examples/src/sensors/pipeline.js';
import { simulate } from '../../examples/src/sensors/simulator.js';
import { describeKafka, uniqueName } from './broker.ts';
import { createTopics, gatherTopic, testProducer, waitFor } from './helpers.ts';

const PARTITIONS = 3;

describeKafka('the sensors pipeline on Kafka', (brokers) => {
  it('gives the same predictions and late readings as on the embedded broker', async () => {
    const simulation = simulate({ sensors: 6, durationMs: 3 * 60_000, seed: 7, lateReadings: 4 });
    const readings = simulation.deliveries.map((delivery) => delivery.reading);
    // One far-future reading per sensor closes every window once the data is through.
    const sensors = [...new Set(readings.map((reading) => reading.sensor))];
    const closers = sensors.map((sensor) => ({ sensor, value: 0, ts: simulation.startTime + 3_600_000 }));
    // The table goes in first, so that every reading meets its sensor's metadata; at the start of
    // event time, since a table record moves its task's stream time like any other.
    const metadata = Object.entries(simulation.metadata).map(([sensor, info]) => ({ key: sensor, value: info, timestamp: simulation.startTime }));

    // The embedded broker.
    const memory = memoryTransport({ defaultPartitions: PARTITIONS });
    const local = buildSensorsApp({ id: 'sensors-local', transport: memory, idleTimeout: false, logger: silentLogger });
    await local.start();
    for (const { key, value, timestamp } of metadata) await local.send('sensors', value, { key, timestamp });
    await memory.idle();
    for (const reading of readings) await local.send('readings', reading, { key: reading.sensor });
    await memory.idle();
    for (const reading of closers) await local.send('readings', reading, { key: reading.sensor });
    await memory.idle();
    await local.stop();
    const decode = (bytes: Uint8Array | null) => new TextDecoder().decode(bytes!);
    const expectedPredictions = memory.records('predictions').map((record) => decode(record.value)).sort();
    const expectedLate = memory.records('late-readings').map((record) => decode(record.value)).sort();
    expect(expectedPredictions.length).toBeGreaterThan(500);
    expect(expectedLate.length).toBeGreaterThan(0);
    const locations = new Set(expectedPredictions.map((prediction) => (JSON.parse(prediction) as { location: string }).location));
    expect(locations.has('unknown')).toBe(false);
    expect(locations.size).toBeGreaterThan(1);

    // Kafka, same input in the same order per sensor.
    const id = uniqueName('sensors');
    const topicNames = { readings: `${id}-readings`, sensors: `${id}-sensors`, predictions: `${id}-predictions`, lateReadings: `${id}-late` };
    await createTopics(brokers, [
      { name: topicNames.readings, partitions: PARTITIONS },
      { name: topicNames.sensors, partitions: PARTITIONS },
      { name: topicNames.predictions, partitions: 1 },
      { name: topicNames.lateReadings, partitions: 1 },
    ]);
    const producer = testProducer(brokers);
    const toMessages = (batch: typeof readings) => batch.map((reading) => ({ key: reading.sensor, value: JSON.stringify(reading) }));
    const predictions = await gatherTopic(brokers, topicNames.predictions);
    const late = await gatherTopic(brokers, topicNames.lateReadings);
    const app = buildSensorsApp({ id, topicNames, transport: kafkaTransport({ brokers, logLevel: 'nothing' }), idleTimeout: false, logger: silentLogger });
    try {
      await app.start();
      await producer.send(topicNames.sensors, metadata.map(({ key, value, timestamp }) => ({ key, value: JSON.stringify(value), timestamp })));
      await waitFor('the sensors table', () => app.metrics().recordsIn >= metadata.length && app.metrics().lag === 0, { timeoutMs: 30_000, intervalMs: 100 });
      for (let from = 0; from < readings.length; from += 2000) await producer.send(topicNames.readings, toMessages(readings.slice(from, from + 2000)));
      await waitFor('the data to be processed', () => app.metrics().recordsIn >= metadata.length + readings.length && app.metrics().lag === 0, { timeoutMs: 90_000, intervalMs: 100 });
      await producer.send(topicNames.readings, toMessages(closers));
      await waitFor('every prediction', () => predictions.records.length >= expectedPredictions.length, { timeoutMs: 90_000, intervalMs: 100 });
      await waitFor('every late notice', () => late.records.length >= expectedLate.length, { timeoutMs: 30_000, intervalMs: 100 });
      // At-least-once may repeat a result after a rebalance; no run here has one, so none repeats.
      expect(predictions.records.map((record) => record.value!).sort()).toEqual(expectedPredictions);
      expect(late.records.map((record) => record.value!).sort()).toEqual(expectedLate);
    } finally {
      await app.stop();
      await predictions.stop();
      await late.stop();
      await producer.close();
    }
  }, 180_000);
});
