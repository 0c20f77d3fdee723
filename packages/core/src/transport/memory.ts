import { ConfigError, EddyError } from '../errors.js';
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

/** Options of the embedded broker. */
export interface MemoryTransportOptions {
  /** Partitions of a topic created implicitly (by a send or a subscription). Default 1. */
  defaultPartitions?: number;
  /** Records handed to a task per batch. Default 500. */
  maxBatchSize?: number;
}

const emptyHeaders: Headers = Object.freeze({});

interface Topic {
  readonly spec: TopicSpec;
  readonly partitions: IncomingRecord[][];
}

interface Group {
  readonly members: MemoryConsumer[];
  readonly committed: Map<string, number>;
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

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

  constructor(options: MemoryTransportOptions = {}) {
    const { defaultPartitions = 1, maxBatchSize = 500 } = options;
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
    this.#topics.set(spec.name, { spec, partitions: Array.from({ length: spec.partitions }, () => []) });
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
    let log: IncomingRecord[] | undefined;
    let logTopic = '';
    let logPartition = -1;
    for (const record of records) {
      // Batches mostly go to one partition: look the log up only when it changes.
      if (record.partition !== logPartition || record.topic !== logTopic) {
        log = this.#partitionLog(record.topic, record.partition, true);
        logTopic = record.topic;
        logPartition = record.partition;
      }
      const stored: IncomingRecord = {
        topic: record.topic,
        partition: record.partition,
        offset: log!.length,
        key: record.key,
        value: record.value,
        timestamp: record.timestamp,
        headers: record.headers ?? emptyHeaders,
        decoded: record.decoded,
      };
      log!.push(stored);
      written.push(stored);
    }
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

  #partitionLog(topic: string, partition: number, create: boolean): IncomingRecord[] {
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
    return this.#topics.get(topic)?.partitions.flat() ?? [];
  }

  async endOffset({ topic, partition }: TopicPartition): Promise<number> {
    return this.#topics.get(topic)?.partitions[partition]?.length ?? 0;
  }

  logEnd(topic: string, partition: number): number {
    return this.#topics.get(topic)?.partitions[partition]?.length ?? 0;
  }

  readSlice(topic: string, partition: number, from: number, max: number): IncomingRecord[] {
    return this.#topics.get(topic)?.partitions[partition]?.slice(from, from + max) ?? [];
  }

  async *readPartition({ topic, partition }: TopicPartition, fromOffset: number): AsyncIterable<readonly IncomingRecord[]> {
    const end = this.logEnd(topic, partition);
    for (let offset = fromOffset; offset < end; offset += this.maxBatchSize) {
      yield this.readSlice(topic, partition, offset, Math.min(this.maxBatchSize, end - offset));
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

  /** Resolves when no member has records left to deliver and no delivery is running. */
  async idle(): Promise<void> {
    for (;;) {
      const busy = [...this.#groups.values()].flatMap((group) => group.members).filter((member) => member.hasWork());
      if (busy.length === 0) return;
      await Promise.all(busy.map((member) => member.drain()));
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

  /** Delivers every available record, one partition batch at a time; one pass runs at a time. */
  drain(): Promise<void> {
    if (this.#draining) return this.#draining;
    this.#draining = this.#deliver().finally(() => {
      this.#draining = undefined;
    });
    return this.#draining;
  }

  async #deliver(): Promise<void> {
    let delivered = true;
    while (delivered && !this.#closed) {
      delivered = false;
      for (const entry of [...this.#positions.values()]) {
        if (this.#closed) return;
        const batch = this.broker.readSlice(entry.topic, entry.partition, entry.position, this.broker.maxBatchSize);
        if (batch.length === 0) continue;
        entry.position += batch.length;
        delivered = true;
        await this.listener.onRecords(batch);
      }
    }
  }

  hasPending({ topic, partition }: TopicPartition): boolean {
    const entry = this.#positions.get(tpKey(topic, partition));
    return entry !== undefined && entry.position < this.broker.logEnd(topic, partition);
  }

  lag({ topic, partition }: TopicPartition): number | undefined {
    const entry = this.#positions.get(tpKey(topic, partition));
    return entry === undefined ? undefined : this.broker.logEnd(topic, partition) - entry.position;
  }

  seek({ topic, partition, offset }: TopicPartitionOffset): void {
    const entry = this.#positions.get(tpKey(topic, partition));
    if (entry) entry.position = offset;
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
