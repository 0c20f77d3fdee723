/**
 * The raw kafkajs consumer of the Kafka benchmark: a new group reads a topic from the beginning
 * and only counts the records in `eachBatch`; the clock runs from its group join until the last
 * record. kafka-eos.ts runs it in its own process (with the kafkajs fixes `@eddy/kafka` installs)
 * and, through this file's command line, in a child process that never loads `@eddy/kafka`
 * (stock kafkajs):
 *
 *   node bench/dist/raw-consumer.js <brokers,comma-separated> <topic> <records> <group id>
 *
 * prints `{ "recordsPerSecond": N, "cpuMs": M }` (this process's CPU time, all threads, over the
 * same span).
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import type { Batch, Kafka } from 'kafkajs';

/** A timed read: records per second, and the process's CPU time (ms, all threads) over the same span. */
export interface TimedRun {
  readonly recordsPerSecond: number;
  readonly cpuMs: number;
}

/** A consumer that counts `total` records of `topic` in a new group. */
export function rawConsumerRun(kafka: Kafka, topic: string, total: number, groupId: string): Promise<TimedRun> {
  return timedConsumerRun(kafka, topic, total, groupId);
}

/**
 * Records per second of a new group reading `total` records of `topic` from the beginning,
 * awaiting `onBatch` (if given) on each batch before counting it: from its group join until the
 * last record.
 */
export async function timedConsumerRun(kafka: Kafka, topic: string, total: number, groupId: string, onBatch?: (batch: Batch) => Promise<void>): Promise<TimedRun> {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  let count = 0;
  let started = 0;
  let finished = 0;
  let cpu = process.cpuUsage();
  let cpuUsed = cpu;
  const done = new Promise<void>((resolve) => {
    consumer.on(consumer.events.GROUP_JOIN, () => {
      started = performance.now();
      cpu = process.cpuUsage();
    });
    void consumer.connect().then(async () => {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        eachBatch: async ({ batch }) => {
          await onBatch?.(batch);
          count += batch.messages.length;
          if (count >= total && finished === 0) {
            finished = performance.now();
            cpuUsed = process.cpuUsage(cpu);
            resolve();
          }
        },
      });
    });
  });
  await done;
  await consumer.disconnect();
  return { recordsPerSecond: Math.round((total * 1000) / (finished - started)), cpuMs: (cpuUsed.user + cpuUsed.system) / 1000 };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [brokers = '', topic = '', total = '0', groupId = ''] = process.argv.slice(2);
  const kafka = new kafkajs.Kafka({ clientId: 'eddy-bench-raw', brokers: brokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
  process.stdout.write(`${JSON.stringify(await rawConsumerRun(kafka, topic, Number(total), groupId))}\n`);
}
