import { EddyError, partitionKey, type TopicPartition } from '@eddy/core';
import {
  Consumer,
  FetchIsolationLevels,
  FindCoordinatorKeyTypes,
  findCoordinatorV6,
  listOffsetsV9,
  type ClusterMetadata,
  type ClusterTopicMetadata,
  type Connection,
} from '@platformatic/kafka';
import type { KafkaSettings } from './options.js';

/** The wait before retry number `attempt` (from 1) by the transport's `retry` option: exponential, capped, randomized by `factor`. */
export function retryDelayMs(settings: KafkaSettings, attempt: number): number {
  const { initialRetryTimeMs, maxRetryTimeMs, factor, multiplier } = settings.retry;
  return Math.min(maxRetryTimeMs, initialRetryTimeMs * multiplier ** (attempt - 1)) * (1 - factor + Math.random() * 2 * factor);
}

/**
 * Options every @platformatic/kafka client of the transport is made with. A group member's loops
 * retry with backoff themselves and know what may be retried, so by default the client tries a
 * few times only; producers retry by the transport's `retry` option (the admin client retries in
 * KafkaAdmin, which refreshes metadata between attempts).
 */
export function clientOptions(settings: KafkaSettings, { retrying = false } = {}) {
  return {
    clientId: settings.clientId,
    bootstrapBrokers: settings.brokers,
    ...(retrying
      ? {
          retries: settings.retry.retries,
          retryDelay: (_client: unknown, _operation: string, attempt: number) => retryDelayMs(settings, attempt),
        }
      : { retries: 3, retryDelay: 250 }),
    connectTimeout: 10_000,
    requestTimeout: 30_000,
    ...(settings.tls ? { tls: settings.tls } : {}),
    ...(settings.saslOptions ? { sasl: settings.saslOptions } : {}),
  };
}

/** An offset a ListOffsets request asks for: the log's end (latest) or start (earliest). */
export type OffsetSpec = 'latest' | 'earliest';

/**
 * What the transport asks the cluster directly, through @platformatic/kafka's public protocol
 * API: metadata (topic ids, partition leaders), connections to brokers and coordinators, and
 * where partitions start and end. One per group member or reader; its clients join no group.
 *
 * Fetches go over connections of their own: a broker answers the requests of one connection one
 * at a time, in order, so a fetch waiting up to `maxWaitTime` for records would hold back every
 * heartbeat, offset commit and ListOffsets sent behind it on the same connection.
 */
export class Cluster {
  readonly client: Consumer;
  readonly #settings: KafkaSettings;
  readonly #groupId: string;
  #fetchClient: Consumer | undefined;
  readonly #topicNames = new Map<string, string>();

  constructor(settings: KafkaSettings, role: string, groupId = `${settings.clientId}-${role}`) {
    this.#settings = settings;
    this.#groupId = groupId;
    this.client = new Consumer({ ...clientOptions(settings), groupId });
  }

  /** A connection to broker `nodeId` for fetches only (see above). */
  async fetchConnection(nodeId: number): Promise<Connection> {
    this.#fetchClient ??= new Consumer({ ...clientOptions(this.#settings), groupId: this.#groupId });
    return connectionOf(this.#fetchClient, nodeId);
  }

  async metadata(topics: readonly string[], forceUpdate = false): Promise<ClusterMetadata> {
    const metadata = await this.client.metadata({ topics: [...topics], forceUpdate, autocreateTopics: false });
    for (const [name, topic] of metadata.topics) this.#topicNames.set(topic.id, name);
    return metadata;
  }

  async topic(topic: string, forceUpdate = false): Promise<ClusterTopicMetadata> {
    const found = (await this.metadata([topic], forceUpdate)).topics.get(topic);
    if (!found) throw new EddyError('TRANSPORT_FAILED', `topic ${topic} does not exist`, { retriable: true });
    return found;
  }

  /** A topic's name from its id, once the metadata of `topics` named it. */
  async topicName(topicId: string, topics: readonly string[]): Promise<string | undefined> {
    if (!this.#topicNames.has(topicId)) await this.metadata(topics, true);
    return this.#topicNames.get(topicId);
  }

  connection(nodeId: number): Promise<Connection> {
    return connectionOf(this.client, nodeId);
  }

  /** A connection to the coordinator of group `groupId`. */
  async groupCoordinator(groupId: string): Promise<Connection> {
    const metadata = await this.metadata([]);
    const any = [...metadata.brokers.keys()][0];
    if (any === undefined) throw new EddyError('TRANSPORT_FAILED', 'the cluster lists no brokers', { retriable: true });
    const response = await findCoordinatorV6.api.async(await this.connection(any), FindCoordinatorKeyTypes.GROUP, [groupId]);
    const coordinator = response.coordinators[0];
    if (!coordinator || coordinator.errorCode !== 0) throw new EddyError('TRANSPORT_FAILED', `no coordinator for group ${groupId} (error ${coordinator?.errorCode})`, { retriable: true });
    return this.connection(coordinator.nodeId);
  }

  /**
   * Where partitions end (`latest`: the last stable offset, so an open transaction counts as not
   * yet written) or start (`earliest`), by partition key; partitions of missing topics are left out.
   */
  async listOffsets(partitions: readonly TopicPartition[], spec: OffsetSpec): Promise<Map<string, number>> {
    const topics = [...new Set(partitions.map(({ topic }) => topic))];
    const metadata = await this.metadata(topics);
    const byLeader = new Map<number, Map<string, number[]>>();
    for (const { topic, partition } of partitions) {
      const leader = metadata.topics.get(topic)?.partitions[partition]?.leader;
      if (leader === undefined) continue;
      const ofLeader = byLeader.get(leader) ?? new Map<string, number[]>();
      byLeader.set(leader, ofLeader);
      ofLeader.set(topic, [...(ofLeader.get(topic) ?? []), partition]);
    }
    const timestamp = spec === 'latest' ? -1n : -2n;
    const offsets = new Map<string, number>();
    await Promise.all(
      [...byLeader].map(async ([leader, ofLeader]) => {
        const request = [...ofLeader].map(([name, indexes]) => ({ name, partitions: indexes.map((partitionIndex) => ({ partitionIndex, currentLeaderEpoch: -1, timestamp })) }));
        const response = await listOffsetsV9.api.async(await this.connection(leader), -1, FetchIsolationLevels.READ_COMMITTED, request);
        for (const topic of response.topics) {
          for (const entry of topic.partitions) if (entry.errorCode === 0) offsets.set(partitionKey(topic.name, entry.partitionIndex), Number(entry.offset));
        }
      }),
    );
    return offsets;
  }

  async close(): Promise<void> {
    const fetchClient = this.#fetchClient;
    this.#fetchClient = undefined;
    await Promise.all([this.client.close(true), fetchClient?.close(true)]);
  }
}

/** A client's connection to broker `nodeId`. */
async function connectionOf(client: Consumer, nodeId: number): Promise<Connection> {
  const connection = (await client.connectToBrokers([nodeId])).get(nodeId);
  if (!connection) throw new EddyError('TRANSPORT_FAILED', `no connection to broker ${nodeId}`, { retriable: true });
  return connection;
}
