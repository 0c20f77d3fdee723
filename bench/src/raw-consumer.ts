/**
 * The raw kafkajs consumer of the Kafka benchmark: a new group reads a topic from the beginning
 * and only counts the records in `eachBatch`; the clock runs from its group join until the last
 * record. kafka-eos.ts runs it in its own process (with the kafkajs fixes `@eddy/kafka` installs)
 * and, through this file's command line, in a child process that never loads `@eddy/kafka`
 * (stock kafkajs):
 *
 *   node bench/dist/raw-consumer.js <brokers,comma-separated> <topic> <records> <group id>
 *
 * prints `{ "recordsPerSecond": N }`.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import type { Batch, Kafka } from 'kafkajs';

/** Records per second of a consumer that counts `total` records of `topic` in a new group. */
export function rawConsumerRun(kafka: Kafka, topic: string, total: number, groupId: string): Promise<number> {
  return timedConsumerRun(kafka, topic, total, groupId);
}

/**
 * Records per second of a new group reading `total` records of `topic` from the beginning,
 * awaiting `onBatch` (if given) on each batch before counting it: from its group join until the
 * last record.
 */
export async function timedConsumerRun(kafka: Kafka, topic: string, total: number, groupId: string, onBatch?: (batch: Batch) => Promise<void>): Promise<number> {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  let count = 0;
  let started = 0;
  let finished = 0;
  const done = new Promise<void>((resolve) => {
    consumer.on(consumer.events.GROUP_JOIN, () => (started = performance.now()));
    void consumer.connect().then(async () => {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        eachBatch: async ({ batch }) => {
          await onBatch?.(batch);
          count += batch.messages.length;
          if (count >= total && finished === 0) {
            finished = performance.now();
            resolve();
          }
        },
      });
    });
  });
  await done;
  await consumer.disconnect();
  return Math.round((total * 1000) / (finished - started));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [brokers = '', topic = '', total = '0', groupId = ''] = process.argv.slice(2);
  const kafka = new kafkajs.Kafka({ clientId: 'eddy-bench-raw', brokers: brokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
  process.stdout.write(`${JSON.stringify({ recordsPerSecond: await rawConsumerRun(kafka, topic, Number(total), groupId) })}\n`);
}
