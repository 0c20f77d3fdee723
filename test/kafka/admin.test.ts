/**
 * The admin side and the partition reader of @eddy/kafka on a real broker: `KafkaAdmin` (topics,
 * their partitions and limits, end offsets, DeleteRecords) and `readPartition` (read_committed
 * restore reads), checked against what the broker itself reports through @platformatic/kafka.
 */
import { Buffer } from 'node:buffer';
import { ConfigError, EddyError, type IncomingRecord, type Logger, type TopicPartition } from '@eddy/core';
import { Admin, ConfigResourceTypes, IncrementalAlterConfigOperationTypes, Producer } from '@platformatic/kafka';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kafkaTransport } from '@eddy/kafka';
import { KafkaAdmin } from '../../packages/kafka/src/admin.ts';
import { resolveSettings, type KafkaSettings } from '../../packages/kafka/src/options.ts';
import { readPartition } from '../../packages/kafka/src/read-partition.ts';
import { describeKafka, uniqueName } from './broker.ts';

const text = (data: Uint8Array | null) => (data === null ? null : Buffer.from(data).toString('utf8'));

/** A logger that keeps warnings (the reader warns when records were deleted before it read them). */
function warningLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const quiet = () => undefined;
  return { warnings, debug: quiet, info: quiet, warn: (_fields, message) => warnings.push(message), error: (_fields, message) => warnings.push(message) };
}

describeKafka('KafkaAdmin and readPartition on a real broker', (brokers) => {
  const logger = warningLogger();
  let settings: KafkaSettings;
  let admin: KafkaAdmin;
  /** The client's own admin, to check what the broker reports. */
  let broker: Admin;
  let producer: Producer;
  const created: string[] = [];

  beforeAll(async () => {
    settings = resolveSettings({ brokers, clientId: uniqueName('eddy-admin'), logger });
    admin = new KafkaAdmin(settings);
    broker = new Admin({ clientId: 'eddy-test', bootstrapBrokers: brokers });
    producer = new Producer({ clientId: 'eddy-test', bootstrapBrokers: brokers, acks: -1 });
  });

  afterAll(async () => {
    if (created.length > 0) await broker?.deleteTopics({ topics: created }).catch(() => undefined);
    await Promise.allSettled([admin?.close(), broker?.close(), producer?.close()]);
  });

  /** A new topic name, deleted after the suite. */
  const topicName = (prefix: string) => {
    const name = uniqueName(prefix);
    created.push(name);
    return name;
  };

  /** Writes `count` records to partition `partition`, the value of each its sequence number from `first`. */
  async function write(topic: string, partition: number, count: number, first = 0): Promise<void> {
    for (let start = 0; start < count; start += 5_000) {
      const messages = Array.from({ length: Math.min(5_000, count - start) }, (_, index) => ({ topic, partition, key: Buffer.from(`k${first + start + index}`), value: Buffer.from(`v${first + start + index}`) }));
      await producer.send({ messages });
    }
  }

  async function readAll(tp: TopicPartition, from: number, onBatch?: (batch: readonly IncomingRecord[]) => Promise<void>) {
    const batches: (readonly IncomingRecord[])[] = [];
    for await (const batch of readPartition(settings, tp, from)) {
      batches.push(batch);
      await onBatch?.(batch);
    }
    return { batches, records: batches.flat() };
  }

  async function topicConfig(topic: string, name: string): Promise<string | null | undefined> {
    const [description] = await broker.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: [name] }] });
    return description?.configs.find((entry) => entry.name === name)?.value;
  }

  async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`not true after ${timeoutMs} ms: ${String(check)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async function logStart({ topic, partition }: TopicPartition): Promise<number> {
    const [listed] = await broker.listOffsets({ topics: [{ name: topic, partitions: [{ partitionIndex: partition, timestamp: -2n }] }] });
    return Number(listed!.partitions[0]!.offset);
  }

  it('creates missing topics once, with their configs and the broker default replication factor', async () => {
    const plain = topicName('eddy-a-plain');
    const changelog = topicName('eddy-a-changelog');
    const repartition = topicName('eddy-a-repartition');
    expect(await admin.partitionCount(plain)).toBeUndefined();

    const specs = [
      { name: plain, partitions: 3 },
      { name: changelog, partitions: 2, compacted: true },
      { name: repartition, partitions: 2, unlimitedRetention: true },
      // The first of a name wins.
      { name: plain, partitions: 7 },
    ];
    await admin.ensureTopics(specs);
    await admin.ensureTopics(specs);

    expect(await admin.partitionCount(plain)).toBe(3);
    expect(await admin.partitionCount(changelog)).toBe(2);
    expect(await admin.partitionCount(repartition)).toBe(2);
    const topics = await admin.topics();
    for (const name of [plain, changelog, repartition]) expect(topics.has(name)).toBe(true);
    expect([...topics].some((name) => name.startsWith('__'))).toBe(false);

    expect(await topicConfig(changelog, 'cleanup.policy')).toBe('compact');
    expect(await topicConfig(plain, 'cleanup.policy')).toBe('delete');
    expect(await topicConfig(repartition, 'retention.ms')).toBe('-1');
    expect(await topicConfig(plain, 'retention.ms')).not.toBe('-1');

    // No replicationFactor given: CreateTopics asks for -1, the broker's default.replication.factor.
    const metadata = await broker.metadata({ topics: [plain] });
    const [brokerId] = [...metadata.brokers.keys()];
    const [brokerConfig] = await broker.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.BROKER, resourceName: String(brokerId), configurationKeys: ['default.replication.factor'] }] });
    const defaultReplication = Number(brokerConfig!.configs.find((entry) => entry.name === 'default.replication.factor')!.value);
    expect(metadata.topics.get(plain)!.partitions.map(({ replicas }) => replicas.length)).toEqual([defaultReplication, defaultReplication, defaultReplication]);
  });

  it('checks specs before asking the broker', async () => {
    await expect(admin.ensureTopics([{ name: 'bad name!', partitions: 1 }])).rejects.toBeInstanceOf(ConfigError);
    await expect(admin.ensureTopics([{ name: uniqueName('eddy-a-zero'), partitions: 0 }])).rejects.toThrow(/partitions must be a positive integer, got 0/);
    await expect(admin.ensureTopics([])).resolves.toBeUndefined();
  });

  it('lets concurrent creators of the same topics all succeed, and the topics are usable at once', async () => {
    const topics = [topicName('eddy-a-race'), topicName('eddy-a-race')];
    const creators = Array.from({ length: 4 }, () => new KafkaAdmin(settings));
    try {
      // Connected first, so that every creator lists the topics before any creates them.
      await Promise.all(creators.map((creator) => creator.topics()));
      await Promise.all(creators.map((creator) => creator.ensureTopics(topics.map((name) => ({ name, partitions: 4, compacted: true })))));
      for (const name of topics) {
        expect(await creators[0]!.partitionCount(name)).toBe(4);
        expect(await topicConfig(name, 'cleanup.policy')).toBe('compact');
      }
      // Every partition's leader answers right away (Kafka 4 names a leader a moment before it serves).
      const [fresh] = creators;
      const ends = await Promise.all([0, 1, 2, 3].map((partition) => fresh!.endOffset({ topic: topics[1]!, partition })));
      expect(ends).toEqual([0, 0, 0, 0]);
      expect((await fresh!.topicLimits(topics[1]!)).maxMessageBytes).toBeGreaterThan(0);
    } finally {
      await Promise.all(creators.map((creator) => creator.close()));
    }
  });

  it('reads end offsets, 0 for partitions that do not exist', async () => {
    const topic = topicName('eddy-a-end');
    await admin.ensureTopics([{ name: topic, partitions: 2 }]);
    await write(topic, 1, 1_234);
    expect(await admin.endOffset({ topic, partition: 1 })).toBe(1_234);
    expect(await admin.endOffset({ topic, partition: 0 })).toBe(0);
    expect(await admin.endOffset({ topic, partition: 5 })).toBe(0);
    expect(await admin.endOffset({ topic: uniqueName('eddy-a-nowhere'), partition: 0 })).toBe(0);
  });

  it('deletes records: the log then starts there, and a read from below it goes on from there', async () => {
    const topic = topicName('eddy-a-delete');
    const tp = { topic, partition: 0 };
    await admin.ensureTopics([{ name: topic, partitions: 1, unlimitedRetention: true }]);
    await write(topic, 0, 100);

    await admin.deleteRecords(tp, 40);
    expect(await logStart(tp)).toBe(40);
    expect(await admin.endOffset(tp)).toBe(100);
    // Deleting below the start again changes nothing.
    await admin.deleteRecords(tp, 10);
    expect(await logStart(tp)).toBe(40);

    logger.warnings.length = 0;
    const { records } = await readAll(tp, 5);
    expect(records.map(({ offset }) => offset)).toEqual(Array.from({ length: 60 }, (_, index) => 40 + index));
    expect(records.map(({ value }) => text(value))).toEqual(Array.from({ length: 60 }, (_, index) => `v${40 + index}`));
    expect(logger.warnings).toEqual(['records were deleted before they were read; reading on from where the partition starts now']);

    await expect(admin.deleteRecords({ topic, partition: 3 }, 1)).rejects.toMatchObject({ code: 'TRANSPORT_FAILED', message: expect.stringContaining('does not exist') });
    await expect(admin.deleteRecords(tp, -1)).rejects.toBeInstanceOf(EddyError);
    // A compacted topic refuses DeleteRecords (the broker's policy).
    const changelog = topicName('eddy-a-delete-compacted');
    await admin.ensureTopics([{ name: changelog, partitions: 1, compacted: true }]);
    await expect(admin.deleteRecords({ topic: changelog, partition: 0 }, 0)).rejects.toMatchObject({ code: 'TRANSPORT_FAILED', retriable: false, message: expect.stringContaining('POLICY_VIOLATION') });
  });

  it('reads a topic’s limits, also after its configuration changed', async () => {
    const topic = topicName('eddy-a-limits');
    await admin.ensureTopics([{ name: topic, partitions: 1 }]);
    const defaults = await admin.topicLimits(topic);
    expect(defaults.maxMessageBytes).toBeGreaterThan(0);
    expect(defaults.logAppendTime).toBe(false);
    // Long.MAX_VALUE, the default of message.timestamp.before.max.ms, means no limit.
    expect(defaults.timestampBeforeMaxMs).toBeUndefined();

    await broker.incrementalAlterConfigs({
      resources: [
        {
          resourceType: ConfigResourceTypes.TOPIC,
          resourceName: topic,
          configs: [
            { name: 'max.message.bytes', configOperation: IncrementalAlterConfigOperationTypes.SET, value: '200000' },
            { name: 'message.timestamp.type', configOperation: IncrementalAlterConfigOperationTypes.SET, value: 'LogAppendTime' },
            { name: 'message.timestamp.before.max.ms', configOperation: IncrementalAlterConfigOperationTypes.SET, value: '86400000' },
          ],
        },
      ],
    });
    // A broker answers DescribeConfigs with a changed config a moment after the change (CI once read the old one).
    const changed = { maxMessageBytes: 200_000, logAppendTime: true, timestampAfterMaxMs: defaults.timestampAfterMaxMs, timestampBeforeMaxMs: 86_400_000 };
    await waitFor(async () => JSON.stringify(await admin.topicLimits(topic)) === JSON.stringify(changed)).catch(() => undefined);
    expect(await admin.topicLimits(topic)).toEqual(changed);
    await expect(admin.topicLimits(uniqueName('eddy-a-nowhere'))).rejects.toMatchObject({ code: 'TRANSPORT_FAILED', message: expect.stringContaining('does not exist') });
  });

  it('sets a consumer group’s session timeout and heartbeat interval (the group owns them under KIP-848), and the transport does so for the timeouts it is given', async () => {
    const groupConfig = async (groupId: string) => {
      const [described] = await broker.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.GROUP, resourceName: groupId, configurationKeys: ['consumer.session.timeout.ms', 'consumer.heartbeat.interval.ms'] }] });
      return Object.fromEntries((described?.configs ?? []).map((entry) => [entry.name, entry.value]));
    };
    const group = uniqueName('eddy-a-group');
    // The controller applies a config change; a broker answers DescribeConfigs with it a moment later.
    const configured = async (groupId: string, wanted: Record<string, string>) => {
      const deadline = Date.now() + 10_000;
      let seen = await groupConfig(groupId);
      const same = (a: Record<string, unknown>, b: Record<string, unknown>) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
      while (!same(seen, wanted) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        seen = await groupConfig(groupId);
      }
      return seen;
    };
    await admin.configureGroup(group, { 'consumer.session.timeout.ms': '7000', 'consumer.heartbeat.interval.ms': '700' });
    expect(await configured(group, { 'consumer.heartbeat.interval.ms': '700', 'consumer.session.timeout.ms': '7000' })).toEqual({ 'consumer.session.timeout.ms': '7000', 'consumer.heartbeat.interval.ms': '700' });
    // Outside the broker's bounds (this broker: 1 s to 60 s): refused, with the broker's reason.
    await expect(admin.configureGroup(group, { 'consumer.session.timeout.ms': '600000' })).rejects.toMatchObject({ code: 'TRANSPORT_FAILED', retriable: false });

    const topic = topicName('eddy-a-group-topic');
    await admin.ensureTopics([{ name: topic, partitions: 1 }]);
    const subscribed = uniqueName('eddy-a-subscribed');
    const transport = kafkaTransport({ brokers, logger, consumer: { sessionTimeout: '8s', heartbeatInterval: '400ms' } });
    try {
      const consumer = await transport.subscribe(subscribed, [topic], { onAssign: async () => undefined, onRevoke: async () => undefined, onRecords: async () => undefined });
      expect(await configured(subscribed, { 'consumer.heartbeat.interval.ms': '400', 'consumer.session.timeout.ms': '8000' })).toEqual({ 'consumer.session.timeout.ms': '8000', 'consumer.heartbeat.interval.ms': '400' });
      await consumer.close();
    } finally {
      await transport.close();
    }
  });

  it('reads a partition in batches of at most 10,000, from an offset up to its end at the time of the call', { timeout: 60_000 }, async () => {
    const topic = topicName('eddy-a-read');
    await admin.ensureTopics([{ name: topic, partitions: 2, compacted: true }]);
    const total = 25_000;
    await write(topic, 1, total);
    const tp = { topic, partition: 1 };

    const whole = await readAll(tp, 0);
    expect(whole.batches.length).toBeGreaterThan(2);
    for (const batch of whole.batches) expect(batch.length).toBeLessThanOrEqual(10_000);
    expect(whole.records.map(({ offset }) => offset)).toEqual(Array.from({ length: total }, (_, index) => index));
    expect(whole.records.every((record) => record.topic === topic && record.partition === 1 && text(record.value) === `v${record.offset}` && text(record.key) === `k${record.offset}`)).toBe(true);

    const middle = await readAll(tp, 12_345);
    expect(middle.records.map(({ offset }) => offset)).toEqual(Array.from({ length: total - 12_345 }, (_, index) => 12_345 + index));

    // Writes after the call are not part of the read.
    let wrote = false;
    const during = await readAll(tp, 20_000, async () => {
      if (wrote) return;
      wrote = true;
      await write(topic, 1, 10, total);
    });
    expect(during.records.map(({ offset }) => offset)).toEqual(Array.from({ length: total - 20_000 }, (_, index) => 20_000 + index));
    expect((await readAll(tp, total)).records.map(({ offset }) => offset)).toEqual(Array.from({ length: 10 }, (_, index) => total + index));

    // Nothing to read returns at once: an empty partition, a range past the end, a topic that does not exist.
    const started = Date.now();
    expect((await readAll({ topic, partition: 0 }, 0)).batches).toEqual([]);
    expect((await readAll(tp, total + 10)).batches).toEqual([]);
    expect((await readAll(tp, total + 500)).batches).toEqual([]);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect((await readAll({ topic: uniqueName('eddy-a-nowhere'), partition: 0 }, 0)).batches).toEqual([]);

    await expect(readAll(tp, -1)).rejects.toMatchObject({ code: 'TRANSPORT_FAILED', message: expect.stringContaining('non-negative integer') });
  });

  it('closes its connections when the caller leaves early', async () => {
    const topic = topicName('eddy-a-leave');
    await admin.ensureTopics([{ name: topic, partitions: 1 }]);
    await write(topic, 0, 30_000);
    const sockets = () => process.getActiveResourcesInfo().filter((kind) => kind === 'TCPSocketWrap').length;
    const before = sockets();
    let during = 0;
    for await (const batch of readPartition(settings, { topic, partition: 0 }, 0)) {
      expect(batch.length).toBeGreaterThan(0);
      during = sockets();
      break;
    }
    expect(during).toBeGreaterThan(before);
    // Sockets are released on the next turns of the event loop.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(sockets()).toBe(before);
  });

  it('reads committed records only: aborted transactions are skipped, and the read ends at the last stable offset', { timeout: 60_000 }, async () => {
    const topic = topicName('eddy-a-txn');
    const tp = { topic, partition: 0 };
    await admin.ensureTopics([{ name: topic, partitions: 1, compacted: true }]);
    const transactional = (id: string) => new Producer({ clientId: 'eddy-test', bootstrapBrokers: brokers, transactionalId: uniqueName(id), idempotent: true, acks: -1 });
    const first = transactional('eddy-a-txn-first');
    const second = transactional('eddy-a-txn-second');
    const message = (value: string) => ({ topic, partition: 0, key: Buffer.from(value), value: Buffer.from(value) });
    try {
      const inTransaction = async (producer: Producer, values: string[], outcome: 'commit' | 'abort') => {
        const transaction = await producer.beginTransaction();
        await transaction.send({ messages: values.map(message) });
        await (outcome === 'commit' ? transaction.commit() : transaction.abort());
      };
      await inTransaction(first, ['c1', 'c2'], 'commit');
      await inTransaction(first, ['a1', 'a2', 'a3'], 'abort');
      await inTransaction(second, ['c3'], 'commit');
      // Two producers interleaved: one aborts while the other's transaction stays open and commits.
      const open = await first.beginTransaction();
      await open.send({ messages: [message('c4')] });
      const aborting = await second.beginTransaction();
      await aborting.send({ messages: [message('a4'), message('a5')] });
      await open.send({ messages: [message('c5')] });
      await aborting.abort();
      await open.send({ messages: [message('c6')] });
      await open.commit();
      await inTransaction(second, ['a6'], 'abort');
      await inTransaction(first, ['c7'], 'commit');

      const committed = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'];
      // 13 records and 7 transaction markers; a marker is written a moment after its commit or abort returns.
      const end = 20;
      await waitFor(async () => (await admin.endOffset(tp)) === end);
      const { records } = await readAll(tp, 0);
      expect(records.map(({ value }) => text(value))).toEqual(committed);
      // The read ends although the last offset holds a marker, not a record.
      expect(records.at(-1)!.offset).toBeLessThan(end - 1);
      // From the middle of an aborted transaction: c1 0, c2 1, its commit marker 2, a1 3, a2 4.
      expect((await readAll(tp, 4)).records.map(({ value }) => text(value))).toEqual(committed.slice(2));

      // An open transaction's records lie past the last stable offset: the read ends before them.
      const pending = await second.beginTransaction();
      await pending.send({ messages: [message('p1')] });
      expect(await admin.endOffset(tp)).toBe(end + 1);
      const started = Date.now();
      expect((await readAll(tp, 0)).records.map(({ value }) => text(value))).toEqual(committed);
      expect(Date.now() - started).toBeLessThan(5_000);
      await pending.abort();
      expect((await readAll(tp, end)).records).toEqual([]);
    } finally {
      await Promise.allSettled([first.close(), second.close()]);
    }
  });
});
