/**
 * The Transport contract on a real broker: what the runtime relies on from `kafkaTransport`,
 * checked the way the embedded broker behaves (see packages/core/src/transport/memory.ts).
 */
import { Buffer } from 'node:buffer';
import { EddyError, type ConsumerListener, type IncomingRecord, type OutgoingRecord, type TopicPartition, type TransportConsumer } from '@eddy/core';
import { kafkaTransport, type KafkaTransport } from '@eddy/kafka';
import { ConfigResourceTypes, Consumer, MessagesStreamModes, type Message, type MessagesStream } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { recordingLogger, sleep, testAdmin, waitFor } from './helpers.ts';
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);
const text = (data: Uint8Array | null) => (data === null ? null : decoder.decode(data));

/** A listener that records what it is told, in order. */
function recordingListener() {
  const events: string[] = [];
  const records: IncomingRecord[] = [];
  const batches: IncomingRecord[][] = [];
  const listener: ConsumerListener = {
    async onAssign(partitions) {
      events.push(`assign ${names(partitions)}`);
    },
    async onRevoke(partitions) {
      events.push(`revoke ${names(partitions)}`);
    },
    async onRecords(batch) {
      events.push(`records ${batch[0]!.topic}[${batch[0]!.partition}]`);
      batches.push([...batch]);
      records.push(...batch);
    },
  };
  return { listener, events, records, batches };
}

const names = (partitions: readonly TopicPartition[]) =>
  partitions
    .map(({ topic, partition }) => `${topic}[${partition}]`)
    .sort()
    .join(',');

describeKafka('kafkaTransport: the Transport contract on a real broker', (brokers) => {
  const admin = testAdmin(brokers);
  const logger = recordingLogger();
  let transport: KafkaTransport;

  beforeAll(async () => {
    transport = kafkaTransport({ brokers, logger, consumer: { maxWaitTime: '100ms' } });
    await transport.connect();
  });

  afterAll(async () => {
    await transport?.close();
    await admin.close();
  });

  /** A new one-partition topic holding `count` records, each value its sequence number. */
  async function numberedTopic(prefix: string, count: number): Promise<string> {
    const topic = uniqueName(prefix);
    await transport.ensureTopics([{ name: topic, partitions: 1 }]);
    const producer = await transport.createProducer();
    await producer.send(Array.from({ length: count }, (_, seq) => ({ topic, partition: 0, key: null, value: bytes(String(seq)), timestamp: seq })));
    await producer.close();
    return topic;
  }

  it('creates missing topics once, compacts changelogs, and reports partition counts', async () => {
    const plain = uniqueName('eddy-t-plain');
    const changelog = uniqueName('eddy-t-changelog');
    expect(await transport.partitionCount(plain)).toBeUndefined();

    const specs = [
      { name: plain, partitions: 3 },
      { name: changelog, partitions: 2, compacted: true },
    ];
    // Two transports racing to create the same topics, then again: all succeed, nothing changes.
    const other = kafkaTransport({ brokers, logger });
    try {
      await Promise.all([transport.ensureTopics(specs), other.ensureTopics(specs)]);
      await transport.ensureTopics([...specs, { name: plain, partitions: 7 }]);
    } finally {
      await other.close();
    }

    expect(await transport.partitionCount(plain)).toBe(3);
    expect(await transport.partitionCount(changelog)).toBe(2);
    const resources = await admin.describeConfigs({
      resources: [plain, changelog].map((name) => ({ resourceType: ConfigResourceTypes.TOPIC, resourceName: name, configurationKeys: ['cleanup.policy'] })),
      includeSynonyms: false,
    });
    const policy = (name: string) => resources.find((resource) => resource.resourceName === name)?.configs[0]?.value;
    expect(policy(plain)).toBe('delete');
    expect(policy(changelog)).toBe('compact');
    // Leaders exist at once: the topics are usable as soon as ensureTopics resolves.
    expect(await transport.endOffset({ topic: changelog, partition: 1 })).toBe(0);
    expect(await transport.endOffset({ topic: uniqueName('eddy-t-missing'), partition: 0 })).toBe(0);
    await admin.deleteTopics({ topics: [plain, changelog] });
  });

  it('produces keyed records with headers and timestamps, returns the last offsets, and delivers them in order', async () => {
    const topic = uniqueName('eddy-t-records');
    const group = uniqueName('eddy-t-group');
    await transport.ensureTopics([{ name: topic, partitions: 2 }]);
    const producer = await transport.createProducer();
    const record = (partition: number, seq: number, key: string | null): OutgoingRecord => ({
      topic,
      partition,
      key: key === null ? null : bytes(key),
      value: seq % 5 === 4 ? null : bytes(`value-${seq}`),
      timestamp: 1_700_000_000_000 + seq,
      headers: { seq: String(seq), 'content-type': 'text/plain; charset=utf-8', unicode: 'Grüße ✓' },
    });

    const first = await producer.send([record(0, 0, 'a'), record(0, 1, 'b'), record(1, 2, null), record(0, 3, 'a')]);
    expect(first).toEqual(expect.arrayContaining([
      { topic, partition: 0, offset: 2 },
      { topic, partition: 1, offset: 0 },
    ]));
    expect(first).toHaveLength(2);
    // Concurrent sends (as tasks make them) are coalesced into fewer requests; each still gets its own offsets.
    const concurrent = await Promise.all(Array.from({ length: 20 }, (_, index) => producer.send([record(index % 2, 4 + index, `k${index}`)])));
    const lastOffsets = concurrent.map(([only]) => only!);
    expect(lastOffsets.filter((entry) => entry.partition === 0).map((entry) => entry.offset).sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, index) => 3 + index));
    expect(lastOffsets.filter((entry) => entry.partition === 1).map((entry) => entry.offset).sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, index) => 1 + index));
    expect(await producer.send([])).toEqual([]);
    await producer.close();

    const seen = recordingListener();
    const consumer = await transport.subscribe(group, [topic], seen.listener);
    try {
      await waitFor('24 records', () => seen.records.length >= 24);
      expect(seen.events[0]).toBe(`assign ${topic}[0],${topic}[1]`);
      for (const batch of seen.batches) {
        expect(new Set(batch.map((entry) => entry.partition)).size).toBe(1);
        const offsets = batch.map((entry) => entry.offset);
        expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
      }
      const bySeq = new Map(seen.records.map((entry) => [Number(entry.headers.seq), entry]));
      expect(bySeq.size).toBe(24);
      const zero = bySeq.get(0)!;
      // Keys and values are the fetched bytes (Buffers, which are Uint8Arrays), compared by content.
      expect({ ...zero, key: Uint8Array.from(zero.key!), value: Uint8Array.from(zero.value!) }).toEqual({
        topic,
        partition: 0,
        offset: 0,
        key: bytes('a'),
        value: bytes('value-0'),
        timestamp: 1_700_000_000_000,
        headers: { seq: '0', 'content-type': 'text/plain; charset=utf-8', unicode: 'Grüße ✓' },
      });
      expect(zero.key).toBeInstanceOf(Uint8Array);
      expect(bySeq.get(2)).toMatchObject({ partition: 1, offset: 0, key: null });
      expect(bySeq.get(4)!.value).toBeNull();
      for (const [seq, entry] of bySeq) expect(entry.timestamp).toBe(1_700_000_000_000 + seq);
      // Offsets per partition are 0..n-1 with nothing missing or repeated.
      for (const [partition, count] of [[0, 13], [1, 11]] as const) {
        const offsets = seen.records.filter((entry) => entry.partition === partition).map((entry) => entry.offset);
        expect(offsets).toEqual(Array.from({ length: count }, (_, index) => index));
      }

      // Commit and read back; a commit never moves the offset back.
      await consumer.commit([{ topic, partition: 0, offset: 7 }]);
      expect(await consumer.committed({ topic, partition: 0 })).toBe(7);
      expect(await consumer.committed({ topic, partition: 1 })).toBeUndefined();
      await consumer.commit([{ topic, partition: 0, offset: 5 }]);
      expect(await consumer.committed({ topic, partition: 0 })).toBe(7);
    } finally {
      await consumer.close();
    }
    expect(seen.events.at(-1)).toBe(`revoke ${topic}[0],${topic}[1]`);

    // A new member of the group resumes where the group committed.
    const resumed = recordingListener();
    const again = await transport.subscribe(group, [topic], resumed.listener);
    try {
      await waitFor('the records after the commit', () => resumed.records.length >= 17);
      expect(resumed.records.filter((entry) => entry.partition === 0).map((entry) => entry.offset)).toEqual([7, 8, 9, 10, 11, 12]);
      expect(resumed.records.filter((entry) => entry.partition === 1)).toHaveLength(11);
    } finally {
      await again.close();
    }
    await admin.deleteTopics({ topics: [topic] });
    expect(logger.errors()).toEqual([]);
  });

  it('hands a large fetched batch on in slices of at most 1000 records, and a seek between slices drops the rest', async () => {
    const topic = await numberedTopic('eddy-t-slices', 3_500);

    const seen = recordingListener();
    const all = await transport.subscribe(uniqueName('eddy-t-group'), [topic], seen.listener);
    try {
      await waitFor('3,500 records', () => seen.records.length >= 3_500);
      expect(seen.records.map((entry) => entry.offset)).toEqual(Array.from({ length: 3_500 }, (_, index) => index));
      expect(Math.max(...seen.batches.map((batch) => batch.length))).toBe(1_000);
    } finally {
      await all.close();
    }

    let resolveConsumer!: (consumer: TransportConsumer) => void;
    const consumerKnown = new Promise<TransportConsumer>((resolve) => (resolveConsumer = resolve));
    const slices: number[][] = [];
    const listener: ConsumerListener = {
      onAssign: async () => {},
      onRevoke: async () => {},
      onRecords: async (batch) => {
        slices.push(batch.map((entry) => entry.offset));
        if (slices.length === 1) (await consumerKnown).seek({ topic, partition: 0, offset: 3_200 });
      },
    };
    const seeking = await transport.subscribe(uniqueName('eddy-t-group'), [topic], listener);
    resolveConsumer(seeking);
    try {
      await waitFor('the records from 3,200', () => slices.flat().includes(3_499));
      // The first slice, then straight on from the seek: the rest of the fetched batch is not handed on.
      expect(slices[0]).toEqual(Array.from({ length: 1_000 }, (_, index) => index));
      expect(slices.slice(1).flat()).toEqual(Array.from({ length: 300 }, (_, index) => 3_200 + index));
    } finally {
      await seeking.close();
    }
    await admin.deleteTopics({ topics: [topic] });
  });

  it('delivers in step: a partition found at its end holds its group back while the app says records are on their way to it', async () => {
    const topic = uniqueName('eddy-t-step');
    await transport.ensureTopics([{ name: topic, partitions: 2 }]);
    const producer = await transport.createProducer();
    const SECONDS = 200;
    const HORIZON = 10_000;
    const row = (partition: number, second: number): OutgoingRecord => ({ topic, partition, key: null, value: bytes(String(second)), timestamp: second * 1_000 + partition * 500 });
    await producer.send(Array.from({ length: SECONDS }, (_, second) => row(0, second)));
    // Partition 1's records are "on their way" (a local task writes them) until they are written.
    let pending = true;
    const delivered: Array<{ partition: number; timestamp: number }> = [];
    const listener: ConsumerListener = {
      onAssign: async () => {},
      onRevoke: async () => {},
      onRecords: async (batch) => {
        delivered.push(...batch.map(({ partition, timestamp }) => ({ partition, timestamp })));
      },
      alignment: () => ({ group: 0, horizon: (first) => first + HORIZON, timestamp: (record) => record.timestamp }),
      writesPending: ({ partition }) => partition === 1 && pending,
    };
    const consumer = await transport.subscribe(uniqueName('eddy-t-step-group'), [topic], listener);
    try {
      // Long enough for fetches (100 ms each) to find partition 1 at its end again and again.
      await sleep(1_500);
      expect(delivered, 'nothing of partition 0 goes while partition 1 waits for its records').toEqual([]);
      await producer.send(Array.from({ length: SECONDS }, (_, second) => row(1, second)));
      pending = false;
      await waitFor('every record', () => delivered.length >= 2 * SECONDS);
      // In step: when a record goes, none of the other partition more than a horizon older still waits.
      const at = new Map<number, number>(); // partition -> index of its next record
      for (const { partition, timestamp } of delivered) {
        const other = 1 - partition;
        const next = at.get(other) ?? 0;
        if (next < SECONDS) expect(timestamp - (next * 1_000 + other * 500), `partition ${partition} at ${timestamp}`).toBeLessThanOrEqual(HORIZON);
        at.set(partition, (at.get(partition) ?? 0) + 1);
      }
    } finally {
      await consumer.close();
      await producer.close();
    }
    await admin.deleteTopics({ topics: [topic] });
  });

  it('leaves the records another client in the process reads as that client makes them', async () => {
    const topic = uniqueName('eddy-t-plain-records');
    await transport.ensureTopics([{ name: topic, partitions: 1 }]);
    const producer = await transport.createProducer();
    await producer.send(Array.from({ length: 5 }, (_, seq) => ({ topic, partition: 0, key: bytes(`k${seq}`), value: bytes(String(seq)), timestamp: 1_700_000_000_000 + seq, headers: { seq: String(seq) } })));
    await producer.close();

    // An Eddy consumer of the same topic at the same time.
    const eddy = recordingListener();
    const eddyConsumer = await transport.subscribe(uniqueName('eddy-t-group'), [topic], eddy.listener);
    const consumer = new Consumer({ clientId: 'eddy-t-plain', groupId: uniqueName('eddy-t-plain-group'), bootstrapBrokers: brokers, maxWaitTime: 100 });
    const messages: Message[] = [];
    let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
    try {
      stream = await consumer.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST, autocommit: false });
      stream.on('data', (message: Message) => messages.push(message));
      await waitFor('5 records each', () => messages.length >= 5 && eddy.records.length >= 5);
      for (const [seq, message] of messages.entries()) {
        // The client's own shape: Buffers, bigint offsets and timestamps, headers in a Map.
        const { topic: from, partition, offset, key, value, timestamp, headers } = message;
        expect({ from, partition, offset, key, value, timestamp, headers }).toEqual({
          from: topic,
          partition: 0,
          offset: BigInt(seq),
          key: Buffer.from(`k${seq}`),
          value: Buffer.from(String(seq)),
          timestamp: BigInt(1_700_000_000_000 + seq),
          headers: new Map([[Buffer.from('seq'), Buffer.from(String(seq))]]),
        });
        expect(Buffer.isBuffer(value)).toBe(true);
      }
      expect(eddy.records.map(({ offset, key, value, timestamp, headers }) => [offset, text(key), text(value), timestamp, headers])).toEqual(
        Array.from({ length: 5 }, (_, seq) => [seq, `k${seq}`, String(seq), 1_700_000_000_000 + seq, { seq: String(seq) }]),
      );
    } finally {
      await stream?.close();
      await consumer.close();
      await eddyConsumer.close();
    }
    await admin.deleteTopics({ topics: [topic] });
  });

  it('moves the read position of an assigned partition with seek', async () => {
    const topic = await numberedTopic('eddy-t-seek', 50);

    let resolveConsumer!: (consumer: TransportConsumer) => void;
    const consumerKnown = new Promise<TransportConsumer>((resolve) => (resolveConsumer = resolve));
    let first = true;
    const afterSeek: number[] = [];
    const listener: ConsumerListener = {
      onAssign: async () => {},
      onRevoke: async () => {},
      onRecords: async (batch) => {
        if (first) {
          // Whatever the first batch holds, the partition continues at 40 after it.
          first = false;
          (await consumerKnown).seek({ topic, partition: 0, offset: 40 });
          return;
        }
        afterSeek.push(...batch.map((entry) => entry.offset));
      },
    };
    const consumer = await transport.subscribe(uniqueName('eddy-t-seek-group'), [topic], listener);
    resolveConsumer(consumer);
    try {
      await waitFor('record 49 after the seek', () => afterSeek.includes(49));
      expect(afterSeek).toEqual(Array.from({ length: 10 }, (_, index) => 40 + index));
      // Seeking a partition this member does not own does nothing.
      consumer.seek({ topic, partition: 5, offset: 0 });
    } finally {
      await consumer.close();
    }
    await admin.deleteTopics({ topics: [topic] });
  });

  it('delivers a batch again when the listener fails on it', async () => {
    const topic = await numberedTopic('eddy-t-redeliver', 5);
    const delivered: number[][] = [];
    let failures = 0;
    const consumer = await transport.subscribe(uniqueName('eddy-t-redeliver-group'), [topic], {
      onAssign: async () => {},
      onRevoke: async () => {},
      onRecords: async (batch) => {
        delivered.push(batch.map((entry) => entry.offset));
        if (failures++ === 0) throw new Error('the first attempt fails');
      },
    });
    try {
      await waitFor('the batch again', () => delivered.length >= 2);
      expect(delivered[1]![0]).toBe(0);
      expect(delivered.flat().filter((offset) => offset === 4)).toHaveLength(2);
    } finally {
      await consumer.close();
    }
    await admin.deleteTopics({ topics: [topic] });
  });

  it('after a failed slice of a large batch, delivers again from that slice, not from the start of the batch', async () => {
    const topic = await numberedTopic('eddy-t-reslice', 2_500);
    const delivered: number[][] = [];
    let failed = false;
    const consumer = await transport.subscribe(uniqueName('eddy-t-reslice-group'), [topic], {
      onAssign: async () => {},
      onRevoke: async () => {},
      onRecords: async (batch) => {
        delivered.push(batch.map((entry) => entry.offset));
        if (!failed && batch[0]!.offset === 1_000) {
          failed = true;
          throw new Error('the second slice fails once');
        }
      },
    });
    try {
      await waitFor('every record', () => delivered.flat().includes(2_499) && failed);
      const times = (offset: number) => delivered.flat().filter((entry) => entry === offset).length;
      // The slice before the failure was taken once; the failed one twice (its retry); the rest once.
      expect([times(0), times(999), times(1_000), times(1_999), times(2_000), times(2_499)]).toEqual([1, 1, 2, 2, 1, 1]);
    } finally {
      await consumer.close();
    }
    await admin.deleteTopics({ topics: [topic] });
  });

  it('revokes on the old member, committing, before the new member is assigned (a clean hand-over)', async () => {
    const topic = uniqueName('eddy-t-rebalance');
    const group = uniqueName('eddy-t-rebalance-group');
    await transport.ensureTopics([{ name: topic, partitions: 4 }]);
    const producer = await transport.createProducer();
    let sequence = 0;
    const produceRound = () =>
      producer.send(Array.from({ length: 80 }, (_, index) => ({ topic, partition: index % 4, key: null, value: bytes(String(sequence++)), timestamp: 0 })));
    await produceRound();

    const log: string[] = [];
    const received: Array<{ member: string; partition: number; offset: number }> = [];
    /** A member that commits what it processed when a partition is revoked, and takes its time doing so. */
    const member = (name: string) => {
      const next = new Map<number, number>();
      let consumer: TransportConsumer | undefined;
      const listener: ConsumerListener = {
        async onAssign(partitions) {
          log.push(`${name} assign ${names(partitions)}`);
        },
        async onRevoke(partitions) {
          log.push(`${name} revoke start`);
          await new Promise((resolve) => setTimeout(resolve, 500));
          const offsets = partitions.filter(({ partition }) => next.has(partition)).map(({ partition }) => ({ topic, partition, offset: next.get(partition)! }));
          await consumer?.commit(offsets);
          log.push(`${name} revoke done ${names(partitions)}`);
        },
        async onRecords(batch) {
          for (const entry of batch) received.push({ member: name, partition: entry.partition, offset: entry.offset });
          next.set(batch[0]!.partition, batch.at(-1)!.offset + 1);
        },
      };
      return {
        start: async () => {
          consumer = await transport.subscribe(group, [topic], listener);
          return consumer;
        },
      };
    };

    const first = await member('A').start();
    await waitFor('the first round', () => received.length >= 80);
    const joining = member('B').start();
    await produceRound();
    const second = await joining;
    await produceRound();
    try {
      await waitFor('all three rounds', () => new Set(received.map((entry) => `${entry.partition}:${entry.offset}`)).size >= 240);
      const firstBAssign = log.findIndex((entry) => entry.startsWith('B assign'));
      const all = `${topic}[0],${topic}[1],${topic}[2],${topic}[3]`;
      // Incremental (KIP-848): A gives up only what B gets, and keeps the rest without a revoke.
      const moved = log[firstBAssign]!.slice('B assign '.length);
      expect(log.slice(0, 3)).toEqual([`A assign ${all}`, 'A revoke start', `A revoke done ${moved}`]);
      expect(firstBAssign, 'B is assigned only after A finished revoking').toBeGreaterThan(2);
      expect(log.filter((entry) => entry.startsWith('A ')), 'A keeps two partitions, never revoked').toHaveLength(3);
      // Both members own two partitions each after the hand-over.
      expect(new Set(received.filter((entry) => entry.member === 'B').map((entry) => entry.partition)).size).toBe(2);
      // Every record exactly once: the new owners started at the offsets committed in onRevoke.
      const counts = new Map<string, number>();
      for (const entry of received) counts.set(`${entry.partition}:${entry.offset}`, (counts.get(`${entry.partition}:${entry.offset}`) ?? 0) + 1);
      expect([...counts.values()].every((count) => count === 1)).toBe(true);
      expect(counts.size).toBe(240);
    } finally {
      await Promise.all([first.close(), second.close()]);
      await producer.close();
    }
    await admin.deleteTopics({ topics: [topic] });
    expect(logger.errors()).toEqual([]);
  });

  it('reads a partition from an offset up to its end at the time of the call', async () => {
    const topic = uniqueName('eddy-t-read');
    await transport.ensureTopics([{ name: topic, partitions: 2, compacted: true }]);
    const producer = await transport.createProducer();
    const total = 3_000;
    for (let start = 0; start < total; start += 500) {
      await producer.send(Array.from({ length: 500 }, (_, index) => ({ topic, partition: 1, key: bytes(`key-${start + index}`), value: bytes(`v${start + index}`), timestamp: start + index })));
    }
    expect(await transport.endOffset({ topic, partition: 1 })).toBe(total);
    expect(await transport.endOffset({ topic, partition: 0 })).toBe(0);

    const read = async (from: number, onBatch?: () => Promise<void>) => {
      const offsets: number[] = [];
      let batches = 0;
      for await (const batch of transport.readPartition({ topic, partition: 1 }, from)) {
        batches++;
        for (const entry of batch) {
          expect(entry.partition).toBe(1);
          expect(text(entry.value)).toBe(entry.offset < total ? `v${entry.offset}` : 'late');
          offsets.push(entry.offset);
        }
        await onBatch?.();
      }
      return { offsets, batches };
    };

    const tail = await read(2_345);
    expect(tail.offsets).toEqual(Array.from({ length: total - 2_345 }, (_, index) => 2_345 + index));
    // Writes after the call are not part of the read.
    let wrote = false;
    const whole = await read(0, async () => {
      if (wrote) return;
      wrote = true;
      await producer.send([{ topic, partition: 1, key: bytes('late'), value: bytes('late'), timestamp: 0 }]);
    });
    expect(whole.offsets).toEqual(Array.from({ length: total }, (_, index) => index));
    expect((await read(total + 1)).offsets).toEqual([]);
    expect((await read(total)).offsets).toEqual([total]);
    // Nothing to read costs no group; an empty partition reads nothing.
    const empty: IncomingRecord[][] = [];
    for await (const batch of transport.readPartition({ topic, partition: 0 }, 0)) empty.push([...batch]);
    expect(empty).toEqual([]);

    // Leaving early cleans up: the throwaway group (named after the client id) is deleted.
    const clientId = uniqueName('eddy-t-reader');
    const reader = kafkaTransport({ brokers, clientId, logger });
    try {
      for await (const batch of reader.readPartition({ topic, partition: 1 }, 0)) {
        expect(batch.length).toBeGreaterThan(0);
        break;
      }
    } finally {
      await reader.close();
    }
    const leftover = [...(await admin.listGroups({ types: ['classic', 'consumer'] })).keys()].filter((groupId) => groupId.startsWith(`${clientId}-read-`));
    expect(leftover).toEqual([]);
    await producer.close();
    await admin.deleteTopics({ topics: [topic] });
  });

  it('fails sends with a typed, retriable-aware error', async () => {
    const impatient = kafkaTransport({ brokers, logger, retry: { retries: 1, initialRetryTime: '50ms', maxRetryTime: '100ms' } });
    try {
      const producer = await impatient.createProducer();
      const missing = uniqueName('eddy-t-nowhere');
      const failure = await producer.send([{ topic: missing, partition: 0, key: null, value: bytes('x'), timestamp: 0 }]).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(EddyError);
      expect(failure).toMatchObject({ code: 'TRANSPORT_FAILED', retriable: true });
      expect((failure as Error).message).toContain(missing);
      await producer.close();
      await expect(producer.send([{ topic: missing, partition: 0, key: null, value: null, timestamp: 0 }])).rejects.toMatchObject({ code: 'TRANSPORT_FAILED' });
      await expect(impatient.createProducer({ transactionalId: '' })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    } finally {
      await impatient.close();
    }
  });
});

describe('kafkaTransport options', () => {
  it('fails fast on bad options, naming the value', () => {
    expect(() => kafkaTransport({ brokers: [] })).toThrow(/brokers/);
    expect(() => kafkaTransport({ brokers: ['localhost:9092'], defaultPartitions: 0 })).toThrow(/defaultPartitions.*0/);
    expect(() => kafkaTransport({ brokers: ['localhost:9092'], consumer: { heartbeatInterval: '30s', sessionTimeout: '10s' } })).toThrow(/heartbeatInterval/);
    expect(() => kafkaTransport({ brokers: ['localhost:9092'], retry: { initialRetryTime: 'soon' as never } })).toThrow(/initialRetryTime.*soon/);
    expect(kafkaTransport({ brokers: ['localhost:9092'] }).defaultPartitions).toBeUndefined();
    expect(kafkaTransport({ brokers: ['localhost:9092'], defaultPartitions: 6 }).defaultPartitions).toBe(6);
  });
});
