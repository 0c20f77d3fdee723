import { systemClock, type Clock } from '../clock.js';
import { toMs, type Duration } from '../duration.js';
import { ConfigError, EddyError } from '../errors.js';
import { PartitionLog, type Compaction, type Retention } from './partition-log.js';
import {
  partitionKey,
  type CaughtUp,
  type ConsumerListener,
  type Headers,
  type IncomingRecord,
  type OutgoingRecord,
  type TopicPartition,
  type TopicPartitionOffset,
  type TopicSpec,
  type Transport,
  type TransportConsumer,
  type TransportProducer,
} from './types.js';

/** Options of the embedded broker. */
export interface MemoryTransportOptions {
  /** Partitions of a topic created implicitly (by a send or a subscription). Default 1. */
  defaultPartitions?: number;
  /** Records handed to a task per batch. Default 500. */
  maxBatchSize?: number;
  /**
   * What each partition of an ordinary topic keeps; older records are dropped, as Kafka's
   * retention does. Default: everything. Repartition topics are trimmed as their records are
   * committed and changelog topics are compacted, whatever this says.
   */
  retention?: RetentionOptions;
  /** The same as `retention.records` (kept for older code). */
  retentionRecords?: number;
  /** How long a compacted topic keeps a tombstone (a delete) after it was written. Default `'1d'`, as Kafka's `delete.retention.ms`. */
  tombstoneRetention?: Duration;
  /** The clock that retention by age reads; the TestDriver gives its virtual one. Default: the system clock. */
  clock?: Clock;
}

/** What each partition of an ordinary topic keeps (see {@link MemoryTransportOptions.retention}); unset limits do not apply. */
export interface RetentionOptions {
  /** Records kept. */
  readonly records?: number;
  /** Bytes of keys, values and headers kept. */
  readonly bytes?: number;
  /** How long a record is kept after it was written, e.g. `'7d'`. */
  readonly age?: Duration;
}

/** Checks retention options once, at the API edge, into milliseconds. */
function resolveRetention(options: RetentionOptions | undefined, what: string): Retention {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw new ConfigError(`${what}: retention must be an object, got ${String(options)}`);
  const count = (value: number | undefined, name: string) => {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new ConfigError(`${what}: retention.${name} must be a positive integer, got ${String(value)}`);
    return value;
  };
  return {
    records: count(options.records, 'records'),
    bytes: count(options.bytes, 'bytes'),
    ms: options.age === undefined ? undefined : toMs(options.age, `${what}: retention.age`),
  };
}

const emptyHeaders: Headers = Object.freeze({});
const atTheEnd: CaughtUp = Object.freeze({ forMs: Infinity, confirmedAgoMs: 0 });

interface Topic {
  readonly spec: TopicSpec;
  readonly partitions: PartitionLog[];
}

interface Group {
  readonly id: string;
  readonly members: MemoryConsumer[];
  readonly committed: Map<string, number>;
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
  /**
   * The broker lives and dies with the process, so no failure can separate a task's outputs from
   * its committed offsets: exactly-once holds here by construction.
   */
  readonly exactlyOnce: boolean = true;
  readonly #topics = new Map<string, Topic>();
  readonly #groups = new Map<string, Group>();
  readonly defaultPartitions: number;
  readonly maxBatchSize: number;
  /** What each partition of an ordinary topic keeps (resolved from the options once). */
  protected readonly retention: Retention;
  readonly #compaction: Compaction;
  /** Per partition log, the next offset to give a record (ahead of `end` while records are being written). */
  readonly #nextOffset = new Map<PartitionLog, number>();
  protected readonly clock: Clock;

  constructor(options: MemoryTransportOptions = {}, what = 'memoryTransport') {
    const { defaultPartitions = 1, maxBatchSize = 500, retentionRecords } = options;
    if (retentionRecords !== undefined && (!Number.isInteger(retentionRecords) || retentionRecords < 1)) {
      throw new ConfigError(`${what}: retentionRecords must be a positive integer, got ${String(retentionRecords)}`);
    }
    this.retention = { ...resolveRetention(options.retention, what), ...(retentionRecords === undefined ? {} : { records: retentionRecords }) };
    this.#compaction = { tombstoneMs: toMs(options.tombstoneRetention ?? '1d', `${what}: tombstoneRetention`) };
    this.clock = options.clock ?? systemClock;
    if (!Number.isInteger(defaultPartitions) || defaultPartitions < 1) {
      throw new ConfigError(`${what}: defaultPartitions must be a positive integer, got ${String(defaultPartitions)}`);
    }
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
      throw new ConfigError(`${what}: maxBatchSize must be a positive integer, got ${String(maxBatchSize)}`);
    }
    this.defaultPartitions = defaultPartitions;
    this.maxBatchSize = maxBatchSize;
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
    log.compactedSize = log.records.length;
    this.#nextOffset.set(log, log.end);
    // What expired while the broker was down goes now, not with the next record.
    this.#retain(log, this.clock.now());
  }

  /** Puts a group's committed offset back (a broker loading its log). */
  protected restoreCommitted(groupId: string, topic: string, partition: number, offset: number): void {
    this.#group(groupId).committed.set(partitionKey(topic, partition), offset);
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
      this.logTruncated(first.topic, first.partition, log.offsets[0] ?? log.end);
    }
  }

  /**
   * Deletes the records of a partition before `offset` (Kafka's DeleteRecords): apps call it for
   * repartition records every consumer has committed.
   */
  async deleteRecords({ topic, partition }: TopicPartition, offset: number): Promise<void> {
    const log = this.#topics.get(topic)?.partitions[partition];
    if (log && log.truncateBefore(offset).length > 0) this.logTruncated(topic, partition, Math.min(offset, log.end));
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
    group.members.push(member);
    await this.#rebalance(group);
    return member;
  }

  /** Removes a member and hands its partitions to the others. */
  async leave(group: Group, member: MemoryConsumer): Promise<void> {
    const index = group.members.indexOf(member);
    if (index < 0) return;
    await member.revokeAll();
    group.members.splice(index, 1);
    await this.#rebalance(group);
  }

  /** Partition p of every topic goes to member p mod n, so co-partitioned topics stay together. */
  async #rebalance(group: Group): Promise<void> {
    const members = group.members;
    const wanted = members.map(() => [] as TopicPartition[]);
    members.forEach((member, index) => {
      for (const topic of member.topics) {
        const count = this.#topics.get(topic)?.partitions.length ?? 0;
        for (let partition = 0; partition < count; partition++) {
          if (partition % members.length === index) wanted[index]!.push({ topic, partition });
        }
      }
    });
    await Promise.all(members.map((member, index) => member.revokeExcept(wanted[index]!)));
    await Promise.all(members.map((member, index) => member.assign(wanted[index]!)));
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

  committedOffset(group: Group, topic: string, partition: number): number | undefined {
    return group.committed.get(partitionKey(topic, partition));
  }

  /** Commits a group's offsets (kept durably first, where the broker keeps its log on disk); they never move backwards. */
  async commitOffsets(group: Group, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const forward = offsets.filter(({ topic, partition, offset }) => (group.committed.get(partitionKey(topic, partition)) ?? -1) < offset);
    if (forward.length === 0) return;
    await this.writeCommitted(group.id, forward);
    for (const { topic, partition, offset } of forward) {
      const key = partitionKey(topic, partition);
      if ((group.committed.get(key) ?? -1) < offset) group.committed.set(key, offset);
    }
  }

  #group(groupId: string): Group {
    let group = this.#groups.get(groupId);
    if (!group) this.#groups.set(groupId, (group = { id: groupId, members: [], committed: new Map() }));
    return group;
  }
}

/** One member of a consumer group on the embedded broker. */
class MemoryConsumer implements TransportConsumer {
  readonly #positions = new Map<string, { topic: string; partition: number; position: number }>();
  #draining: Promise<void> | undefined;
  #scheduled = false;
  #closed = false;

  constructor(
    private readonly broker: MemoryTransport,
    private readonly group: Group,
    readonly topics: readonly string[],
    private readonly listener: ConsumerListener,
  ) {}

  async assign(partitions: readonly TopicPartition[]): Promise<void> {
    const added = partitions.filter((tp) => !this.#positions.has(partitionKey(tp.topic, tp.partition)));
    if (added.length === 0) return;
    for (const tp of added) {
      const position = this.broker.committedOffset(this.group, tp.topic, tp.partition) ?? 0;
      this.#positions.set(partitionKey(tp.topic, tp.partition), { ...tp, position });
    }
    const positions = await this.listener.onAssign(added);
    for (const position of positions ?? []) {
      const entry = this.#positions.get(partitionKey(position.topic, position.partition));
      if (entry && entry.position < position.offset) entry.position = position.offset;
    }
    this.wake();
  }

  async revokeExcept(keep: readonly TopicPartition[]): Promise<void> {
    const keepKeys = new Set(keep.map((tp) => partitionKey(tp.topic, tp.partition)));
    const revoked = [...this.#positions.entries()].filter(([key]) => !keepKeys.has(key));
    if (revoked.length === 0) return;
    await this.#draining;
    for (const [key] of revoked) this.#positions.delete(key);
    await this.listener.onRevoke(revoked.map(([, { topic, partition }]) => ({ topic, partition })));
  }

  revokeAll(): Promise<void> {
    return this.revokeExcept([]);
  }

  hasWork(): boolean {
    if (this.#draining) return true;
    if (this.#closed) return false;
    for (const entry of this.#positions.values()) {
      if (entry.position < this.broker.logEnd(entry.topic, entry.partition)) return true;
    }
    return false;
  }

  /** Schedules a delivery pass off the current call stack, so producers never re-enter consumers. */
  wake(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.drain();
    });
  }

  /**
   * Runs one delivery pass: one batch from each assigned partition; one pass runs at a time. A pass
   * that delivered something schedules the next with {@link wake}, so that the event loop turns
   * between passes: a pipeline feeding its own input would otherwise run in microtasks forever,
   * and no timer or I/O callback would ever run.
   */
  drain(): Promise<void> {
    if (this.#draining) return this.#draining;
    this.#draining = this.#deliverPass().then(
      (delivered) => {
        this.#draining = undefined;
        if (delivered) this.wake();
      },
      (error: unknown) => {
        this.#draining = undefined;
        throw error;
      },
    );
    return this.#draining;
  }

  /** Whether the pass delivered any record. */
  async #deliverPass(): Promise<boolean> {
    let delivered = false;
    for (const entry of [...this.#positions.values()]) {
      if (this.#closed) return false;
      const from = entry.position;
      const slice = this.broker.readFrom(entry.topic, entry.partition, from, this.broker.maxBatchSize);
      const batch = Array.isArray(slice) ? slice : await slice;
      // Read from disk: the partition may have moved (a seek) or gone (a revoke) meanwhile.
      if (batch.length === 0 || entry.position !== from || this.#positions.get(partitionKey(entry.topic, entry.partition)) !== entry) continue;
      // Offsets may have gaps (compaction, deleted records): continue after the last one read.
      entry.position = batch[batch.length - 1]!.offset + 1;
      delivered = true;
      await this.listener.onRecords(batch);
    }
    return delivered;
  }

  /** In process, the log answers at once and for as long as nothing new is appended. */
  caughtUp({ topic, partition }: TopicPartition): CaughtUp | undefined {
    const entry = this.#positions.get(partitionKey(topic, partition));
    if (entry === undefined || entry.position < this.broker.logEnd(topic, partition)) return undefined;
    return atTheEnd;
  }

  lag({ topic, partition }: TopicPartition): number | undefined {
    const entry = this.#positions.get(partitionKey(topic, partition));
    return entry === undefined ? undefined : this.broker.logEnd(topic, partition) - entry.position;
  }

  seek({ topic, partition, offset }: TopicPartitionOffset): void {
    const entry = this.#positions.get(partitionKey(topic, partition));
    if (!entry) return;
    entry.position = offset;
    // Moved back (a task started again from its last commit): what lies ahead is delivered again.
    this.wake();
  }

  commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    return this.broker.commitOffsets(this.group, offsets);
  }

  async committed({ topic, partition }: TopicPartition): Promise<number | undefined> {
    return this.broker.committedOffset(this.group, topic, partition);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.broker.leave(this.group, this);
    this.#closed = true;
  }
}
