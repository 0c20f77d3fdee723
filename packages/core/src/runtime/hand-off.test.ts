/**
 * Local hand-off (on a transport that serializes internal topics, like Kafka): a stateless task hands records bound for its own partition of a repartition topic straight to the
 * local task that reads that partition. Tested on the embedded broker made to serialize like
 * Kafka, against counts computed by hand: what is handed off, what still goes through the topic,
 * and the switch-over after a restart, where records of the previous run wait in the topic.
 */
import { describe, expect, it } from 'vitest';
import { createApp, memoryTransport, partitionForKey, silentLogger, type App, type MemoryTransport, type OutgoingRecord } from '../index.js';
import type { ConsumerListener, TopicSpec, Transport, TransportConsumer, TransportProducer } from '../transport/types.js';
import { mulberry32 } from '../testing/index.js';
import { encodeReplayStamp, ORIGIN_HEADER } from './origin.js';

/** The embedded broker, but values travel as bytes on internal topics too (as on Kafka). */
class SerializingMemory implements Transport {
  readonly kind = 'memory-serializing';
  readonly keepsValues = false;
  /** Its log cannot be torn, like the embedded broker's (it commits as under at-least-once). */
  readonly exactlyOnce = true;
  readonly defaultPartitions = 3;
  readonly log: MemoryTransport = memoryTransport({ defaultPartitions: 3 });
  connect = () => this.log.connect();
  ensureTopics = (specs: readonly TopicSpec[]) => this.log.ensureTopics(specs);
  partitionCount = (topic: string) => this.log.partitionCount(topic);
  endOffset = (partition: { topic: string; partition: number }) => this.log.endOffset(partition);
  readPartition = (partition: { topic: string; partition: number }, from: number) => this.log.readPartition(partition, from);
  subscribe = (groupId: string, topics: readonly string[], listener: ConsumerListener): Promise<TransportConsumer> => this.log.subscribe(groupId, topics, listener);
  /** While true, sends with changelog records fail (a broker that refuses them). */
  failChangelogs = false;
  createProducer = async (): Promise<TransportProducer> => {
    const producer = await this.log.createProducer();
    return {
      send: async (records) => {
        if (this.failChangelogs && records.some((record) => record.topic.endsWith('-changelog'))) throw new Error('broker unavailable');
        return producer.send(records);
      },
      close: () => producer.close(),
    };
  };
  close = () => this.log.close();
}

interface Reading {
  sensor: string;
  ts: number;
}

const encoder = new TextEncoder();
const partitions = 3;
const repartition = 'hand-off-tumbling-1000ms-grace-10000ms-count-repartition';

function countingApp(transport: Transport, guarantee: 'at-least-once' | 'exactly-once' = 'at-least-once'): App {
  const app = createApp({ id: 'hand-off', transport, guarantee, commitInterval: '20ms', idleTimeout: false, logger: silentLogger });
  app
    .from<Reading>('in', { timestamp: (reading) => reading.ts })
    .keyBy((reading) => reading.sensor)
    // Grace covers the whole input: records of other partitions that come through the topic after
    // handed-off ones (stream time already ahead) still count.
    .tumbling('1s', { grace: '10s' })
    .count()
    .onClose((window) => ({ sensor: window.key, start: window.start, count: window.value }))
    .to('out');
  return app;
}

/** A reading in the input partition that `key` (default: its sensor) hashes to. */
function reading(sensor: string, ts: number, key = sensor): OutgoingRecord {
  const keyBytes = encoder.encode(key);
  return { topic: 'in', partition: partitionForKey(keyBytes, partitions), key: keyBytes, value: encoder.encode(JSON.stringify({ sensor, ts })), timestamp: ts };
}

/** Window counts by `sensor@start`. */
function counted(log: MemoryTransport): Map<string, number> {
  const results = new Map<string, number>();
  for (const record of log.records('out')) {
    const { sensor, start, count } = JSON.parse(new TextDecoder().decode(record.value!)) as { sensor: string; start: number; count: number };
    results.set(`${sensor}@${start}`, (results.get(`${sensor}@${start}`) ?? 0) + count);
  }
  return results;
}

function expectedCounts(readings: readonly Reading[]): Map<string, number> {
  const expected = new Map<string, number>();
  for (const { sensor, ts } of readings) {
    const window = `${sensor}@${Math.floor(ts / 1000) * 1000}`;
    expected.set(window, (expected.get(window) ?? 0) + 1);
  }
  return expected;
}

/** Polls `check` on real time (the app runs on the system clock); generous, for a loaded machine. */
async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const repartitionEnds = (log: MemoryTransport) => Array.from({ length: partitions }, (_, partition) => log.logEnd(repartition, partition));

/** Readings of 12 sensors over 5 s, in order per sensor, then one far-future reading per sensor. */
function workload(): { readings: Reading[]; closers: Reading[] } {
  const sensors = Array.from({ length: 12 }, (_, index) => `sensor-${index}`);
  const readings: Reading[] = [];
  for (let ts = 0; ts < 5_000; ts += 100) for (const sensor of sensors) readings.push({ sensor, ts: ts + (sensor.length % 7) });
  return { readings, closers: sensors.map((sensor) => ({ sensor, ts: 60_000 })) };
}

/** The counting app, started on a fresh serializing broker with the input topic. */
async function startedCountingApp(): Promise<{ transport: SerializingMemory; app: App }> {
  const transport = new SerializingMemory();
  transport.log.createTopic({ name: 'in', partitions });
  const app = countingApp(transport);
  await app.start();
  return { transport, app };
}

describe('local hand-off', () => {
  it('hands every record of an input keyed like the stream to the local task: the repartition topic stays empty, the counts are right', async () => {
    const { transport, app } = await startedCountingApp();
    const { readings, closers } = workload();
    transport.log.append([...readings, ...closers].map(({ sensor, ts }) => reading(sensor, ts)));
    const expected = expectedCounts(readings);
    await waitFor(() => counted(transport.log).size === expected.size, 'every window');
    await app.stop();
    expect(counted(transport.log)).toEqual(expected);
    expect(app.metrics().recordsHandedOff).toBe(readings.length + closers.length);
    expect(repartitionEnds(transport.log)).toEqual([0, 0, 0]);
  });

  it('sends records bound for another partition through the topic and hands off the rest: the counts are right', async () => {
    const { transport, app } = await startedCountingApp();
    const { readings, closers } = workload();
    // Keyed by something else: a sensor's readings land in one input partition, mostly not its own.
    transport.log.append(readings.map(({ sensor, ts }) => reading(sensor, ts, `${sensor}/site`)));
    await waitFor(() => app.metrics().recordsIn === readings.length, 'the readings');
    transport.log.append(closers.map(({ sensor, ts }) => reading(sensor, ts, `${sensor}/site`)));
    const expected = expectedCounts(readings);
    await waitFor(() => counted(transport.log).size === expected.size, 'every window');
    await app.stop();
    expect(counted(transport.log)).toEqual(expected);
    const throughTopic = repartitionEnds(transport.log).reduce((sum, end) => sum + end, 0);
    expect(throughTopic).toBeGreaterThan(0);
    expect(app.metrics().recordsHandedOff).toBeGreaterThan(0);
    expect(app.metrics().recordsHandedOff + throughTopic).toBe(readings.length + closers.length);
  });

  it('gives the counts of a brute-force reference on random out-of-order input, keyed like the stream or not', async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const random = mulberry32(seed);
      const transport = new SerializingMemory();
      transport.log.createTopic({ name: 'in', partitions });
      const app = countingApp(transport);
      await app.start();
      const sensors = Array.from({ length: 2 + Math.floor(random() * 10) }, (_, index) => `s${seed}-${index}`);
      const readings: Reading[] = [];
      const records: OutgoingRecord[] = [];
      for (let index = 0; index < 200 + Math.floor(random() * 400); index++) {
        const sensor = sensors[Math.floor(random() * sensors.length)]!;
        // Up to 3 s out of order (grace is 10 s), and for some seeds keyed by something else.
        const item: Reading = { sensor, ts: Math.max(0, index * 20 - Math.floor(random() * 3_000)) };
        readings.push(item);
        const keyedOtherwise = seed % 3 === 0 || (seed % 3 === 1 && random() < 0.3);
        records.push(reading(sensor, item.ts, keyedOtherwise ? `${sensor}#${Math.floor(random() * 5)}` : sensor));
      }
      // In a few appends, as a live source would deliver them.
      for (let from = 0; from < records.length; from += 97) transport.log.append(records.slice(from, from + 97));
      await waitFor(() => app.metrics().recordsIn === records.length, 'the readings');
      transport.log.append(sensors.map((sensor) => reading(sensor, 60_000)));
      const expected = expectedCounts(readings);
      await waitFor(() => counted(transport.log).size === expected.size, `every window (seed ${seed})`);
      await app.stop();
      expect(counted(transport.log), `seed ${seed}`).toEqual(expected);
      expect(app.metrics().lateRecords, `seed ${seed}`).toBe(0);
      if (seed % 3 === 2) expect(app.metrics().recordsHandedOff, `seed ${seed}`).toBe(records.length + sensors.length);
    }
  });

  it('after a restart, reads what the previous run left in the repartition topic before it hands off: nothing lost, nothing counted twice', async () => {
    const transport = new SerializingMemory();
    transport.log.createTopic({ name: 'in', partitions });
    const sensor = 'sensor-7';
    const readings = Array.from({ length: 10 }, (_, index) => ({ sensor, ts: index * 10 }));
    const input = readings.map(({ ts }) => reading(sensor, ts));
    const partition = input[0]!.partition;
    transport.log.append(input);
    // The previous run read readings 0..5 and committed its input there, but the task reading the
    // repartition topic had not read their copies (4 and 5 went out twice: a retried send).
    const copies = [0, 1, 2, 3, 4, 5, 4, 5].map((index) => ({
      topic: repartition,
      partition,
      key: encoder.encode(sensor),
      value: encoder.encode(JSON.stringify(readings[index])),
      timestamp: readings[index]!.ts,
      headers: { [ORIGIN_HEADER]: encodeReplayStamp([`in:${partition}`, index, 0]) },
    }));
    transport.log.ensureTopics([{ name: repartition, partitions }]);
    transport.log.append(copies);
    const previous = await transport.log.subscribe('hand-off', ['in'], { onAssign: async () => undefined, onRevoke: async () => undefined, onRecords: async () => undefined });
    await previous.commit([{ topic: 'in', partition, offset: 6 }]);
    await previous.close();

    const app = countingApp(transport);
    await app.start();
    // Readings 6..9 go through the topic too, behind the previous run's copies.
    await waitFor(() => app.metrics().recordsIn === 4 && app.metrics().duplicatesDropped === 2 && app.metrics().lag === 0, 'readings 6..9 and the topic to be read');
    expect(app.metrics().recordsHandedOff).toBe(0);
    // Caught up: more readings, and the closer, are handed off.
    const more = Array.from({ length: 5 }, (_, index) => ({ sensor, ts: 100 + index }));
    transport.log.append(more.map(({ ts }) => reading(sensor, ts)));
    // This run read readings 6..9, then these five.
    await waitFor(() => app.metrics().recordsIn === 9, 'more readings');
    transport.log.append([reading(sensor, 60_000)]);
    await waitFor(() => counted(transport.log).size === 1, 'the window');
    await app.stop();
    expect(counted(transport.log)).toEqual(new Map([[`${sensor}@0`, 15]]));
    expect(app.metrics().recordsHandedOff).toBe(6);
  });

  it('commits no input offset before the task it handed records to has committed them', async () => {
    const transport = new SerializingMemory();
    transport.log.createTopic({ name: 'in', partitions });
    const readings = Array.from({ length: 10 }, (_, index) => ({ sensor: 'a', ts: index * 10 }));
    const first = countingApp(transport);
    await first.start();
    // The window task cannot write its changelog: its commits fail, so the task that handed it
    // the readings must not commit their offsets either.
    transport.failChangelogs = true;
    transport.log.append(readings.map(({ sensor, ts }) => reading(sensor, ts)));
    await waitFor(() => first.metrics().recordsHandedOff === 10, 'the readings to be handed off');
    // Commits every 20 ms, all failing: ten failures span several rounds.
    await waitFor(() => first.metrics().commitFailures >= 10, 'ten failed commits');
    await first.stop();
    // A new instance reads the readings again: their window state was never committed.
    transport.failChangelogs = false;
    const second = countingApp(transport);
    await second.start();
    transport.log.append([reading('a', 60_000)]);
    await waitFor(() => counted(transport.log).size === 1, 'the window');
    await second.stop();
    expect(second.metrics().recordsIn).toBe(11);
    expect(counted(transport.log)).toEqual(new Map([['a@0', 10]]));
  });

  it('is on on the embedded broker too, and off on a transport that says so', async () => {
    for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
      for (const localHandOff of [undefined, false]) {
        const embedded = Object.assign(memoryTransport({ defaultPartitions: 3 }), localHandOff === undefined ? {} : { localHandOff });
        embedded.createTopic({ name: 'in', partitions });
        const app = countingApp(embedded, guarantee);
        await app.start();
        embedded.append([reading('a', 0), reading('b', 10), reading('a', 60_000), reading('b', 60_000)]);
        await waitFor(() => counted(embedded).size === 2, 'the windows');
        await app.stop();
        expect(counted(embedded)).toEqual(new Map([['a@0', 1], ['b@0', 1]]));
        const throughTopic = [0, 1, 2].reduce((sum, partition) => sum + embedded.logEnd(repartition, partition), 0);
        // Each reading goes one way or the other: handed off (to the task of its own partition) or through the topic.
        expect(app.metrics().recordsHandedOff + throughTopic).toBe(4);
        if (localHandOff === false) expect(app.metrics().recordsHandedOff).toBe(0);
        else expect(app.metrics().recordsHandedOff).toBeGreaterThan(0);
      }
    }
  });
});
