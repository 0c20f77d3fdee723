import { Buffer } from 'node:buffer';
import { ConfigError, EddyError } from '../errors.js';
import type {
  CaughtUp,
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

/** Options of the embedded broker. */
export interface MemoryTransportOptions {
  /** Partitions of a topic created implicitly (by a send or a subscription). Default 1. */
  defaultPartitions?: number;
  /** Records handed to a task per batch. Default 500. */
  maxBatchSize?: number;
  /**
   * Records kept per partition of ordinary topics; older ones are dropped, as Kafka's retention
   * does. Default: unbounded. Repartition topics are trimmed as their records are committed and
   * changelog topics are compacted, whatever this says.
   */
  retentionRecords?: number;
}

const emptyHeaders: Headers = Object.freeze({});
const atTheEnd: CaughtUp = Object.freeze({ forMs: Infinity, confirmedAgoMs: 0 });

/**
 * One partition's log. Offsets only grow; records may leave the front (retention, deleted
 * records of repartition topics) or the middle (compaction), so lookups by offset search.
 */
class PartitionLog {
  /** Offsets of the records held, ascending (dense unless compacted). */
  readonly offsets: number[] = [];
  readonly records: IncomingRecord[] = [];
  /** The offset the next record gets. */
  end = 0;
  /** Records held after the last compaction, to pace the next one. */
  compactedSize = 0;

  push(record: IncomingRecord): void {
    this.offsets.push(record.offset);
    this.records.push(record);
    this.end = record.offset + 1;
  }

  /** The index of the first record at or after `offset`. */
  indexOf(offset: number): number {
    const offsets = this.offsets;
    const first = offsets[0];
    // Without compaction the offsets are dense: index arithmetic, no search.
    if (first === undefined || offset <= first) return 0;
    const guess = offset - first;
    if (guess < offsets.length && offsets[guess] === offset) return guess;
    let low = 0;
    let high = offsets.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (offsets[middle]! < offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  slice(from: number, max: number): IncomingRecord[] {
    const start = this.indexOf(from);
    return this.records.slice(start, start + max);
  }

  /** Drops records before `offset`. */
  truncateBefore(offset: number): void {
    const count = this.indexOf(offset);
    if (count === 0) return;
    this.offsets.splice(0, count);
    this.records.splice(0, count);
  }

  /** Keeps only the latest record of each key (tombstones included), in offset order. */
  compact(): void {
    const latest = new Map<string, number>();
    this.records.forEach((record, index) => latest.set(record.key ? Buffer.from(record.key).toString('latin1') : `#${index}`, index));
    const keep = [...latest.values()].sort((a, b) => a - b);
    const records = keep.map((index) => this.records[index]!);
    this.records.length = 0;
    this.offsets.length = 0;
    for (const record of records) {
      this.records.push(record);
      this.offsets.push(record.offset);
    }
    this.compactedSize = records.length;
  }
}

interface Topic {
  readonly spec: TopicSpec;
  readonly partitions: PartitionLog[];
}

interface Group {
  readonly members: MemoryConsumer[];
  readonly committed: Map<string, number>;
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

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
  readonly kind = 'memory';
  readonly keepsValues = true;
  /**
   * The broker lives and dies with the process, so no failure can separate a task's outputs from
   * its committed offsets: exactly-once holds here by construction.
   */
  readonly exactlyOnce = true;
  readonly #topics = new Map<string, Topic>();
  readonly #groups = new Map<string, Group>();
  readonly defaultPartitions: number;
  readonly maxBatchSize: number;
  readonly #retentionRecords: number | undefined;

  constructor(options: MemoryTransportOptions = {}) {
    const { defaultPartitions = 1, maxBatchSize = 500, retentionRecords } = options;
    if (retentionRecords !== undefined && (!Number.isInteger(retentionRecords) || retentionRecords < 1)) {
      throw new ConfigError(`memoryTransport: retentionRecords must be a positive integer, got ${String(retentionRecords)}`);
    }
    this.#retentionRecords = retentionRecords;
    if (!Number.isInteger(defaultPartitions) || defaultPartitions < 1) {
      throw new ConfigError(`memoryTransport: defaultPartitions must be a positive integer, got ${String(defaultPartitions)}`);
    }
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
      throw new ConfigError(`memoryTransport: maxBatchSize must be a positive integer, got ${String(maxBatchSize)}`);
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
    this.#topics.set(spec.name, { spec, partitions: Array.from({ length: spec.partitions }, () => new PartitionLog()) });
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
      send: async (records) => this.append(records),
      close: async () => {},
    };
  }

  /** Appends records and wakes the consumers of the partitions written. */
  append(records: readonly OutgoingRecord[]): TopicPartitionOffset[] {
    const written: IncomingRecord[] = [];
    const touched = new Set<PartitionLog>();
    let log: PartitionLog | undefined;
    let logTopic = '';
    let logPartition = -1;
    for (const record of records) {
      // Batches mostly go to one partition: look the log up only when it changes.
      if (record.partition !== logPartition || record.topic !== logTopic) {
        log = this.#partitionLog(record.topic, record.partition, true);
        touched.add(log);
        logTopic = record.topic;
        logPartition = record.partition;
      }
      const stored: IncomingRecord = {
        topic: record.topic,
        partition: record.partition,
        offset: log!.end,
        key: record.key,
        value: record.value,
        timestamp: record.timestamp,
        headers: record.headers ?? emptyHeaders,
        decoded: record.decoded,
      };
      log!.push(stored);
      written.push(stored);
    }
    for (const written of touched) this.#retain(written);
    for (const group of this.#groups.values()) {
      for (const member of group.members) member.wake();
    }
    // The last offset written per partition; later runs of a partition overwrite earlier ones.
    const last = new Map<string, TopicPartitionOffset>();
    for (let index = 0; index < written.length; index++) {
      const current = written[index]!;
      const next = written[index + 1];
      if (next && next.partition === current.partition && next.topic === current.topic) continue;
      last.set(tpKey(current.topic, current.partition), { topic: current.topic, partition: current.partition, offset: current.offset });
    }
    return [...last.values()];
  }

  /** Compaction for compacted topics, the record limit for ordinary ones. */
  #retain(log: PartitionLog): void {
    const first = log.records[0];
    if (!first) return;
    const spec = this.#topics.get(first.topic)!.spec;
    if (spec.compacted) {
      if (log.records.length > Math.max(1_000, 2 * log.compactedSize)) log.compact();
    } else if (this.#retentionRecords !== undefined && log.records.length > this.#retentionRecords) {
      log.truncateBefore(log.end - this.#retentionRecords);
    }
  }

  /**
   * Deletes the records of a partition before `offset` (Kafka's DeleteRecords): apps call it for
   * repartition records every consumer has committed.
   */
  async deleteRecords({ topic, partition }: TopicPartition, offset: number): Promise<void> {
    this.#topics.get(topic)?.partitions[partition]?.truncateBefore(offset);
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

  async *readPartition({ topic, partition }: TopicPartition, fromOffset: number): AsyncIterable<readonly IncomingRecord[]> {
    const end = this.logEnd(topic, partition);
    let offset = fromOffset;
    while (offset < end) {
      const batch = this.readSlice(topic, partition, offset, this.maxBatchSize).filter((record) => record.offset < end);
      if (batch.length === 0) return;
      yield batch;
      offset = batch[batch.length - 1]!.offset + 1;
    }
  }

  async subscribe(groupId: string, topics: readonly string[], listener: ConsumerListener): Promise<TransportConsumer> {
    for (const topic of topics) this.#partitionLog(topic, 0, true);
    let group = this.#groups.get(groupId);
    if (!group) {
      group = { members: [], committed: new Map() };
      this.#groups.set(groupId, group);
    }
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
    return group.committed.get(tpKey(topic, partition));
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
    const added = partitions.filter((tp) => !this.#positions.has(tpKey(tp.topic, tp.partition)));
    if (added.length === 0) return;
    for (const tp of added) {
      const position = this.broker.committedOffset(this.group, tp.topic, tp.partition) ?? 0;
      this.#positions.set(tpKey(tp.topic, tp.partition), { ...tp, position });
    }
    const positions = await this.listener.onAssign(added);
    for (const position of positions ?? []) {
      const entry = this.#positions.get(tpKey(position.topic, position.partition));
      if (entry && entry.position < position.offset) entry.position = position.offset;
    }
    this.wake();
  }

  async revokeExcept(keep: readonly TopicPartition[]): Promise<void> {
    const keepKeys = new Set(keep.map((tp) => tpKey(tp.topic, tp.partition)));
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
      const batch = this.broker.readSlice(entry.topic, entry.partition, entry.position, this.broker.maxBatchSize);
      if (batch.length === 0) continue;
      // Offsets may have gaps (compaction, deleted records): continue after the last one read.
      entry.position = batch[batch.length - 1]!.offset + 1;
      delivered = true;
      await this.listener.onRecords(batch);
    }
    return delivered;
  }

  /** In process, the log answers at once and for as long as nothing new is appended. */
  caughtUp({ topic, partition }: TopicPartition): CaughtUp | undefined {
    const entry = this.#positions.get(tpKey(topic, partition));
    if (entry === undefined || entry.position < this.broker.logEnd(topic, partition)) return undefined;
    return atTheEnd;
  }

  lag({ topic, partition }: TopicPartition): number | undefined {
    const entry = this.#positions.get(tpKey(topic, partition));
    return entry === undefined ? undefined : this.broker.logEnd(topic, partition) - entry.position;
  }

  seek({ topic, partition, offset }: TopicPartitionOffset): void {
    const entry = this.#positions.get(tpKey(topic, partition));
    if (!entry) return;
    entry.position = offset;
    // Moved back (a task started again from its last commit): what lies ahead is delivered again.
    this.wake();
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    for (const { topic, partition, offset } of offsets) {
      const key = tpKey(topic, partition);
      // Committed offsets never move backwards.
      if ((this.group.committed.get(key) ?? -1) < offset) this.group.committed.set(key, offset);
    }
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
