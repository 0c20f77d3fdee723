// First: kafkajs's producer and fetch code must load after these fixes (see producer-fixes.ts, fetch-fixes.ts).
import { producerFixesInstalled } from './producer-fixes.js';
import { fetchFixInstalled } from './fetch-fixes.js';
import {
  ConfigError,
  EddyError,
  systemClock,
  type ConsumerListener,
  type IncomingRecord,
  type TopicPartition,
  type TopicSpec,
  type Transport,
  type TransportConsumer,
  type TransportProducer,
} from '@eddy/core';
import kafkajs from 'kafkajs';
import type { Admin, Kafka } from 'kafkajs';
import { isStaleMetadata, transportError } from './errors.js';
import { KafkaGroupMember } from './group-member.js';
import { GroupMember } from './member.js';
import { kafkaLogCreator, kafkaLogLevel } from './logging.js';
import { resolveSettings, type KafkaSettings, type KafkaTransportOptions } from './options.js';
import { KafkaProducer, KafkaTransactionalProducer } from './producer.js';
import { readPartition } from './read-partition.js';
import { installReadCommittedFix } from './read-committed.js';
import { readTopicLimits, unknownLimits, type TopicLimits } from './topic-limits.js';
import { brokerReplicationFactor, createMissingTopics, uniqueSpecs } from './topics.js';

/** How long the limits read of a topic's configuration are trusted. */
const TOPIC_LIMITS_TTL_MS = 60_000;

// kafkajs's read_committed consumers deliver records of some aborted transactions; see read-committed.ts.
installReadCommittedFix();

/**
 * A transport on a Kafka cluster, through kafkajs: consumer groups with revoke-before-rejoin
 * rebalances, an idempotent producer, transactional producers for exactly-once, internal topics
 * created on start (changelogs compacted), and changelog restore. Consumers read committed
 * records only (read_committed).
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
  readonly defaultPartitions: number | undefined;
  readonly #settings: KafkaSettings;
  readonly #kafka: Kafka;
  #admin: Promise<Admin> | undefined;
  /** Admin clients replaced after stale metadata, until they disconnect. */
  readonly #retiredAdmins = new Set<Promise<Admin>>();
  #replicationFactor: Promise<number> | undefined;
  readonly #producers = new Set<KafkaProducer>();
  readonly #members = new Set<KafkaGroupMember | GroupMember>();
  /** Topics known to exist (topics are never deleted under a running app). */
  readonly #knownTopics = new Set<string>();
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
    const limits = this.#withAdmin((admin) => readTopicLimits(admin, topic)).catch((error: unknown) => {
      this.#settings.logger.debug({ component: 'eddy-kafka', topic, error: String(error) }, 'the configuration of a topic could not be read; its records are checked by the broker alone');
      return unknownLimits;
    });
    this.#limits.set(topic, { limits, until: now + TOPIC_LIMITS_TTL_MS });
    return limits;
  };

  constructor(options: KafkaTransportOptions) {
    this.#settings = resolveSettings(options);
    this.defaultPartitions = this.#settings.defaultPartitions;
    const { brokers, clientId, ssl, sasl, retry, logLevel, logger } = this.#settings;
    this.#kafka = new kafkajs.Kafka({ brokers, clientId, ssl, sasl, retry, logLevel: kafkaLogLevel[logLevel], logCreator: kafkaLogCreator(logger) });
  }

  /**
   * Connects the admin client (the first call of any other method does too).
   * @example
   * await transport.connect();
   */
  async connect(): Promise<void> {
    if (!producerFixesInstalled || !fetchFixInstalled) {
      this.#settings.logger.warn(
        { component: 'eddy-kafka', producerFixesInstalled, fetchFixInstalled },
        'kafkajs was loaded before @eddy/kafka, so its speed fixes could not apply (import @eddy/kafka first)',
      );
    }
    await this.#adminClient();
  }

  /**
   * Creates the topics that do not exist, with the given partitions, `replicationFactor`
   * replicas and, for changelogs, `cleanup.policy=compact`; waits until they have leaders.
   * Existing topics are left as they are.
   * @example
   * await transport.ensureTopics([{ name: 'app-counts-changelog', partitions: 4, compacted: true }]);
   */
  async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
    const unique = uniqueSpecs(specs);
    if (unique.length === 0) return;
    await this.#withAdmin(async (admin) => {
      const existing = await this.#listTopics(admin);
      await createMissingTopics(admin, unique, existing, () => (this.#replicationFactor ??= this.#chooseReplicationFactor(admin)));
    });
    for (const spec of unique) this.#knownTopics.add(spec.name);
  }

  /**
   * The number of partitions of a topic, or undefined if it does not exist.
   * @example
   * const partitions = (await transport.partitionCount('readings')) ?? 0;
   */
  async partitionCount(topic: string): Promise<number | undefined> {
    return this.#withAdmin(async (admin) => {
      if (!(await this.#exists(admin, topic))) return undefined;
      try {
        const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
        return metadata.topics.find((entry) => entry.name === topic)?.partitions.length;
      } catch (error) {
        throw transportError(`reading the metadata of ${topic}`, error);
      }
    });
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
    if (transactionalId !== undefined) {
      if (typeof transactionalId !== 'string' || transactionalId === '') throw new ConfigError(`createProducer: invalid transactionalId ${JSON.stringify(transactionalId)}`);
      const producer = await KafkaTransactionalProducer.connectTransactional(this.#kafka, this.#settings, transactionalId, (closed) => this.#producers.delete(closed), this.#limitsOf);
      this.#producers.add(producer);
      return producer;
    }
    const producer = await KafkaProducer.connect(this.#kafka, this.#settings, (closed) => this.#producers.delete(closed), this.#limitsOf);
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
    const unique = [...new Set(topics)];
    const closed = (member: KafkaGroupMember | GroupMember) => this.#members.delete(member);
    const member =
      this.#settings.client === 'platformatic'
        ? new GroupMember(this.#settings, groupId, unique, listener, closed)
        : new KafkaGroupMember({ kafka: this.#kafka, settings: this.#settings, withAdmin: (operation) => this.#withAdmin(operation), closed }, groupId, unique, listener);
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
  async endOffset({ topic, partition }: TopicPartition): Promise<number> {
    return this.#withAdmin(async (admin) => {
      if (!(await this.#exists(admin, topic))) return 0;
      try {
        const offsets = await admin.fetchTopicOffsets(topic);
        const high = offsets.find((entry) => entry.partition === partition)?.high;
        return high === undefined ? 0 : Number(high);
      } catch (error) {
        throw transportError(`reading the end offset of ${topic}[${partition}]`, error);
      }
    });
  }

  /**
   * Deletes a partition's records before `offset` (Kafka's DeleteRecords); the app calls it for
   * repartition records once they are committed, which keeps those topics small although their
   * retention is unlimited.
   * @example
   * await transport.deleteRecords({ topic: 'app-counts-repartition', partition: 0 }, 1200);
   */
  async deleteRecords({ topic, partition }: TopicPartition, offset: number): Promise<void> {
    await this.#withAdmin(async (admin) => {
      try {
        await admin.deleteTopicRecords({ topic, partitions: [{ partition, offset: String(offset) }] });
      } catch (error) {
        throw transportError(`deleting records of ${topic}[${partition}] before ${offset}`, error);
      }
    });
  }

  /**
   * Reads a partition from `fromOffset` up to its end offset at the time of the call, in batches
   * (see `readPartition` in read-partition.ts for how, without manual assignment).
   * @example
   * for await (const batch of transport.readPartition({ topic: 'app-counts-changelog', partition: 0 }, 0)) apply(batch);
   */
  readPartition(partition: TopicPartition, fromOffset: number): AsyncIterable<readonly IncomingRecord[]> {
    return readPartition(
      { kafka: this.#kafka, settings: this.#settings, withAdmin: (operation) => this.#withAdmin(operation), endOffset: (target) => this.endOffset(target) },
      partition,
      fromOffset,
    );
  }

  /**
   * Leaves the groups (each member revokes its partitions first), flushes and disconnects the
   * producers, and disconnects the admin client.
   * @example
   * await transport.close();
   */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#members].map((member) => member.close()));
    await Promise.allSettled([...this.#producers].map((producer) => producer.close()));
    const admins = [...this.#retiredAdmins, ...(this.#admin ? [this.#admin] : [])];
    this.#admin = undefined;
    this.#retiredAdmins.clear();
    this.#replicationFactor = undefined;
    await Promise.allSettled(admins.map((admin) => admin.then((client) => client.disconnect())));
  }

  #adminClient(): Promise<Admin> {
    this.#admin ??= (async () => {
      const admin = this.#kafka.admin({ retry: this.#settings.retry });
      try {
        await admin.connect();
      } catch (error) {
        this.#admin = undefined;
        throw transportError(`connecting to ${this.#settings.brokers.join(',')}`, error);
      }
      return admin;
    })();
    return this.#admin;
  }

  /**
   * Runs an admin operation, again on a fresh admin client (a few times, backing off) when the
   * cluster's metadata has moved under it: kafkajs's admin refreshes its metadata only every few
   * minutes, so a new leader (also right after a topic is created) answers "not the leader"
   * until then, and a topic it once looked up and that was deleted since fails most requests.
   */
  async #withAdmin<T>(operation: (admin: Admin) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const admin = await this.#adminClient();
      try {
        return await operation(admin);
      } catch (error) {
        if (!isStaleMetadata(error) || attempt >= 5) throw error;
        this.#knownTopics.clear();
        this.#retireAdmin();
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      }
    }
  }

  /** Replaces the admin client; the old one disconnects a minute later, once the calls still using it are done. */
  #retireAdmin(): void {
    const stale = this.#admin;
    if (!stale) return;
    this.#admin = undefined;
    this.#retiredAdmins.add(stale);
    const disconnect = setTimeout(() => {
      this.#retiredAdmins.delete(stale);
      void stale.then((client) => client.disconnect()).catch(() => undefined);
    }, 60_000);
    disconnect.unref();
  }

  async #listTopics(admin: Admin): Promise<Set<string>> {
    try {
      const topics = new Set(await admin.listTopics());
      for (const topic of topics) this.#knownTopics.add(topic);
      return topics;
    } catch (error) {
      throw transportError('listing topics', error);
    }
  }

  /** Whether a topic exists, asking the cluster only about topics not seen yet (kafkajs retries a missing topic for long). */
  async #exists(admin: Admin, topic: string): Promise<boolean> {
    return this.#knownTopics.has(topic) || (await this.#listTopics(admin)).has(topic);
  }

  async #chooseReplicationFactor(admin: Admin): Promise<number> {
    if (this.#settings.replicationFactor !== undefined) return this.#settings.replicationFactor;
    try {
      return await brokerReplicationFactor(admin);
    } catch (error) {
      this.#replicationFactor = undefined;
      throw new EddyError('TRANSPORT_FAILED', `choosing a replication factor: ${String(error)}`, { cause: error, retriable: true });
    }
  }
}
