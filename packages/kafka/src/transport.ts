import {
  ConfigError,
  systemClock,
  type ConsumerListener,
  type IncomingRecord,
  type TopicPartition,
  type TopicPartitionOffset,
  type TopicSpec,
  type Transport,
  type TransportConsumer,
  type TransportProducer,
} from '@eddy/core';
import { KafkaAdmin } from './admin.js';
import { Cluster } from './cluster.js';
import { transportError } from './errors.js';
import { commitTransactionalOffsets } from './group-offsets.js';
import { GroupMember } from './member.js';
import { resolveSettings, type KafkaSettings, type KafkaTransportOptions } from './options.js';
import { KafkaProducer } from './producer.js';
import { KafkaTransactionalProducer, type TransactionIdentity } from './transactional-producer.js';
import { readPartition } from './read-partition.js';
import { unknownLimits, type TopicLimits } from './topic-limits.js';

/** How long the limits read of a topic's configuration are trusted. */
const TOPIC_LIMITS_TTL_MS = 60_000;

/**
 * A transport on a Kafka cluster, through @platformatic/kafka's public API: consumer groups on
 * Kafka's consumer protocol (KIP-848: incremental rebalances, static membership), an idempotent
 * producer, transactional producers for exactly-once, internal topics created on start
 * (changelogs compacted), and changelog restore. Consumers read committed records only
 * (read_committed).
 *
 * Give each app its own transport: `close()` (which `app.stop()` calls) disconnects every client
 * the transport created. Clients connect lazily, and a closed transport connects again when used.
 *
 * @example
 * ```ts
 * import { createApp } from '@eddy/core';
 * import { kafkaTransport } from '@eddy/kafka';
 *
 * const app = createApp({ id: 'sensors', transport: kafkaTransport({ brokers: ['localhost:9092'] }) });
 * ```
 */
export function kafkaTransport(options: KafkaTransportOptions): KafkaTransport {
  return new KafkaTransport(options);
}

export class KafkaTransport implements Transport {
  readonly kind = 'kafka';
  /** Transactions: one transactional producer per task (see {@link KafkaTransactionalProducer}). */
  readonly exactlyOnce = true;
  /** A keyBy that moves records between partitions has its backlog fetched in step (fetch-loop.ts). */
  readonly stepsBacklogs = true;
  readonly defaultPartitions: number | undefined;
  readonly #settings: KafkaSettings;
  #admin: KafkaAdmin | undefined;
  /** For transactional offset commits of a group that has no member in this transport. */
  #cluster: Cluster | undefined;
  readonly #producers = new Set<KafkaProducer>();
  readonly #members = new Set<GroupMember>();
  /** What each topic accepts (see topic-limits.ts), read again now and then: a topic's configuration may change. */
  readonly #limits = new Map<string, { readonly limits: Promise<TopicLimits>; readonly until: number }>();

  /**
   * The limits of a topic its records are checked against before they are sent. Unknown (the
   * configuration could not be read) means nothing is refused before the broker says so.
   */
  readonly #limitsOf = (topic: string): Promise<TopicLimits> => {
    const now = systemClock.now();
    const cached = this.#limits.get(topic);
    if (cached && cached.until > now) return cached.limits;
    const limits = this.#adminClient()
      .topicLimits(topic)
      .catch((error: unknown) => {
        this.#settings.logger.debug({ component: 'eddy-kafka', topic, error: String(error) }, 'the configuration of a topic could not be read; its records are checked by the broker alone');
        return unknownLimits;
      });
    this.#limits.set(topic, { limits, until: now + TOPIC_LIMITS_TTL_MS });
    return limits;
  };

  /**
   * Commits a transaction's offsets of a group: as the group's member in this transport (the
   * coordinator fences commits of a member that lost its partitions), or, for a group with no
   * member here, as no member (which the coordinator takes only while the group has none).
   */
  readonly #commitTransactional = async (transaction: TransactionIdentity, groupId: string, offsets: readonly TopicPartitionOffset[]): Promise<void> => {
    const member = [...this.#members].find((candidate) => candidate.groupId === groupId);
    if (member) return member.commitTransactional(transaction, offsets);
    this.#cluster ??= new Cluster(this.#settings, 'offsets');
    try {
      await commitTransactionalOffsets(await this.#cluster.groupCoordinator(groupId), transaction, groupId, { memberId: '', epoch: -1, groupInstanceId: null }, offsets);
    } catch (error) {
      throw transportError(`committing offsets of group ${groupId} in transaction ${transaction.transactionalId}`, error);
    }
  };

  constructor(options: KafkaTransportOptions) {
    this.#settings = resolveSettings(options);
    this.defaultPartitions = this.#settings.defaultPartitions;
  }

  /**
   * Connects to the cluster (the first call of any other method does too).
   * @example
   * await transport.connect();
   */
  async connect(): Promise<void> {
    await this.#adminClient().topics();
  }

  /**
   * Creates the topics that do not exist, with the given partitions, `replicationFactor`
   * replicas (default: the broker's `default.replication.factor`) and, for changelogs,
   * `cleanup.policy=compact`; waits until they have leaders. Existing topics are left as they are.
   * @example
   * await transport.ensureTopics([{ name: 'app-counts-changelog', partitions: 4, compacted: true }]);
   */
  async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
    await this.#adminClient().ensureTopics(specs);
  }

  /**
   * The number of partitions of a topic, or undefined if it does not exist.
   * @example
   * const partitions = (await transport.partitionCount('readings')) ?? 0;
   */
  partitionCount(topic: string): Promise<number | undefined> {
    return this.#adminClient().partitionCount(topic);
  }

  /**
   * An idempotent producer; `send` resolves with the offset of the last record per partition.
   * With a `transactionalId`, a transactional producer (exactly-once): created once the id is
   * registered with its coordinator, which fences the id's previous producer.
   * @example
   * const producer = await transport.createProducer();
   * await producer.send([{ topic: 'readings', partition: 0, key: null, value: bytes, timestamp: 0 }]);
   */
  async createProducer(options: { transactionalId?: string } = {}): Promise<TransportProducer> {
    const { transactionalId } = options;
    const closed = (producer: KafkaProducer) => this.#producers.delete(producer);
    let producer: KafkaProducer;
    if (transactionalId !== undefined) {
      if (typeof transactionalId !== 'string' || transactionalId === '') throw new ConfigError(`createProducer: invalid transactionalId ${JSON.stringify(transactionalId)}`);
      producer = await KafkaTransactionalProducer.connectTransactional(this.#settings, transactionalId, closed, this.#limitsOf, this.#commitTransactional);
    } else {
      producer = await KafkaProducer.connect(this.#settings, closed, this.#limitsOf);
    }
    this.#producers.add(producer);
    return producer;
  }

  /**
   * Joins consumer group `groupId` reading `topics`; resolves once this member has its first
   * assignment and the listener has taken it.
   * @example
   * const consumer = await transport.subscribe('sensors', ['readings'], listener);
   */
  async subscribe(groupId: string, topics: readonly string[], listener: ConsumerListener): Promise<TransportConsumer> {
    if (typeof groupId !== 'string' || groupId === '') throw new ConfigError(`subscribe: invalid group id ${JSON.stringify(groupId)}`);
    if (!Array.isArray(topics) || topics.length === 0) throw new ConfigError(`subscribe ${groupId}: expected at least one topic, got ${JSON.stringify(topics)}`);
    await this.#configureGroup(groupId);
    const member = new GroupMember(this.#settings, groupId, [...new Set(topics)], listener, (closed) => this.#members.delete(closed));
    this.#members.add(member);
    await member.start();
    return member;
  }

  /**
   * The offset after the last record of a partition (its high watermark); 0 for a partition
   * that does not exist, like the embedded broker.
   * @example
   * const end = await transport.endOffset({ topic: 'readings', partition: 0 });
   */
  endOffset(partition: TopicPartition): Promise<number> {
    return this.#adminClient().endOffset(partition);
  }

  /**
   * Deletes a partition's records before `offset` (Kafka's DeleteRecords); the app calls it for
   * repartition records once they are committed, which keeps those topics small although their
   * retention is unlimited.
   * @example
   * await transport.deleteRecords({ topic: 'app-counts-repartition', partition: 0 }, 1200);
   */
  deleteRecords(partition: TopicPartition, offset: number): Promise<void> {
    return this.#adminClient().deleteRecords(partition, offset);
  }

  /**
   * Reads a partition from `fromOffset` up to its end at the time of the call, in batches, read
   * committed (see read-partition.ts).
   * @example
   * for await (const batch of transport.readPartition({ topic: 'app-counts-changelog', partition: 0 }, 0)) apply(batch);
   */
  readPartition(partition: TopicPartition, fromOffset: number): AsyncIterable<readonly IncomingRecord[]> {
    return readPartition(this.#settings, partition, fromOffset);
  }

  /**
   * Leaves the groups (each member revokes its partitions first), flushes and disconnects the
   * producers, and disconnects the other clients.
   * @example
   * await transport.close();
   */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#members].map((member) => member.close()));
    await Promise.allSettled([...this.#producers].map((producer) => producer.close()));
    const admin = this.#admin;
    const cluster = this.#cluster;
    this.#admin = undefined;
    this.#cluster = undefined;
    await Promise.allSettled([admin?.close(), cluster?.close()]);
  }

  /** The group timeouts the options ask for; a refusal (bounds, permissions) leaves the group's own and says so. */
  async #configureGroup(groupId: string): Promise<void> {
    const configs = this.#settings.groupConfigs;
    if (Object.keys(configs).length === 0) return;
    try {
      await this.#adminClient().configureGroup(groupId, configs);
    } catch (error) {
      this.#settings.logger.warn({ component: 'eddy-kafka', group: groupId, configs, error: String(error) }, 'the group kept its own session timeout and heartbeat interval: the broker refused the ones asked for');
    }
  }

  #adminClient(): KafkaAdmin {
    return (this.#admin ??= new KafkaAdmin(this.#settings));
  }
}
