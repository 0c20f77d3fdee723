/**
 * The consumer group protocol of KIP-848 as Eddy's members speak it: incremental rebalances that
 * leave the partitions that do not move alone, static membership, and read_committed with
 * several producers aborting in one partition.
 */
import type { ConsumerListener, IncomingRecord, TopicPartition, TransactionalProducer, TransportConsumer } from '@eddy/core';
import { kafkaTransport, type KafkaTransport } from '@eddy/kafka';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { recordingLogger, sleep, waitFor } from './helpers.ts';

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);
const names = (partitions: readonly TopicPartition[]) => partitions.map(({ partition }) => partition).sort().join(',');

/** A listener that records its events with the time they happened. */
function timedListener(name: string, log: Array<{ at: number; event: string }>, received: Array<{ at: number; member: string; record: IncomingRecord }>, { revokeMs = 0 } = {}) {
  const listener: ConsumerListener = {
    async onAssign(partitions) {
      log.push({ at: Date.now(), event: `${name} assign ${names(partitions)}` });
    },
    async onRevoke(partitions) {
      log.push({ at: Date.now(), event: `${name} revoke start ${names(partitions)}` });
      await sleep(revokeMs);
      log.push({ at: Date.now(), event: `${name} revoke done ${names(partitions)}` });
    },
    async onRecords(batch) {
      const at = Date.now();
      for (const record of batch) received.push({ at, member: name, record });
    },
  };
  return listener;
}

describeKafka('the consumer group protocol (KIP-848) on a real broker', (brokers) => {
  const logger = recordingLogger();
  const transports: KafkaTransport[] = [];
  const transport = (options: { groupInstanceId?: string } = {}) => {
    const made = kafkaTransport({ brokers, logger, consumer: { maxWaitTime: '100ms' }, ...options });
    transports.push(made);
    return made;
  };
  let admin: KafkaTransport;

  beforeAll(async () => {
    admin = transport();
    await admin.connect();
  });

  afterAll(async () => {
    await Promise.allSettled(transports.map((each) => each.close()));
  });

  it('when a member joins, the partitions that stay keep being processed while the others move', async () => {
    const topic = uniqueName('eddy-g-incremental');
    const group = uniqueName('eddy-g-group');
    await admin.ensureTopics([{ name: topic, partitions: 4 }]);
    const producer = await admin.createProducer();
    let sequence = 0;
    let producing = true;
    // A steady input on every partition, every 50 ms.
    const feeding = (async () => {
      while (producing) {
        await producer.send(Array.from({ length: 4 }, (_, partition) => ({ topic, partition, key: null, value: bytes(String(sequence++)), timestamp: Date.now() })));
        await sleep(50);
      }
    })();
    const log: Array<{ at: number; event: string }> = [];
    const received: Array<{ at: number; member: string; record: IncomingRecord }> = [];
    let a: TransportConsumer | undefined;
    let b: TransportConsumer | undefined;
    try {
      // A takes 2 s to revoke (a task flushing its state): the partitions it keeps must not wait for that.
      a = await transport().subscribe(group, [topic], timedListener('A', log, received, { revokeMs: 2_000 }));
      await waitFor('A reading every partition', () => new Set(received.map(({ record }) => record.partition)).size === 4);
      b = await transport().subscribe(group, [topic], timedListener('B', log, received));
      await waitFor('B assigned', () => log.some(({ event }) => event.startsWith('B assign')), { timeoutMs: 20_000 });
      await sleep(500);
      const revokeStart = log.find(({ event }) => event.startsWith('A revoke start'))!;
      const revokeDone = log.find(({ event }) => event.startsWith('A revoke done'))!;
      const bAssign = log.find(({ event }) => event.startsWith('B assign'))!;
      const moved = bAssign.event.slice('B assign '.length).split(',').map(Number);
      const kept = [0, 1, 2, 3].filter((partition) => !moved.includes(partition));
      expect(moved).toHaveLength(2);
      expect(revokeStart.event).toBe(`A revoke start ${moved.join(',')}`);
      expect(bAssign.at, 'B gets its partitions only once A has let go of them').toBeGreaterThanOrEqual(revokeDone.at);
      // While A was revoking (2 s), its kept partitions went on: records of each arrived in that time, with no gap over 1 s.
      for (const partition of kept) {
        const times = received.filter(({ member, record }) => member === 'A' && record.partition === partition && record.offset >= 0).map(({ at }) => at);
        const during = times.filter((at) => at >= revokeStart.at && at <= revokeDone.at);
        expect(during.length, `A read partition ${partition} during its revocation`).toBeGreaterThan(5);
        const around = times.filter((at) => at >= revokeStart.at - 1_000 && at <= bAssign.at + 500);
        const gaps = around.slice(1).map((at, index) => at - around[index]!);
        expect(Math.max(...gaps), `longest gap in partition ${partition}`).toBeLessThan(1_000);
      }
      // The moved partitions: A's records end before B's begin, and no offset is skipped.
      for (const partition of moved) {
        const offsets = received.filter(({ record }) => record.partition === partition).map(({ record }) => record.offset);
        const distinct = [...new Set(offsets)].sort((x, y) => x - y);
        expect(distinct).toEqual(Array.from({ length: distinct.length }, (_, index) => index));
      }
      expect(log.filter(({ event }) => event.startsWith('A ')).map(({ event }) => event.split(' ')[1])).toEqual(['assign', 'revoke', 'revoke']);
    } finally {
      producing = false;
      await feeding;
      await producer.close();
      await Promise.allSettled([a?.close(), b?.close()]);
    }
    expect(logger.errors()).toEqual([]);
  });

  it('a static member that stops and comes back within the session timeout gets its partitions back, with no rebalance of the others', async () => {
    const topic = uniqueName('eddy-g-static');
    const group = uniqueName('eddy-g-group');
    await admin.ensureTopics([{ name: topic, partitions: 4 }]);
    const log: Array<{ at: number; event: string }> = [];
    const received: Array<{ at: number; member: string; record: IncomingRecord }> = [];
    const a = await transport({ groupInstanceId: 'instance-a' }).subscribe(group, [topic], timedListener('A', log, received));
    const second = transport({ groupInstanceId: 'instance-b' });
    const b = await second.subscribe(group, [topic], timedListener('B', log, received));
    try {
      await waitFor('two partitions each', () => log.some(({ event }) => event.startsWith('B assign')), { timeoutMs: 20_000 });
      const bPartitions = log.find(({ event }) => event.startsWith('B assign'))!.event.slice('B assign '.length);
      await sleep(1_000);
      const before = log.length;
      // B stops (a restart): as a static member it leaves its partitions reserved.
      await b.close();
      await sleep(1_500);
      const again = await transport({ groupInstanceId: 'instance-b' }).subscribe(group, [topic], timedListener('B2', log, received));
      try {
        await waitFor('B2 assigned', () => log.some(({ event }) => event.startsWith('B2 assign')), { timeoutMs: 20_000 });
        await sleep(1_500);
        expect(log.find(({ event }) => event.startsWith('B2 assign'))!.event).toBe(`B2 assign ${bPartitions}`);
        // A saw nothing of it: no revoke, no assign.
        expect(log.slice(before).filter(({ event }) => event.startsWith('A '))).toEqual([]);
      } finally {
        await again.close();
      }
    } finally {
      await a.close();
    }
  });

  it('a read_committed member and reader skip the records of every aborted transaction, with several producers aborting in one partition', async () => {
    const topic = uniqueName('eddy-g-aborted');
    await admin.ensureTopics([{ name: topic, partitions: 1 }]);
    const producers = await Promise.all([0, 1, 2].map((index) => admin.createProducer({ transactionalId: uniqueName(`eddy-g-tx-${index}`) })));
    const transactional = producers as Array<TransactionalProducer>;
    const committed: string[] = [];
    let sequence = 0;
    const write = (producer: TransactionalProducer, count: number) =>
      producer.send(Array.from({ length: count }, () => ({ topic, partition: 0, key: null, value: bytes(String(sequence++)), timestamp: Date.now() })));
    // Three producers' transactions interleave in one partition; two of them abort, twice.
    for (let round = 0; round < 2; round++) {
      await Promise.all(transactional.map((producer) => producer.begin()));
      for (let step = 0; step < 3; step++) {
        for (const [index, producer] of transactional.entries()) {
          const from = sequence;
          await write(producer, 3);
          if (index === 1) for (let value = from; value < sequence; value++) committed.push(String(value));
        }
      }
      await transactional[0]!.abort();
      await transactional[1]!.commit();
      await transactional[2]!.abort();
    }
    await Promise.all(producers.map((producer) => producer.close()));

    const received: Array<{ at: number; member: string; record: IncomingRecord }> = [];
    const member = await admin.subscribe(uniqueName('eddy-g-group'), [topic], timedListener('M', [], received));
    try {
      await waitFor('the committed records', () => received.length >= committed.length);
      await sleep(500);
      expect(received.map(({ record }) => new TextDecoder().decode(record.value!))).toEqual(committed);
    } finally {
      await member.close();
    }
    const read: string[] = [];
    for await (const batch of admin.readPartition({ topic, partition: 0 }, 0)) read.push(...batch.map((record) => new TextDecoder().decode(record.value!)));
    expect(read).toEqual(committed);
  });
});
