/**
 * Proves the run's real broker and kafkajs 2.2.4 work together for what Eddy relies on: admin,
 * keyed produce with headers and timestamps, consumer groups with manual commits, and
 * transactions (commit, abort, offsets sent inside a transaction) with read_committed isolation.
 *
 * kafkajs logs retriable errors (coordinator loading, concurrent transactions) at ERROR level;
 * they are silenced here, and real failures still surface as rejections. Set
 * KAFKAJS_LOG_LEVEL=debug to see the protocol traffic.
 */
import kafkajs from 'kafkajs';
import type { Consumer, ConsumerConfig, EachMessagePayload } from 'kafkajs';
import { expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';

const { Kafka, Partitioners, logLevel } = kafkajs;

interface Received {
  partition: number;
  offset: string;
  key: string | undefined;
  value: string | undefined;
  timestamp: string;
  headers: Record<string, string>;
}

function toReceived({ partition, message }: EachMessagePayload): Received {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value);
  return {
    partition,
    offset: message.offset,
    key: message.key?.toString(),
    value: message.value?.toString(),
    timestamp: message.timestamp,
    headers,
  };
}

/**
 * Runs `consumer` until `done()` holds after a message, failing after `timeoutMs` rather than
 * hanging the suite when records never arrive.
 */
async function consumeUntil(
  consumer: Consumer,
  topic: string,
  onMessage: (received: Received) => void,
  done: () => boolean,
  { autoCommit = true, timeoutMs = 15_000 } = {},
): Promise<void> {
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out consuming ${topic}`)), timeoutMs);
    // kafkajs reports retriable failures as crashes it recovers from by restarting (a fresh
    // broker answers the first JoinGroup with COORDINATOR_LOAD_IN_PROGRESS); only a crash it
    // gives up on fails the test.
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (payload.restart) return;
      clearTimeout(timer);
      reject(payload.error);
    });
    consumer
      .run({
        autoCommit,
        eachMessage: async (payload) => {
          onMessage(toReceived(payload));
          if (done()) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch((error: unknown) => {
        clearTimeout(timer);
        reject(error);
      });
  });
}

describeKafka('real Kafka broker with kafkajs', (brokers) => {
  const kafka = new Kafka({ clientId: 'eddy-broker-test', brokers, logLevel: logLevel.NOTHING });
  // A short fetch wait: disconnect() waits for the fetch in flight (5 s by default).
  const consumerConfig = (groupId: string): ConsumerConfig => ({ groupId, maxWaitTimeInMs: 100 });

  it('creates a 3-partition topic and round-trips keyed messages through a committing consumer group', async () => {
    const topic = uniqueName('eddy-keyed');
    const groupId = uniqueName('eddy-group');
    const admin = kafka.admin();
    await admin.connect();
    try {
      expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })).toBe(true);
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      expect(metadata.topics[0].partitions).toHaveLength(3);

      // An hour in the past, so a broker-assigned append time could not pass for ours.
      const base = Date.now() - 3_600_000;
      const sent = Array.from({ length: 30 }, (_, seq) => ({
        key: `sensor-${seq % 6}`,
        value: JSON.stringify({ seq, reading: seq * 1.5 }),
        timestamp: String(base + seq),
        headers: { seq: String(seq), source: 'eddy-test' },
      }));
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
      await producer.connect();
      try {
        const acks = await producer.send({ topic, messages: sent });
        expect(acks.every((ack) => ack.errorCode === 0)).toBe(true);
      } finally {
        await producer.disconnect();
      }

      const received: Received[] = [];
      const consumer = kafka.consumer(consumerConfig(groupId));
      try {
        await consumeUntil(consumer, topic, (r) => received.push(r), () => received.length >= sent.length, {
          autoCommit: false,
        });
        // Commit where the group should resume: one past the last record seen on each partition.
        const next = new Map<number, bigint>();
        for (const r of received) {
          const after = BigInt(r.offset) + 1n;
          if (after > (next.get(r.partition) ?? 0n)) next.set(r.partition, after);
        }
        await consumer.commitOffsets(
          [...next].map(([partition, offset]) => ({ topic, partition, offset: offset.toString() })),
        );
      } finally {
        await consumer.disconnect();
      }

      expect(received).toHaveLength(sent.length);
      const bySeq = new Map(received.map((r) => [Number(r.headers.seq), r]));
      for (const [seq, message] of sent.entries()) {
        const r = bySeq.get(seq);
        expect(r, `record ${seq}`).toBeDefined();
        expect(r).toMatchObject({
          key: message.key,
          value: message.value,
          timestamp: message.timestamp,
          headers: { seq: String(seq), source: 'eddy-test' },
        });
      }
      // Keyed records: one partition per key, in send order within it, and the keys spread out.
      const partitionOfKey = new Map<string, number>();
      for (const r of received) {
        expect(partitionOfKey.get(r.key!) ?? r.partition, `partition of ${r.key}`).toBe(r.partition);
        partitionOfKey.set(r.key!, r.partition);
      }
      expect(new Set(partitionOfKey.values()).size).toBeGreaterThan(1);
      for (const key of partitionOfKey.keys()) {
        const seqs = received.filter((r) => r.key === key).map((r) => Number(r.headers.seq));
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      }

      // The committed offsets are the end of each partition: the group has consumed everything.
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const ends = await admin.fetchTopicOffsets(topic);
      for (const { partition, high } of ends) {
        const offset = committed.partitions.find((p) => p.partition === partition)?.offset;
        expect(offset, `committed offset of partition ${partition}`).toBe(high === '0' ? '-1' : high);
      }
    } finally {
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  });

  it('hides aborted transactions from read_committed consumers and commits offsets transactionally', async () => {
    const input = uniqueName('eddy-tx-in');
    const output = uniqueName('eddy-tx-out');
    const sourceGroup = uniqueName('eddy-tx-group');
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer({
      transactionalId: uniqueName('eddy-txid'),
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    try {
      await admin.createTopics({
        topics: [
          { topic: input, numPartitions: 1 },
          { topic: output, numPartitions: 1 },
        ],
        waitForLeaders: true,
      });
      await producer.connect();

      // The consume-transform-produce shape: output records and the input offset commit together.
      const first = await producer.transaction();
      await first.send({ topic: output, messages: ['committed-1', 'committed-2', 'committed-3'].map((value) => ({ value })) });
      await first.sendOffsets({ consumerGroupId: sourceGroup, topics: [{ topic: input, partitions: [{ partition: 0, offset: '3' }] }] });
      await first.commit();

      const aborted = await producer.transaction();
      await aborted.send({ topic: output, messages: ['aborted-1', 'aborted-2', 'aborted-3'].map((value) => ({ value })) });
      await aborted.sendOffsets({ consumerGroupId: sourceGroup, topics: [{ topic: input, partitions: [{ partition: 0, offset: '99' }] }] });
      await aborted.abort();

      // A record after the aborted batch, so reaching it proves the consumers read past it.
      const last = await producer.transaction();
      await last.send({ topic: output, messages: [{ value: 'committed-4' }] });
      await last.commit();

      const readCommitted: string[] = [];
      const readUncommitted: string[] = [];
      const committedConsumer = kafka.consumer({ ...consumerConfig(uniqueName('eddy-rc')), readUncommitted: false });
      const uncommittedConsumer = kafka.consumer({ ...consumerConfig(uniqueName('eddy-ru')), readUncommitted: true });
      try {
        await Promise.all([
          consumeUntil(committedConsumer, output, (r) => readCommitted.push(r.value!), () => readCommitted.includes('committed-4')),
          consumeUntil(uncommittedConsumer, output, (r) => readUncommitted.push(r.value!), () => readUncommitted.includes('committed-4')),
        ]);
      } finally {
        await Promise.all([committedConsumer.disconnect(), uncommittedConsumer.disconnect()]);
      }

      expect(readCommitted).toEqual(['committed-1', 'committed-2', 'committed-3', 'committed-4']);
      // The aborted records were really written: only the isolation level hides them.
      expect(readUncommitted).toEqual(['committed-1', 'committed-2', 'committed-3', 'aborted-1', 'aborted-2', 'aborted-3', 'committed-4']);

      const [offsets] = await admin.fetchOffsets({ groupId: sourceGroup, topics: [input] });
      expect(offsets.partitions).toEqual([expect.objectContaining({ partition: 0, offset: '3' })]);
    } finally {
      await producer.disconnect();
      await admin.deleteTopics({ topics: [input, output] }).catch(() => undefined);
      await admin.disconnect();
    }
  });
});
