import { ConfigError, EddyError, systemClock, type TopicSpec } from '@eddy/core';
import kafkajs from 'kafkajs';
import type { Admin } from 'kafkajs';
import { transportError } from './errors.js';

const { ConfigResourceTypes } = kafkajs;

/** How long topic creation may take to show leaders for every partition. */
const leaderTimeoutMs = 30_000;

/** Checks specs and keeps the first of each name. */
export function uniqueSpecs(specs: readonly TopicSpec[]): TopicSpec[] {
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

/**
 * Creates the topics of `specs` that do not exist (changelogs compacted) with
 * `replicationFactor` replicas, and waits until every partition of them has a leader. A topic
 * that another process creates at the same moment counts as existing.
 */
export async function createMissingTopics(admin: Admin, specs: readonly TopicSpec[], existing: ReadonlySet<string>, replicationFactor: () => Promise<number>): Promise<void> {
  const missing = specs.filter((spec) => !existing.has(spec.name));
  if (missing.length === 0) return;
  const names = missing.map((spec) => spec.name).join(', ');
  const replicas = await replicationFactor();
  try {
    await admin.createTopics({
      topics: missing.map((spec) => ({
        topic: spec.name,
        numPartitions: spec.partitions,
        replicationFactor: replicas,
        configEntries: [
          ...(spec.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : []),
          // Repartition records carry event times, possibly old: time-based retention must not
          // delete them before they are read; the app deletes them once committed.
          ...(spec.unlimitedRetention ? [{ name: 'retention.ms', value: '-1' }] : []),
        ],
      })),
      // kafkajs's own wait gives up on UNKNOWN_TOPIC_OR_PARTITION, which a Kafka 4 broker answers
      // for a moment after creating a topic; the poll below waits through it.
      waitForLeaders: false,
      timeout: leaderTimeoutMs,
    });
  } catch (error) {
    throw transportError(`creating topics ${names}`, error);
  }
  // Also when some existed already (created concurrently elsewhere): they may be just as new.
  await waitForLeaders(admin, missing.map((spec) => spec.name));
}

/** Polls metadata until every partition of `topics` has a leader. */
export async function waitForLeaders(admin: Admin, topics: readonly string[]): Promise<void> {
  let lastError: unknown;
  const deadline = systemClock.now() + leaderTimeoutMs;
  while (systemClock.now() < deadline) {
    try {
      const metadata = await admin.fetchTopicMetadata({ topics: [...topics] });
      const ready = topics.every((topic) => {
        const partitions = metadata.topics.find((entry) => entry.name === topic)?.partitions ?? [];
        return partitions.length > 0 && partitions.every((partition) => partition.leader >= 0);
      });
      if (ready) return;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new EddyError('TRANSPORT_FAILED', `topics ${topics.join(', ')} have no leader after ${leaderTimeoutMs} ms`, { cause: lastError, retriable: true });
}

/**
 * The replication factor for new topics when the user gave none: the broker's
 * `default.replication.factor` (kafkajs's CreateTopics cannot ask for "the broker default"), or
 * the smaller of 3 and the number of live brokers if the config cannot be read.
 */
export async function brokerReplicationFactor(admin: Admin): Promise<number> {
  const { brokers, controller } = await admin.describeCluster();
  const fallback = Math.max(1, Math.min(3, brokers.length));
  const nodeId = controller ?? brokers[0]?.nodeId;
  if (nodeId === undefined) return fallback;
  try {
    const { resources } = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.BROKER, name: String(nodeId), configNames: ['default.replication.factor'] }],
      includeSynonyms: false,
    });
    const value = Number(resources[0]?.configEntries.find((entry) => entry.configName === 'default.replication.factor')?.configValue);
    return Number.isInteger(value) && value > 0 ? value : fallback;
  } catch {
    return fallback;
  }
}
