import type { Clock } from '../clock.js';
import { ConfigError, EddyError } from '../errors.js';
import { MemoryConsumer } from './memory-consumer.js';
import { ConsumerGroup, type GroupBroker } from './memory-group.js';
import { resolveMemoryOptions, type MemoryTransportOptions } from './memory-options.js';
import { PartitionLog, type Compaction, type Retention } from './partition-log.js';
import type {
  ConsumerListener,
  Headers,
  IncomingRecord,
  OutgoingRecord,
  TopicPartition,
  TopicPartitionOffset,
  TopicSpec,
  Transport,
  TransportConsumer,
  TransportProducer,
} from './types.js';
import { partitionKey } from './types.js';

export type { MemoryTransportOptions, RetentionOptions } from './memory-options.js';

const emptyHeaders: Headers = Object.freeze({});

interface Topic {
  readonly spec: TopicSpec;
  readonly partitions: PartitionLog[];
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The embedded broker: an in-process partitioned log with consumer groups and committed offsets.
 * Apps that share one instance share its topics and groups, so a pipeline can feed another and a
 * restarted app resumes from its committed offsets.
 *
 * @example
 * const transport = memoryTransport({ defaultPartitions: 4 });
 * const first = createApp({ id: 'counts', transport });
 */
export function memoryTransport(options: MemoryTransportOptions = {}): MemoryTransport {
  return new MemoryTransport(options);
}

export class MemoryTransport implements Transport {
  readonly kind: string = 'memory';
  readonly keepsValues: boolean = true;
  readonly stepsBacklogs: boolean = true;
  /**
   * The broker lives and dies with the process, so no failure can separate a task's outputs from
   * its committed offsets: exactly-once holds here by construction.
   */
  readonly exactlyOnce: boolean = true;
  readonly #topics = new Map<string, Topic>();
  readonly #groups = new Map<string, ConsumerGroup>();
  /** What the groups need of this broker: topic sizes, and the durable write of their commits. */
  readonly #groupBroker: GroupBroker = {
    partitionsOf: (topic) => this.#topics.get(topic)?.partitions.length ?? 0,
    writeCommitted: (groupId, offsets) => this.writeCommitted(groupId, offsets),
  };
  readonly defaultPartitions: number;
  readonly maxBatchSize: number;
  /** What each partition of an ordinary topic keeps (resolved from the options once). */
  protected readonly retention: Retention;
  readonly #compaction: Compaction;
  /** Per partition log, the next offset to give a record (ahead of `end` while records are being written). */
  readonly #nextOffset = new Map<PartitionLog, number>();
  /** Per partition (by key), where its log starts, if records were deleted from its front. */
  readonly #starts = new Map<string, number>();
  protected readonly clock: Clock;

  constructor(options: MemoryTransportOptions = {}, what = 'memoryTransport') {
    const resolved = resolveMemoryOptions(options, what);
    this.retention = resolved.retention;
    this.#compaction = resolved.compaction;
    this.clock = resolved.clock;
    this.defaultPartitions = resolved.defaultPartitions;
    this.maxBatchSize = resolved.maxBatchSize;
  }

  async connect(): Promise<void> {}

  /** The log lives as long as this object, so closing one app's use of it keeps the data. */
  async close(): Promise<void> {}

  async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
    for (const spec of specs) this.createTopic(spec);
  }

  /** Creates a topic if it does not exist (synchronously; the embedded broker has no latency). */
  createTopic(spec: TopicSpec): void {
    if (this.#topics.has(spec.name)) return;
    if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
      throw new ConfigError(`topic ${spec.name}: partitions must be a positive integer, got ${String(spec.partitions)}`);
    }
    // Only a byte limit needs each record's size.
    const countsBytes = this.retention.bytes !== undefined && !spec.compacted && !spec.unlimitedRetention;
    this.#topics.set(spec.name, { spec, partitions: Array.from({ length: spec.partitions }, () => new PartitionLog(countsBytes)) });
    this.topicCreated(spec);
  }

  // --- where a broker that keeps its log on disk takes over (levelTransport, in @eddy/state) ---

  /** Writes records durably before they are delivered; the memory broker keeps nothing (no wait). */
  protected write(records: readonly IncomingRecord[]): Promise<void> | undefined {
    void records;
    return undefined;
  }

  /** Keeps committed offsets durably before the commit resolves. */
  protected writeCommitted(groupId: string, offsets: readonly TopicPartitionOffset[]): Promise<void> | undefined {
    void groupId;
    void offsets;
    return undefined;
  }

  /** A topic was created. */
  protected topicCreated(spec: TopicSpec): void {
    void spec;
  }

  /**
   * Where a partition's log starts: records before it were deleted (retention, DeleteRecords),
   * not compacted away. A new group starts reading there; a member behind it lost what it had not read.
   */
  logStart(topic: string, partition: number): number {
    return this.#starts.get(partitionKey(topic, partition)) ?? 0;
  }

  #truncated(topic: string, partition: number, start: number): void {
    const key = partitionKey(topic, partition);
    this.#starts.set(key, Math.max(start, this.#starts.get(key) ?? 0));
    this.logTruncated(topic, partition, start);
  }

  /** A partition's records before `start` are gone (retention, deleted records). */
  protected logTruncated(topic: string, partition: number, start: number): void {
    void topic;
    void partition;
    void start;
  }

  /** A partition was compacted: it holds `records` now (written at `writtenAt`), and nothing else. */
  protected logCompacted(topic: string, partition: number, records: readonly IncomingRecord[], writtenAt: readonly number[]): void {
    void topic;
    void partition;
    void records;
    void writtenAt;
  }

  /** Puts a partition's records back as they were kept (a broker loading its log): `writtenAt` per record, and the partition's end. */
  protected restorePartition(topic: string, partition: number, records: readonly IncomingRecord[], writtenAt: readonly number[], end: number): void {
    const log = this.#partitionLog(topic, partition, false);
    records.forEach((record, index) => log.push(record, writtenAt[index]!));
    log.end = Math.max(log.end, end);
    // Loaded records are not known to be compacted: the next retain judges them (at once if many).
    log.compactedSize = 0;
    this.#nextOffset.set(log, log.end);
    // What expired while the broker was down goes now, not with the next record.
    this.#retain(log, this.clock.now());
  }

  /** Puts a group's committed offset back (a broker loading its log). */
  protected restoreCommitted(groupId: string, topic: string, partition: number, offset: number): void {
    this.#group(groupId).restoreCommitted(topic, partition, offset);
  }

  async partitionCount(topic: string): Promise<number | undefined> {
    return this.#topics.get(topic)?.partitions.length;
  }

  /** Topic names, for tests and tools. */
  topicNames(): string[] {
    return [...this.#topics.keys()];
  }

  async createProducer(): Promise<TransportProducer> {
    return {
      send: (records) => this.produce(records),
      close: async () => {},
    };
  }

  /**
   * Appends records (written first, where the broker keeps its log on disk), then delivers them;
   * resolves with the offset of the last record written to each partition.
   */
  protected produce(records: readonly OutgoingRecord[]): Promise<TopicPartitionOffset[]> {
    try {
      const allocated = this.#allocate(records);
      const writing = this.write(allocated);
      if (!writing) return Promise.resolve(this.#publish(allocated));
      return writing.then(() => this.#publish(allocated));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Appends records and wakes the consumers of the partitions written (the memory broker, at once). */
  append(records: readonly OutgoingRecord[]): TopicPartitionOffset[] {
    return this.#publish(this.#allocate(records));
  }

  /** Gives each record its offset in its partition, in order. */
  #allocate(records: readonly OutgoingRecord[]): IncomingRecord[] {
    const allocated: IncomingRecord[] = [];
    let log: PartitionLog | undefined;
    let next = 0;
    for (const record of records) {
      // Batches mostly go to one partition: look the log up only when it changes.
      if (!log || record.partition !== allocated[allocated.length - 1]!.partition || record.topic !== allocated[allocated.length - 1]!.topic) {
        if (log) this.#nextOffset.set(log, next);
        log = this.#partitionLog(record.topic, record.partition, true);
        next = this.#nextOffset.get(log) ?? log.end;
      }
      allocated.push({
        topic: record.topic,
        partition: record.partition,
        offset: next++,
        key: record.key,
        value: record.value,
        timestamp: record.timestamp,
        headers: record.headers ?? emptyHeaders,
        decoded: record.decoded,
      });
    }
    if (log) this.#nextOffset.set(log, next);
    return allocated;
  }

  /** Puts allocated records into their logs, keeps each log within its limits, and wakes the consumers. */
  #publish(allocated: readonly IncomingRecord[]): TopicPartitionOffset[] {
    const now = this.clock.now();
    const written = new Map<PartitionLog, TopicPartitionOffset>();
    let log: PartitionLog | undefined;
    for (let index = 0; index < allocated.length; index++) {
      const record = allocated[index]!;
      if (!log || record.partition !== allocated[index - 1]!.partition || record.topic !== allocated[index - 1]!.topic) log = this.#partitionLog(record.topic, record.partition, false);
      // Writes finish in the order they were given offsets; anything else would reorder a partition.
      if (record.offset < log.end) throw new EddyError('TRANSPORT_FAILED', `${record.topic}[${record.partition}]: offset ${record.offset} written after ${log.end - 1}`);
      log.push(record, now);
      const next = allocated[index + 1];
      // The last of a run of the partition: keep it in bounds, and report its offset (a later run overwrites it).
      if (!next || next.partition !== record.partition || next.topic !== record.topic) {
        this.#retain(log, now);
        written.set(log, { topic: record.topic, partition: record.partition, offset: record.offset });
      }
    }
    for (const group of this.#groups.values()) {
      for (const member of group.members) member.wake();
    }
    return [...written.values()];
  }

  /** Compaction for compacted topics, retention for ordinary ones; repartition topics are trimmed as committed. */
  #retain(log: PartitionLog, now: number): void {
    const first = log.records[0];
    if (!first) return;
    const spec = this.#topics.get(first.topic)!.spec;
    if (spec.compacted) {
      if (log.records.length <= Math.max(1_000, 2 * log.compactedSize)) return;
      if (log.compact(this.#compaction, now).length > 0) this.logCompacted(first.topic, first.partition, log.records, log.writtenAt);
    } else if (!spec.unlimitedRetention && log.retain(this.retention, now).length > 0) {
      this.#truncated(first.topic, first.partition, log.offsets[0] ?? log.end);
    }
  }

  /**
   * Deletes the records of a partition before `offset` (Kafka's DeleteRecords): apps call it for
   * repartition records every consumer has committed.
   */
  async deleteRecords({ topic, partition }: TopicPartition, offset: number): Promise<void> {
    const log = this.#topics.get(topic)?.partitions[partition];
    if (log && log.truncateBefore(offset).length > 0) this.#truncated(topic, partition, Math.min(offset, log.end));
  }

  #partitionLog(topic: string, partition: number, create: boolean): PartitionLog {
    let entry = this.#topics.get(topic);
    if (!entry && create) {
      this.createTopic({ name: topic, partitions: this.defaultPartitions });
      entry = this.#topics.get(topic);
    }
    const log = entry?.partitions[partition];
    if (!log) {
      throw new EddyError('TRANSPORT_FAILED', `no partition ${partition} in topic ${topic} (it has ${entry?.partitions.length ?? 0})`);
    }
    return log;
  }

  /** Every record of a topic in partition then offset order (tests and tools). */
  records(topic: string): IncomingRecord[] {
    return this.#topics.get(topic)?.partitions.flatMap((log) => log.records) ?? [];
  }

  async endOffset({ topic, partition }: TopicPartition): Promise<number> {
    return this.logEnd(topic, partition);
  }

  logEnd(topic: string, partition: number): number {
    return this.#topics.get(topic)?.partitions[partition]?.end ?? 0;
  }

  readSlice(topic: string, partition: number, from: number, max: number): IncomingRecord[] {
    return this.#topics.get(topic)?.partitions[partition]?.slice(from, max) ?? [];
  }

  /**
   * @internal Records of a partition from `from` on, at most `max`: from memory, or, where the
   * broker keeps older records on disk only (see `readCold`), from there.
   */
  readFrom(topic: string, partition: number, from: number, max: number): IncomingRecord[] | Promise<IncomingRecord[]> {
    return this.readCold(topic, partition, from, max) ?? this.readSlice(topic, partition, from, max);
  }

  /** Records before the first one held in memory, read from where the broker keeps its log; undefined when `from` is in memory (always, here). */
  protected readCold(topic: string, partition: number, from: number, max: number): Promise<IncomingRecord[]> | undefined {
    void topic;
    void partition;
    void from;
    void max;
    return undefined;
  }

  async *readPartition({ topic, partition }: TopicPartition, fromOffset: number): AsyncIterable<readonly IncomingRecord[]> {
    const end = this.logEnd(topic, partition);
    let offset = fromOffset;
    while (offset < end) {
      const batch = (await this.readFrom(topic, partition, offset, this.maxBatchSize)).filter((record) => record.offset < end);
      if (batch.length === 0) return;
      yield batch;
      offset = batch[batch.length - 1]!.offset + 1;
    }
  }

  async subscribe(groupId: string, topics: readonly string[], listener: ConsumerListener): Promise<TransportConsumer> {
    for (const topic of topics) this.#partitionLog(topic, 0, true);
    const group = this.#group(groupId);
    const member = new MemoryConsumer(this, group, topics, listener);
    await group.join(member);
    return member;
  }

  /**
   * Resolves when no member has records left to deliver and no delivery is running. A pipeline
   * that writes a topic it reads (`{ cycle: true }`) may never be idle; timers still run meanwhile.
   */
  async idle(): Promise<void> {
    for (;;) {
      const busy = [...this.#groups.values()].flatMap((group) => group.members).filter((member) => member.hasWork());
      if (busy.length === 0) return;
      await Promise.all(busy.map((member) => member.drain()));
      await yieldToEventLoop();
    }
  }

  #group(groupId: string): ConsumerGroup {
    let group = this.#groups.get(groupId);
    if (!group) this.#groups.set(groupId, (group = new ConsumerGroup(groupId, this.#groupBroker)));
    return group;
  }
}
