/**
 * What the Kafka benchmarks (kafka-eos.ts, kafka-profile.ts) share: topics, the bench workload
 * produced once to a real broker (keyed and partitioned like the engine would), and the job.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { partitionForKey, type App, type MetricsSnapshot } from '@eddy/core';
import kafkajs from 'kafkajs';
import type { Kafka } from 'kafkajs';
import { startKafka } from '@eddy/scripts/kafka';
import { buildWorkload, defaultWorkload, START_TS } from './workload.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates a topic with `partitions` partitions and gives its leaders a moment to settle. */
export async function createTopic(kafka: Kafka, topic: string, partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  await sleep(500);
}

/** A Kafka benchmark's brokers and client. */
export interface BenchKafka {
  readonly brokers: string[];
  readonly kafka: Kafka;
  /** Where the brokers come from, for the report. */
  readonly source: string;
  /** Deletes the topics and groups whose names contain `tag` (see below), then stops the broker if it was started here. */
  close(tag: string): Promise<void>;
}

/** The brokers of `KAFKA_BROKERS`, or a broker started for the run (scripts/src/kafka.ts). */
export async function benchKafka(clientId: string, log: (message: string) => void): Promise<BenchKafka> {
  const fromEnv = (process.env.KAFKA_BROKERS ?? '').split(',').map((entry) => entry.trim()).filter(Boolean);
  const started = fromEnv.length === 0 ? (log('starting a broker (scripts/src/kafka.ts)'), await startKafka({ log })) : undefined;
  const brokers = started?.brokers ?? fromEnv;
  const kafka = new kafkajs.Kafka({ clientId, brokers, logLevel: kafkajs.logLevel.NOTHING });
  return {
    brokers,
    kafka,
    source: started ? 'started for the run (scripts/src/kafka.ts)' : `KAFKA_BROKERS=${fromEnv.join(',')}`,
    async close(tag) {
      await deleteTopicsAndGroups(kafka, tag).catch((error: unknown) => log(`could not delete this run's topics: ${String(error)}`));
      await started?.stop(10_000);
    },
  };
}

/**
 * Deletes the topics and consumer groups whose names contain `tag` (what a benchmark round made):
 * a broker that keeps every round's topics compacts and tracks more and more of them meanwhile,
 * which slows the rounds after.
 */
export async function deleteTopicsAndGroups(kafka: Kafka, tag: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((name) => name.includes(tag));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
    const groups = (await admin.listGroups()).groups.map((group) => group.groupId).filter((id) => id.includes(tag));
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Produces the input once: `records` readings of the bench workload (1,000 sensors, 10% out of
 * order) re-timed to recent timestamps, then one far-future reading per sensor so that every
 * window closes. Returns the number of records produced.
 */
export async function produceInput(kafka: Kafka, topic: string, records: number, partitions: number): Promise<number> {
  const { input, eventTimeSpanMs } = buildWorkload({ records, ...defaultWorkload });
  const regular = input.slice(0, -1);
  const base = Math.floor((Date.now() - 2 * 3_600_000) / 10_000) * 10_000;
  const shift = base - START_TS;
  // The largest regular timestamp, re-timed (a spread of every timestamp overflows the stack at 300k).
  const lastTs = START_TS + eventTimeSpanMs + shift;
  const messages = regular.map((record) => ({ key: record.key!, value: record.value!, timestamp: record.timestamp + shift }));
  const encoder = new TextEncoder();
  for (let sensor = 0; sensor < defaultWorkload.keys; sensor++) {
    const name = `sensor-${String(sensor).padStart(4, '0')}`;
    messages.push({ key: encoder.encode(name), value: encoder.encode(JSON.stringify({ sensor: name, value: 0, ts: lastTs + 3_600_000 })), timestamp: lastTs + 3_600_000 });
  }
  const producer = kafka.producer({ idempotent: true, createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    for (let from = 0; from < messages.length; from += 10_000) {
      await producer.sendBatch({
        acks: -1,
        topicMessages: [
          {
            topic,
            messages: messages.slice(from, from + 10_000).map((message) => ({
              key: Buffer.from(message.key),
              value: Buffer.from(message.value),
              timestamp: String(message.timestamp),
              partition: partitionForKey(message.key, partitions),
            })),
          },
        ],
      });
    }
  } finally {
    await producer.disconnect();
  }
  return messages.length;
}

/** The benchmarked job: readings keyed by sensor, counted in hopping(10s, 1s) windows, each count sent to `output`. */
export function defineJob(app: App, source: string, output: string): void {
  app
    .from<{ sensor: string }>(source)
    .keyBy((reading) => reading.sensor)
    .hopping('10s', '1s')
    .count()
    .onClose((window) => ({ sensor: window.key, start: window.start, count: window.value }))
    .to(output);
}

/** What {@link timeUntilSettled} measured, from its call to the last change of progress. */
export interface SettledRun {
  readonly ms: number;
  /** This process's CPU time (all threads). */
  readonly cpuMs: number;
  /** The share of the time the event loop was busy (not waiting for I/O). */
  readonly eventLoopUtilization: number;
}

/**
 * Times a running app until it is done: `settled` (say, all input read) and `progress` (say,
 * windows closed) unchanged for 3 s, polled every 10 ms; the time, CPU and event-loop figures are
 * those at the last change. Throws the app's failure.
 */
export async function timeUntilSettled(app: App, progress: (metrics: MetricsSnapshot) => number, settled: (metrics: MetricsSnapshot) => boolean): Promise<SettledRun> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const eluStart = performance.eventLoopUtilization();
  let last = { at: started, cpu: process.cpuUsage(cpu), elu: performance.eventLoopUtilization(eluStart) };
  let seen = -1;
  for (;;) {
    await sleep(10);
    const metrics = app.metrics();
    const now = progress(metrics);
    if (now !== seen) {
      seen = now;
      last = { at: performance.now(), cpu: process.cpuUsage(cpu), elu: performance.eventLoopUtilization(eluStart) };
    }
    if (settled(metrics) && performance.now() - last.at > 3_000) break;
    if (app.failure) throw app.failure;
  }
  return { ms: last.at - started, cpuMs: (last.cpu.user + last.cpu.system) / 1000, eventLoopUtilization: last.elu.utilization };
}
