/**
 * Eddy apps on a real broker through `kafkaTransport`: windows end to end, a restart that resumes
 * from committed offsets with an open window restored from the changelog, and a second instance
 * joining a running one (a rebalance) without losing a record.
 */
import { createApp, partitionForKey, serdes, type App } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { committedOffsets, createTopics, endOffsets, gatherTopic, produceReadings, recordingLogger, testAdmin, waitFor, type Gathered } from './helpers.ts';

interface Reading {
  sensor: string;
  ts: number;
  seq: number;
}

interface WindowCount {
  key: string;
  start: number;
  end: number;
  value: number;
}

const windowMs = 1_000;

/** Readings for `sensors` in windows `[first, last]` after `base`, `perWindow(sensor, window)` of each, time-ordered. */
function readings(sensors: readonly string[], base: number, windows: readonly number[], perWindow: (sensor: number, window: number) => number): Reading[] {
  const result: Reading[] = [];
  let seq = 0;
  for (const window of windows) {
    for (let slot = 0; slot < 10; slot++) {
      sensors.forEach((sensor, index) => {
        if (slot < perWindow(index, window)) result.push({ sensor, ts: base + window * windowMs + slot * 90 + index, seq: seq++ });
      });
    }
  }
  return result;
}

/** The count of every (sensor, window start) in `input`. */
function expectedCounts(input: readonly Reading[], base: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { sensor, ts } of input) {
    const start = base + Math.floor((ts - base) / windowMs) * windowMs;
    const key = `${sensor}@${start}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

const decode = (records: readonly Gathered[]): WindowCount[] => records.map((record) => JSON.parse(record.value!) as WindowCount);

/** Sensors that cover every one of `partitions` partitions (keys land by murmur2, as Kafka's partitioner puts them). */
function sensorsCovering(partitions: number, count: number): string[] {
  const sensors = Array.from({ length: count }, (_, index) => `sensor-${index}`);
  const covered = new Set(sensors.map((sensor) => partitionForKey(new TextEncoder().encode(sensor), partitions)));
  expect(covered.size, 'the sensors of the test cover every partition').toBe(partitions);
  return sensors;
}


describeKafka('an Eddy app on Kafka', (brokers) => {
  const admin = testAdmin(brokers);

  afterAll(() => admin.close());

  it('hands a bytes() serde plain Uint8Arrays, as the embedded broker does (the Kafka client fetches Node Buffers)', async () => {
    const id = uniqueName('eddy-bytes');
    const [input, output] = [`${id}-in`, `${id}-out`];
    await createTopics(brokers, [
      { name: input, partitions: 1 },
      { name: output, partitions: 1 },
    ]);
    await produceReadings(brokers, input, [{ sensor: 'a', ts: 1 }]);
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger: recordingLogger() }), idleTimeout: false });
    app
      .from<Uint8Array>(input, { value: serdes.bytes() })
      .map((value) => ({ type: value.constructor.name, json: JSON.stringify(value).slice(0, 8), text: new TextDecoder().decode(value) }))
      .to(output);
    const out = await gatherTopic(brokers, output);
    try {
      await app.start();
      await waitFor('the record', () => out.records.length === 1);
      expect(JSON.parse(out.records[0]!.value!)).toEqual({ type: 'Uint8Array', json: '{"0":123', text: JSON.stringify({ sensor: 'a', ts: 1 }) });
    } finally {
      await app.stop();
      await out.stop();
    }
  });

  it('counts tumbling windows, then a restart resumes from the committed offsets and closes the window left open', async () => {
    const id = uniqueName('eddy-e2e');
    const input = `${id}-in`;
    const output = `${id}-out`;
    await createTopics(brokers, [{ name: input, partitions: 2 }]);
    const sensors = sensorsCovering(2, 6);
    // Aligned to the window size, a minute ago (recent enough for the topic's retention).
    const base = Math.floor((Date.now() - 60_000) / windowMs) * windowMs;
    const perWindow = (sensor: number, window: number) => 1 + ((sensor + window) % 3);
    const logger = recordingLogger();
    const build = () => {
      // A fresh transport per instance, as a restarted process would have.
      const app = createApp({ id, transport: kafkaTransport({ brokers, logger, defaultPartitions: 2 }), idleTimeout: false, commitInterval: '300ms', logger });
      app.from<Reading>(input, { timestamp: (reading) => reading.ts }).keyBy((reading) => reading.sensor).tumbling(windowMs).count().toStream().to(output);
      return app;
    };
    let gathered: Awaited<ReturnType<typeof gatherTopic>> | undefined;
    let running: App | undefined;
    try {
      // Windows 0..2: 0 and 1 close (stream time reaches window 2), 2 stays open.
      const before = readings(sensors, base, [0, 1, 2], perWindow);
      await produceReadings(brokers, input, before);
      const first = (running = build());
      await first.start();
      // The app created its output topic with the transport's defaultPartitions.
      expect((await admin.metadata({ topics: [output] })).topics.get(output)!.partitionsCount).toBe(2);
      gathered = await gatherTopic(brokers, output);
      const outputs = gathered.records;
      await waitFor('windows 0 and 1 of every sensor, and all input read', () => decode(outputs).length >= sensors.length * 2 && first.metrics().recordsIn === before.length);
      await first.stop();
      running = undefined;
      // The stop committed everything the instance read.
      expect(await committedOffsets(admin, id, input)).toEqual(await endOffsets(admin, input));
      const firstOutputs = outputs.length;

      // More of window 2, then 3..5: window 2 closes with the records of both runs; 5 stays open.
      const after = readings(sensors, base, [2, 3, 4, 5], (sensor, window) => (window === 2 ? 1 : perWindow(sensor, window)));
      await produceReadings(brokers, input, after);
      const second = (running = build());
      await second.start();
      await waitFor('windows 2..4 of every sensor', () => decode(outputs).length >= sensors.length * 5);
      // Let anything that should not come (reprocessed input) come.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await second.stop();
      running = undefined;

      expect(second.metrics().recordsIn, 'the second run read only the new input').toBe(after.length);
      expect(second.metrics().restoredRecords).toBeGreaterThan(0);
      const results = decode(outputs);
      const expected = expectedCounts([...before, ...after], base);
      const closed = [...expected].filter(([key]) => !key.endsWith(`@${base + 5 * windowMs}`));
      expect(results.map((result) => `${result.key}@${result.start}`).sort(), 'each closed window exactly once').toEqual(closed.map(([key]) => key).sort());
      for (const result of results) {
        expect(result.end - result.start).toBe(windowMs);
        expect(result.value, `count of ${result.key} at ${result.start - base}`).toBe(expected.get(`${result.key}@${result.start}`));
      }
      // The window open at the stop was closed by the second run, with records of both.
      expect(decode(outputs.slice(firstOutputs)).filter((result) => result.start === base + 2 * windowMs)).toHaveLength(sensors.length);
      expect(logger.errors()).toEqual([]);
    } finally {
      await running?.stop();
      await gathered?.stop();
      await admin.deleteTopics({ topics: [input, output] }).catch(() => undefined);
    }
  }, 60_000);

  it('hands partitions to a second instance that joins a running one and back when it leaves, losing nothing', async () => {
    const id = uniqueName('eddy-rebalance');
    const input = `${id}-in`;
    const output = `${id}-out`;
    await createTopics(brokers, [
      { name: input, partitions: 4 },
      { name: output, partitions: 4 },
    ]);
    const sensors = sensorsCovering(4, 12);
    const base = Math.floor((Date.now() - 60_000) / windowMs) * windowMs;
    const perWindow = (sensor: number, window: number) => 1 + ((sensor * 7 + window) % 4);
    const logger = recordingLogger();
    const build = () => {
      const app = createApp({ id, transport: kafkaTransport({ brokers, logger }), idleTimeout: false, commitInterval: '300ms', logger });
      app.from<Reading>(input, { timestamp: (reading) => reading.ts }).keyBy((reading) => reading.sensor).tumbling(windowMs).count().toStream().to(output);
      return app;
    };
    const gathered = await gatherTopic(brokers, output);
    const first = build();
    const second = build();
    try {
      const round1 = readings(sensors, base, [0, 1, 2], perWindow);
      await produceReadings(brokers, input, round1);
      await first.start();
      expect(first.metrics().tasks).toBe(8);
      await waitFor('window 0 of every sensor', () => decode(gathered.records).filter((result) => result.start === base).length >= sensors.length);

      // The second instance joins while input keeps coming.
      const round2 = readings(sensors, base, [2, 3, 4, 5], (sensor, window) => (window === 2 ? 2 : perWindow(sensor, window)));
      const joining = second.start();
      await produceReadings(brokers, input, round2.slice(0, round2.length / 2));
      await joining;
      await produceReadings(brokers, input, round2.slice(round2.length / 2));
      // Window 6 closes window 5 everywhere and stays open itself.
      const round3 = readings(sensors, base, [6], () => 1);
      await produceReadings(brokers, input, round3);

      expect(first.metrics().tasks + second.metrics().tasks, 'every task runs on exactly one instance').toBe(8);
      expect(second.metrics().tasks, 'partitions moved to the second instance').toBeGreaterThan(0);
      expect(first.metrics().tasks).toBeGreaterThan(0);

      // The input holds each reading once (a count that is off below is the app's doing).
      const inputEnds = await endOffsets(admin, input);
      expect(inputEnds.reduce((sum, end) => sum + end, 0)).toBe(round1.length + round2.length + round3.length);
      const expected = expectedCounts([...round1, ...round2, ...round3], base);
      const closedKeys = [...expected.keys()].filter((key) => !key.endsWith(`@${base + 6 * windowMs}`));
      await waitFor('windows 0..5 of every sensor', () => {
        const seen = new Set(decode(gathered.records).map((result) => `${result.key}@${result.start}`));
        return closedKeys.every((key) => seen.has(key));
      }, { timeoutMs: 40_000 });

      // At least once: a window may be reported twice, but every report has the full count.
      for (const result of decode(gathered.records)) {
        expect(result.value, `count of ${result.key} at ${result.start - base}`).toBe(expected.get(`${result.key}@${result.start}`));
      }

      // And back: the second instance leaves, the first takes everything over, window 6 (open
      // on both) closes with the records from before and after.
      await second.stop();
      await waitFor('the first instance to run every task again', () => first.metrics().tasks === 8);
      const round4 = readings(sensors, base, [6, 7], () => 1);
      await produceReadings(brokers, input, round4);
      const all = expectedCounts([...round1, ...round2, ...round3, ...round4], base);
      const window6 = [...all.keys()].filter((key) => key.endsWith(`@${base + 6 * windowMs}`));
      await waitFor('window 6 of every sensor', () => {
        const seen = new Set(decode(gathered.records).map((result) => `${result.key}@${result.start}`));
        return window6.every((key) => seen.has(key));
      });
      for (const result of decode(gathered.records)) {
        expect(result.value, `count of ${result.key} at ${result.start - base}`).toBe(all.get(`${result.key}@${result.start}`));
      }
      expect(logger.errors()).toEqual([]);
    } finally {
      await Promise.allSettled([first.stop(), second.stop()]);
      await gathered.stop();
      await admin.deleteTopics({ topics: [input, output] }).catch(() => undefined);
    }
  }, 60_000);
});
