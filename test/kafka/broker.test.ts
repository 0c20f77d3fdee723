/**
 * Proves the run's real broker and @platformatic/kafka work together for what Eddy relies on:
 * admin, keyed produce with headers and timestamps (partitioned as Kafka's Java client does),
 * consumer groups with manual commits, and transactions (commit, abort, offsets sent inside a
 * transaction) with read_committed isolation.
 */
import {
  compatibilityPartitioner,
  Consumer,
  FetchIsolationLevels,
  FindCoordinatorKeyTypes,
  MessagesStreamModes,
  Producer,
  stringDeserializers,
  stringSerializers,
  type Message,
} from '@platformatic/kafka';
import { expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { committedOffsets, endOffsets, testAdmin, waitFor } from './helpers.ts';

interface Received {
  partition: number;
  offset: bigint;
  key: string | undefined;
  value: string | undefined;
  timestamp: bigint;
  headers: Record<string, string>;
}

type TextConsumer = Consumer<string, string, string, string>;

function toReceived(message: Message<string, string, string, string>): Received {
  return {
    partition: message.partition,
    offset: message.offset,
    key: message.key,
    value: message.value,
    timestamp: message.timestamp,
    headers: Object.fromEntries(message.headers),
  };
}

/**
 * Reads `topic` from the beginning with `consumer` until `done()` holds after a message, failing
 * after `timeoutMs` rather than hanging the suite when records never arrive.
 */
async function consumeUntil(
  consumer: TextConsumer,
  topic: string,
  onMessage: (received: Received) => void,
  done: () => boolean,
  { isolationLevel = FetchIsolationLevels.READ_COMMITTED, timeoutMs = 15_000 }: { isolationLevel?: number; timeoutMs?: number } = {},
): Promise<void> {
  const stream = await consumer.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST, autocommit: false, isolationLevel });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out consuming ${topic}`)), timeoutMs);
      stream.on('data', (message: Message<string, string, string, string>) => {
        onMessage(toReceived(message));
        if (done()) {
          clearTimeout(timer);
          resolve();
        }
      });
      stream.on('error', (error: Error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  } finally {
    await stream.close();
  }
}

describeKafka('real Kafka broker with @platformatic/kafka', (brokers) => {
  const clientId = 'eddy-broker-test';
  // A short fetch wait: closing waits for the fetch in flight.
  const textConsumer = (groupId: string): TextConsumer => new Consumer({ clientId, groupId, bootstrapBrokers: brokers, deserializers: stringDeserializers, maxWaitTime: 100 });
  /** Waits until every partition of `topic` has a leader that answers. */
  const leadersOf = (admin: ReturnType<typeof testAdmin>, topic: string) =>
    waitFor(`the leaders of ${topic}`, () => endOffsets(admin, topic).then(() => true, () => (admin.clearMetadata(), false)));

  it('creates a 3-partition topic and round-trips keyed messages through a committing consumer group', async () => {
    const topic = uniqueName('eddy-keyed');
    const groupId = uniqueName('eddy-group');
    const admin = testAdmin(brokers);
    try {
      expect(await admin.createTopics({ topics: [topic], partitions: 3 })).toEqual([expect.objectContaining({ name: topic, partitions: 3 })]);
      await leadersOf(admin, topic);
      const metadata = await admin.metadata({ topics: [topic] });
      expect(metadata.topics.get(topic)!.partitions).toHaveLength(3);

      // An hour in the past, so a broker-assigned append time could not pass for ours.
      const base = Date.now() - 3_600_000;
      const sent = Array.from({ length: 30 }, (_, seq) => ({
        topic,
        key: `sensor-${seq % 6}`,
        value: JSON.stringify({ seq, reading: seq * 1.5 }),
        timestamp: BigInt(base + seq),
        headers: { seq: String(seq), source: 'eddy-test' },
      }));
      const producer = new Producer({ clientId, bootstrapBrokers: brokers, idempotent: true, partitioner: compatibilityPartitioner, serializers: stringSerializers });
      try {
        const acks = await producer.send({ messages: sent });
        expect(acks.offsets!.length).toBeGreaterThan(0);
        expect(acks.offsets!.every((ack) => ack.topic === topic && ack.offset >= 0n)).toBe(true);
      } finally {
        await producer.close();
      }

      const received: Received[] = [];
      const consumer = textConsumer(groupId);
      try {
        await consumeUntil(consumer, topic, (r) => received.push(r), () => received.length >= sent.length);
        // Commit where the group should resume: one past the last record seen on each partition.
        const next = new Map<number, bigint>();
        for (const r of received) {
          const after = r.offset + 1n;
          if (after > (next.get(r.partition) ?? 0n)) next.set(r.partition, after);
        }
        await consumer.commit({ offsets: [...next].map(([partition, offset]) => ({ topic, partition, offset, leaderEpoch: -1 })) });
      } finally {
        await consumer.close();
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
      const committed = await committedOffsets(admin, groupId, topic);
      for (const [partition, end] of (await endOffsets(admin, topic)).entries()) {
        expect(committed[partition], `committed offset of partition ${partition}`).toBe(end === 0 ? -1 : end);
      }
    } finally {
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.close();
    }
  });

  it('hides aborted transactions from read_committed consumers and commits offsets transactionally', async () => {
    const input = uniqueName('eddy-tx-in');
    const output = uniqueName('eddy-tx-out');
    const sourceGroup = uniqueName('eddy-tx-group');
    const admin = testAdmin(brokers);
    const producer = new Producer({
      clientId,
      bootstrapBrokers: brokers,
      transactionalId: uniqueName('eddy-txid'),
      idempotent: true,
      partitioner: compatibilityPartitioner,
      serializers: stringSerializers,
    });
    // The group whose offsets the transactions carry; it never joins (no members, generation -1).
    const group = new Consumer({ clientId, groupId: sourceGroup, bootstrapBrokers: brokers });
    try {
      for (const topic of [input, output]) {
        await admin.createTopics({ topics: [topic], partitions: 1 });
        await leadersOf(admin, topic);
      }
      const [coordinator] = await admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [sourceGroup] });
      // Transaction.addOffset commits the offset after a message the group read: this one stands for the input read up to `next`.
      const readUpTo = (next: bigint) =>
        ({ topic: input, partition: 0, offset: next - 1n, metadata: { consumer: { groupId: sourceGroup, generationId: -1, memberId: '', coordinatorId: coordinator!.nodeId } } }) as unknown as Message;
      const values = (texts: string[]) => texts.map((value) => ({ topic: output, value }));

      // The consume-transform-produce shape: output records and the input offset commit together.
      const first = await producer.beginTransaction();
      await first.send({ messages: values(['committed-1', 'committed-2', 'committed-3']) });
      await first.addConsumer(group);
      await first.addOffset(readUpTo(3n));
      await first.commit();

      const aborted = await producer.beginTransaction();
      await aborted.send({ messages: values(['aborted-1', 'aborted-2', 'aborted-3']) });
      await aborted.addConsumer(group);
      await aborted.addOffset(readUpTo(99n));
      await aborted.abort();

      // A record after the aborted batch, so reaching it proves the consumers read past it.
      const last = await producer.beginTransaction();
      await last.send({ messages: values(['committed-4']) });
      await last.commit();

      const readCommitted: string[] = [];
      const readUncommitted: string[] = [];
      const committedConsumer = textConsumer(uniqueName('eddy-rc'));
      const uncommittedConsumer = textConsumer(uniqueName('eddy-ru'));
      try {
        await Promise.all([
          consumeUntil(committedConsumer, output, (r) => readCommitted.push(r.value!), () => readCommitted.includes('committed-4'), { isolationLevel: FetchIsolationLevels.READ_COMMITTED }),
          consumeUntil(uncommittedConsumer, output, (r) => readUncommitted.push(r.value!), () => readUncommitted.includes('committed-4'), { isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED }),
        ]);
      } finally {
        await Promise.all([committedConsumer.close(), uncommittedConsumer.close()]);
      }

      expect(readCommitted).toEqual(['committed-1', 'committed-2', 'committed-3', 'committed-4']);
      // The aborted records were really written: only the isolation level hides them.
      expect(readUncommitted).toEqual(['committed-1', 'committed-2', 'committed-3', 'aborted-1', 'aborted-2', 'aborted-3', 'committed-4']);

      expect(await committedOffsets(admin, sourceGroup, input)).toEqual([3]);
    } finally {
      await producer.close();
      await group.close();
      await admin.deleteTopics({ topics: [input, output] }).catch(() => undefined);
      await admin.close();
    }
  });
});
