/**
 * What the Kafka benchmarks (kafka-eos.ts, kafka-profile.ts) share, on @platformatic/kafka's
 * public API: the brokers, topics, the bench workload produced once (keyed and partitioned as the
 * engine would), the windows the jobs must close, and clean-up.
 */
import { Buffer } from 'node:buffer';
import { partitionForKey } from '@eddy/core';
import { Admin, Producer } from '@platformatic/kafka';
import { startKafka } from '@eddy/scripts/kafka';
import { createHandWindows } from './baseline.js';
import { CLOSER_GAP_MS, buildWorkload, defaultWorkload, sensorName, START_TS } from './workload.js';
import type { WindowShape } from './windowing.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Kafka benchmark's brokers and admin client. */
export interface BenchKafka {
  readonly brokers: string[];
  readonly admin: Admin;
  /** Where the brokers come from, for the report. */
  readonly source: string;
  /** Deletes the topics and groups whose names contain `tag`, then stops the broker if it was started here. */
  close(tag: string): Promise<void>;
}

/** The brokers of `KAFKA_BROKERS`, or a broker started for the run (scripts/src/kafka.ts). */
export async function benchKafka(clientId: string, log: (message: string) => void): Promise<BenchKafka> {
  const fromEnv = (process.env.KAFKA_BROKERS ?? '').split(',').map((entry) => entry.trim()).filter(Boolean);
  const started = fromEnv.length === 0 ? (log('starting a broker (scripts/src/kafka.ts)'), await startKafka({ log })) : undefined;
  const brokers = started?.brokers ?? fromEnv;
  const admin = new Admin({ clientId, bootstrapBrokers: brokers });
  return {
    brokers,
    admin,
    source: started ? 'started for the run (scripts/src/kafka.ts)' : `KAFKA_BROKERS=${fromEnv.join(',')}`,
    async close(tag) {
      await deleteTopicsAndGroups(admin, tag).catch((error: unknown) => log(`could not delete this run's topics: ${String(error)}`));
      await admin.close();
      await started?.stop(10_000);
    },
  };
}

/**
 * Creates a topic; `logAppendTime` makes the broker stamp each record with its append time, so
 * that the records read back tell when they were written.
 */
export async function createTopic(admin: Admin, topic: string, partitions: number, { logAppendTime = false } = {}): Promise<void> {
  const configs = logAppendTime ? [{ name: 'message.timestamp.type', value: 'LogAppendTime' }] : [];
  await admin.createTopics({ topics: [topic], partitions, replicas: 1, configs });
  // Until the partitions have leaders: a produce or fetch right after creation may find none.
  for (let attempt = 0; attempt < 50; attempt++) {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
    if (metadata.topics.get(topic)?.partitions.every((partition) => partition.leader >= 0)) return;
    await sleep(100);
  }
  throw new Error(`topic ${topic} has partitions without a leader`);
}

/**
 * Deletes the topics and consumer groups whose names contain `tag` (what a run made): a broker
 * that keeps every run's topics compacts and tracks more and more of them, which slows the runs after.
 */
export async function deleteTopicsAndGroups(admin: Admin, tag: string): Promise<void> {
  const topics = (await admin.listTopics()).filter((name) => name.includes(tag));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  const groups = [...(await admin.listGroups()).keys()].filter((id) => id.includes(tag));
  if (groups.length > 0) await admin.deleteGroups({ groups }).catch(() => undefined);
}

/** Records in `topic`: the sum over its partitions of end offset − start offset. */
export async function topicRecords(admin: Admin, topic: string): Promise<number> {
  const partitions = (await admin.metadata({ topics: [topic] })).topics.get(topic)!.partitionsCount;
  const request = (timestamp: bigint) => ({ topics: [{ name: topic, partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({ partitionIndex, timestamp })) }] });
  const sum = (listed: Awaited<ReturnType<Admin['listOffsets']>>) => listed.flatMap((entry) => entry.partitions).reduce((total, entry) => total + Number(entry.offset), 0);
  return sum(await admin.listOffsets(request(-1n))) - sum(await admin.listOffsets(request(-2n)));
}

/** The input as produced: per partition, its records in order, and their count. */
export interface BenchInput {
  readonly records: number;
  readonly partitions: ReadonlyArray<ReadonlyArray<{ key: Uint8Array; value: Uint8Array; timestamp: number }>>;
}

/**
 * The bench workload (1,000 sensors, 10% out of order) re-timed to recent timestamps (older ones
 * fall to the broker's time retention), plus one far-future reading per sensor so that every
 * window closes; partitioned by murmur2 of the key, as the engine partitions its repartition topic.
 */
export function benchInput(records: number, partitions: number): BenchInput {
  const { input, eventTimeSpanMs } = buildWorkload({ records, ...defaultWorkload });
  const shift = Math.floor((Date.now() - 2 * 3_600_000) / 10_000) * 10_000 - START_TS;
  const closerTs = START_TS + eventTimeSpanMs + shift + CLOSER_GAP_MS;
  const encoder = new TextEncoder();
  const byPartition = Array.from({ length: partitions }, () => [] as Array<{ key: Uint8Array; value: Uint8Array; timestamp: number }>);
  const add = (key: Uint8Array, value: Uint8Array, timestamp: number) => byPartition[partitionForKey(key, partitions)]!.push({ key, value, timestamp });
  // The workload's own closer is replaced by one per sensor: each partition's stream time must pass every window.
  for (let index = 0; index < input.length - 1; index++) add(input[index]!.key!, input[index]!.value!, input[index]!.timestamp + shift);
  for (let sensor = 0; sensor < defaultWorkload.keys; sensor++) {
    const name = sensorName(sensor);
    add(encoder.encode(name), encoder.encode(JSON.stringify({ sensor: name, value: 0, ts: closerTs })), closerTs);
  }
  return { records: input.length - 1 + defaultWorkload.keys, partitions: byPartition };
}

/** Produces the input to `topic` (which has as many partitions), 10,000 records per request. */
export async function produceInput(brokers: readonly string[], topic: string, input: BenchInput): Promise<void> {
  const producer = new Producer({ clientId: 'eddy-bench-input', bootstrapBrokers: [...brokers], idempotent: true });
  try {
    for (const [partition, records] of input.partitions.entries()) {
      for (let from = 0; from < records.length; from += 10_000) {
        const messages = records.slice(from, from + 10_000).map((record) => ({ topic, partition, key: Buffer.from(record.key), value: Buffer.from(record.value), timestamp: BigInt(record.timestamp) }));
        await producer.send({ messages });
      }
    }
  } finally {
    await producer.close();
  }
}

/** The non-empty windows a job closes on `input` and the records late for one: per partition, as the engine's tasks see them. */
export function expectedWindows(input: BenchInput, shape: WindowShape): { windows: number; lateRecords: number } {
  let windows = 0;
  let lateRecords = 0;
  for (const records of input.partitions) {
    const hand = createHandWindows(shape, 'count', { reencode: false });
    for (const record of records) hand.push(record.key, record.value, record.timestamp);
    const summary = hand.summary();
    windows += summary.windows;
    lateRecords += summary.lateRecords;
  }
  return { windows, lateRecords };
}
