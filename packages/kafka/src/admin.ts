import { ConfigError, EddyError, systemClock, type TopicPartition, type TopicSpec } from '@eddy/core';
import { Admin, ConfigResourceTypes, FetchIsolationLevels, IncrementalAlterConfigOperationTypes, type ClusterPartitionMetadata } from '@platformatic/kafka';
import { clientOptions, retryDelayMs } from './cluster.js';
import { isRetriable, transportError } from './errors.js';
import type { KafkaSettings } from './options.js';
import { hasKafkaError } from './protocol-errors.js';
import { readTopicLimits, type TopicLimits } from './topic-limits.js';

/** How long new topics may take until the leader of every partition serves it. */
const LEADER_TIMEOUT_MS = 30_000;
const LEADER_POLL_MS = 100;

/** ListOffsets timestamps: the offset after the last record, and the first offset. */
const LATEST = -1n;
const EARLIEST = -2n;

/** Asks CreateTopics for the broker's `default.replication.factor` (CreateTopics v4 and later). */
const BROKER_DEFAULT_REPLICATION = -1;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The transport's administration of a Kafka cluster, on one @platformatic/kafka `Admin`: topics
 * (listing, creating, their partitions and limits), where partitions end, and deleting records.
 *
 * Failed requests are retried by the transport's `retry` option, after reading the metadata of
 * the topics involved again: a leader may have moved, a topic been created or deleted.
 *
 * @example
 * ```ts
 * const admin = new KafkaAdmin(resolveSettings({ brokers: ['localhost:9092'] }));
 * await admin.ensureTopics([{ name: 'app-counts-changelog', partitions: 4, compacted: true }]);
 * const end = await admin.endOffset({ topic: 'app-counts-changelog', partition: 0 });
 * await admin.close();
 * ```
 */
export class KafkaAdmin {
  readonly #settings: KafkaSettings;
  readonly #admin: Admin;
  /** Topics seen to exist (listing every topic again for each request would be wasteful); forgotten before a retry. */
  readonly #knownTopics = new Set<string>();

  constructor(settings: KafkaSettings) {
    this.#settings = settings;
    // Retried here, not by the client: it would ask the broker it chose first again, with the metadata that sent it there.
    this.#admin = new Admin({ ...clientOptions(settings), retries: 0 });
  }

  /**
   * The names of the cluster's topics, internal ones (`__consumer_offsets`, …) left out.
   *
   * @example
   * ```ts
   * if (!(await admin.topics()).has('readings')) console.warn('readings does not exist yet');
   * ```
   */
  async topics(): Promise<Set<string>> {
    return this.#retrying('listing topics', [], () => this.#listTopics());
  }

  /**
   * Creates the topics of `specs` that do not exist: changelogs (`compacted`) with
   * `cleanup.policy=compact`, repartition topics (`unlimitedRetention`) with `retention.ms=-1`,
   * and `replicationFactor` replicas (by default the broker's `default.replication.factor`).
   * Waits until the leader of every partition of them serves it. Existing topics are left as they
   * are; one that another process creates at the same moment counts as existing.
   *
   * @example
   * ```ts
   * await admin.ensureTopics([
   *   { name: 'app-counts-changelog', partitions: 4, compacted: true },
   *   { name: 'app-by-user-repartition', partitions: 4, unlimitedRetention: true },
   * ]);
   * ```
   */
  async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
    const unique = uniqueSpecs(specs);
    if (unique.length === 0) return;
    const existing = await this.topics();
    const missing = unique.filter(({ name }) => !existing.has(name));
    if (missing.length === 0) return;
    await Promise.all(missing.map((spec) => this.#retrying(`creating topic ${spec.name}`, [], () => this.#createTopic(spec))));
    // Also those another process created meanwhile: they may be just as new.
    await this.#waitUntilServed(missing.map(({ name }) => name));
  }

  /**
   * The number of partitions of a topic, or undefined if it does not exist.
   *
   * @example
   * ```ts
   * const partitions = (await admin.partitionCount('readings')) ?? 0;
   * ```
   */
  async partitionCount(topic: string): Promise<number | undefined> {
    return this.#retrying(`reading the partitions of ${topic}`, [topic], async () => (await this.#partitions(topic))?.length);
  }

  /**
   * The offset after the last record of a partition (its high watermark, records of open
   * transactions included); 0 for a partition that does not exist, like the embedded broker.
   *
   * @example
   * ```ts
   * const end = await admin.endOffset({ topic: 'readings', partition: 0 });
   * ```
   */
  async endOffset({ topic, partition }: TopicPartition): Promise<number> {
    return this.#retrying(`reading the end offset of ${topic}[${partition}]`, [topic], async () => {
      if ((await this.#leader(topic, partition)) === undefined) return 0;
      const [listed] = await this.#admin.listOffsets({
        topics: [{ name: topic, partitions: [{ partitionIndex: partition, timestamp: LATEST }] }],
        isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED,
      });
      return Number(listed.partitions[0].offset);
    });
  }

  /**
   * Deletes a partition's records before `offset` (Kafka's DeleteRecords): the partition's log
   * then starts at `offset`. Fails for a compacted topic (the broker's policy).
   *
   * @example
   * ```ts
   * await admin.deleteRecords({ topic: 'app-by-user-repartition', partition: 0 }, 1200);
   * ```
   */
  async deleteRecords({ topic, partition }: TopicPartition, offset: number): Promise<void> {
    const what = `deleting the records of ${topic}[${partition}] before offset ${offset}`;
    if (!Number.isInteger(offset) || offset < 0) throw new EddyError('TRANSPORT_FAILED', `${what}: the offset must be a non-negative integer`);
    await this.#retrying(what, [topic], async () => {
      if ((await this.#leader(topic, partition)) === undefined) throw new EddyError('TRANSPORT_FAILED', `${what}: the partition does not exist`);
      await this.#admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition, offset: BigInt(offset) }] }] });
    });
  }

  /**
   * What a topic accepts (see topic-limits.ts): its largest record batch and how far timestamps
   * may be from the broker's clock.
   *
   * @example
   * ```ts
   * const { maxMessageBytes } = await admin.topicLimits('readings');
   * ```
   */
  async topicLimits(topic: string): Promise<TopicLimits> {
    const what = `reading the limits of ${topic}`;
    return this.#retrying(what, [topic], async () => {
      if ((await this.#partitions(topic)) === undefined) throw new EddyError('TRANSPORT_FAILED', `${what}: the topic does not exist`);
      return readTopicLimits(this.#admin, topic);
    });
  }

  /**
   * Sets configurations of consumer group `groupId` (a GROUP resource, Kafka 4.0 and later), such
   * as `consumer.session.timeout.ms`: under the consumer group protocol the group, not its
   * members, owns its timeouts. The broker bounds them (`group.consumer.min.session.timeout.ms`
   * and the like) and refuses a value outside.
   * @example
   * await admin.configureGroup('sensors', { 'consumer.session.timeout.ms': '10000' });
   */
  async configureGroup(groupId: string, configs: Readonly<Record<string, string>>): Promise<void> {
    const entries = Object.entries(configs).map(([name, value]) => ({ name, configOperation: IncrementalAlterConfigOperationTypes.SET, value }));
    if (entries.length === 0) return;
    await this.#retrying(`configuring group ${groupId}`, [], () =>
      this.#admin.incrementalAlterConfigs({ resources: [{ resourceType: ConfigResourceTypes.GROUP, resourceName: groupId, configs: entries }] }),
    );
  }

  /**
   * Closes the connections; requests after it fail.
   *
   * @example
   * ```ts
   * await admin.close();
   * ```
   */
  async close(): Promise<void> {
    await this.#admin.close();
  }

  /**
   * Runs `operation` until it succeeds, fails in a way no retry mends, or the transport's `retry`
   * option says to give up. Before each retry the metadata of `topics` is read again, and whether
   * they exist is asked again.
   */
  async #retrying<T>(what: string, topics: readonly string[], operation: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await operation();
      } catch (error) {
        if (attempt > this.#settings.retry.retries || this.#admin.closed || !isRetriable(error)) throw transportError(what, error);
        await sleep(retryDelayMs(this.#settings, attempt));
        for (const topic of topics) this.#knownTopics.delete(topic);
        // A topic that no longer exists fails this; listing the topics then tells.
        if (topics.length > 0) await this.#admin.metadata({ topics: [...topics], forceUpdate: true }).catch(() => undefined);
      }
    }
  }


  async #listTopics(): Promise<Set<string>> {
    const topics = new Set(await this.#admin.listTopics());
    for (const topic of topics) this.#knownTopics.add(topic);
    return topics;
  }

  /** The partitions of `topic` with their leaders, or undefined if it does not exist. */
  async #partitions(topic: string): Promise<ClusterPartitionMetadata[] | undefined> {
    // The client's metadata request fails for a topic the broker does not know, with no Kafka error to tell why.
    if (!this.#knownTopics.has(topic) && !(await this.#listTopics()).has(topic)) return undefined;
    return (await this.#admin.metadata({ topics: [topic] })).topics.get(topic)?.partitions;
  }

  /** The broker leading a partition, or undefined if there is no such partition. */
  async #leader(topic: string, partition: number): Promise<number | undefined> {
    const leader = (await this.#partitions(topic))?.[partition]?.leader;
    // The client cannot route a request to leader -1: it throws a TypeError, which can escape the request's promise.
    if (leader !== undefined && leader < 0) throw new EddyError('TRANSPORT_FAILED', `${topic}[${partition}] has no leader`, { retriable: true });
    return leader;
  }

  async #createTopic(spec: TopicSpec): Promise<void> {
    try {
      // One topic per request: a request gives all its topics the same partitions and configs.
      await this.#admin.createTopics({
        topics: [spec.name],
        partitions: spec.partitions,
        replicas: this.#settings.replicationFactor ?? BROKER_DEFAULT_REPLICATION,
        configs: topicConfigs(spec),
      });
    } catch (error) {
      // Created meanwhile by another process, or by an earlier attempt whose answer was lost.
      if (!hasKafkaError(error, 'TOPIC_ALREADY_EXISTS')) throw error;
    }
  }

  /**
   * Polls until every partition of `topics` has a leader that serves it: a Kafka 4 broker names
   * a new partition's leader a moment before that leader answers for it.
   */
  async #waitUntilServed(topics: readonly string[]): Promise<void> {
    const deadline = systemClock.now() + LEADER_TIMEOUT_MS;
    let lastError: unknown;
    while (systemClock.now() < deadline) {
      try {
        const metadata = await this.#admin.metadata({ topics: [...topics], forceUpdate: true });
        const partitionsOf = (topic: string) => metadata.topics.get(topic)?.partitions ?? [];
        if (topics.every((topic) => partitionsOf(topic).length > 0 && partitionsOf(topic).every(({ leader }) => leader >= 0))) {
          const request = topics.map((name) => ({ name, partitions: partitionsOf(name).map((_, partitionIndex) => ({ partitionIndex, timestamp: EARLIEST })) }));
          await this.#admin.listOffsets({ topics: request });
          for (const topic of topics) this.#knownTopics.add(topic);
          return;
        }
      } catch (error) {
        lastError = error;
      }
      await sleep(LEADER_POLL_MS);
    }
    throw new EddyError('TRANSPORT_FAILED', `topics ${topics.join(', ')} have no serving leader after ${LEADER_TIMEOUT_MS} ms`, { cause: lastError, retriable: true });
  }
}

/** Checks specs and keeps the first of each name. */
function uniqueSpecs(specs: readonly TopicSpec[]): TopicSpec[] {
  const byName = new Map<string, TopicSpec>();
  for (const spec of specs) {
    if (typeof spec?.name !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(spec.name)) throw new ConfigError(`ensureTopics: invalid topic name ${JSON.stringify(spec?.name)}`);
    if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
      throw new ConfigError(`topic ${spec.name}: partitions must be a positive integer, got ${String(spec.partitions)}`);
    }
    if (!byName.has(spec.name)) byName.set(spec.name, spec);
  }
  return [...byName.values()];
}

/** The configuration a topic of `spec` is created with. */
function topicConfigs(spec: TopicSpec): Array<{ name: string; value: string }> {
  return [
    ...(spec.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : []),
    // Repartition records carry event times, possibly old: time-based retention must not delete
    // them before they are read; the app deletes them once committed.
    ...(spec.unlimitedRetention ? [{ name: 'retention.ms', value: '-1' }] : []),
  ];
}
