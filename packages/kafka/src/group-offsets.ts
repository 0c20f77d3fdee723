import { EddyError, partitionKey, systemClock, type TopicPartition, type TopicPartitionOffset } from '@eddy/core';
import { offsetCommitV9, offsetFetchV9, txnOffsetCommitV4, type Connection } from '@platformatic/kafka';
import { backoff, sleep } from './backoff.js';
import type { Cluster } from './cluster.js';
import { transportError } from './errors.js';
import type { MemberLog } from './member.js';
import { FENCED, type Membership } from './membership.js';
import type { KafkaSettings } from './options.js';
import { hasKafkaError } from './protocol-errors.js';
import type { TransactionIdentity } from './transactional-producer.js';

/** What {@link GroupOffsets} needs of its group member. */
export interface GroupOffsetsContext {
  readonly settings: KafkaSettings;
  readonly groupId: string;
  readonly cluster: Cluster;
  /** The member's id, epoch and coordinator. */
  readonly membership: Membership;
  /** Partitions the coordinator knows this member holds. */
  readonly owned: ReadonlyMap<string, TopicPartition>;
  /** Whether a failed request may go again. */
  readonly retriable: (error: unknown) => boolean;
  readonly log: MemberLog;
}

/**
 * A group member's offsets at the group's coordinator: commits (OffsetCommit), commits with a
 * producer's transaction (TxnOffsetCommit, as this member), and where assigned partitions start
 * (OffsetFetch). Only offsets of partitions this member owns are committed.
 */
export class GroupOffsets {
  readonly #context: GroupOffsetsContext;
  /** The last offset committed per owned partition; commits never move back. */
  readonly #lastCommitted = new Map<string, number>();

  constructor(context: GroupOffsetsContext) {
    this.#context = context;
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const { settings, groupId, membership, owned } = this.#context;
    const commits = new Map<string, TopicPartitionOffset>();
    const notHeld: string[] = [];
    for (const position of offsets) {
      const key = partitionKey(position.topic, position.partition);
      if (!owned.has(key)) notHeld.push(`${position.topic}[${position.partition}]`);
      // Offsets committed already go again: a commit is also how the app learns that the broker is
      // out of reach (its tasks then show as stuck), also while it has nothing new to commit.
      else if ((this.#lastCommitted.get(key) ?? -1) <= position.offset) commits.set(key, position);
    }
    if (notHeld.length > 0) this.#context.log('debug', 'not committing offsets of partitions this member no longer owns', { partitions: notHeld });
    if (commits.size === 0) return;
    const request = offsetsByTopic([...commits.values()]);
    for (let attempt = 0; ; attempt++) {
      try {
        await offsetCommitV9.api.async(await membership.coordinator(), groupId, membership.epoch, membership.memberId, settings.groupInstanceId ?? null, request);
        break;
      } catch (error) {
        if (hasKafkaError(error, ...FENCED)) {
          this.#context.log('warn', 'the group no longer counts this member in, so its offsets were not committed; the next owner resumes from the previous commit', { error: String(error) });
          return;
        }
        if (attempt >= 5 || !this.#context.retriable(error)) throw transportError(`committing offsets of group ${groupId}`, error);
        if (hasKafkaError(error, 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE')) membership.forgetCoordinator();
        await sleep(backoff(attempt));
      }
    }
    for (const [key, { offset }] of commits) this.#lastCommitted.set(key, offset);
  }

  /**
   * Commits offsets with a producer's open transaction (TxnOffsetCommit) as this member: the
   * coordinator takes them only from a member of the group at its current epoch. An epoch that
   * moved on under the commit (a rebalance elsewhere in the group) is retried at the new one
   * while this member still owns the partitions; partitions it lost fail the commit, and with it
   * the transaction.
   */
  async commitTransactional(transaction: TransactionIdentity, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const { settings, groupId, membership, owned } = this.#context;
    for (let attempt = 0; ; attempt++) {
      const notHeld = offsets.filter(({ topic, partition }) => !owned.has(partitionKey(topic, partition)));
      if (notHeld.length > 0) {
        const names = notHeld.map(({ topic, partition }) => `${topic}[${partition}]`).join(',');
        throw new EddyError('TRANSPORT_FAILED', `committing offsets of group ${groupId} in transaction ${transaction.transactionalId}: this member no longer owns ${names}`, { retriable: false });
      }
      try {
        const member = { memberId: membership.memberId, epoch: membership.epoch, groupInstanceId: settings.groupInstanceId ?? null };
        await commitTransactionalOffsets(await membership.coordinator(), transaction, groupId, member, offsets);
        return;
      } catch (error) {
        const epochMoved = hasKafkaError(error, 'ILLEGAL_GENERATION', 'STALE_MEMBER_EPOCH');
        if (attempt >= 8 || (!epochMoved && !this.#context.retriable(error))) throw transportError(`committing offsets of group ${groupId} in transaction ${transaction.transactionalId}`, error);
        if (hasKafkaError(error, 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE')) membership.forgetCoordinator();
        // A moved epoch is learnt with the next heartbeat.
        await sleep(epochMoved ? settings.heartbeatIntervalMs / 2 : backoff(attempt));
      }
    }
  }

  /** Forgets what was committed of a partition this member no longer owns. */
  released(key: string): void {
    this.#lastCommitted.delete(key);
  }

  /** Where `partitions` start: the group's committed offsets, or where a partition starts for a group without one. */
  async startPositions(partitions: readonly TopicPartition[]): Promise<Map<string, number>> {
    const committed = await this.committed(partitions);
    const unknown = partitions.filter(({ topic, partition }) => !committed.has(partitionKey(topic, partition)));
    // A group without committed offsets starts at the beginning, like the embedded broker.
    const earliest = unknown.length > 0 ? await this.#retrying('reading where partitions start', () => this.#context.cluster.listOffsets(unknown, 'earliest')) : new Map<string, number>();
    const positions = new Map<string, number>();
    for (const { topic, partition } of partitions) {
      const key = partitionKey(topic, partition);
      positions.set(key, committed.get(key) ?? earliest.get(key) ?? 0);
    }
    return positions;
  }

  /**
   * The group's committed offsets of `partitions` (those it has), by partition key.
   *
   * Offsets that a transaction still open committed are waited for (requireStable: the answer is
   * UNSTABLE_OFFSET_COMMIT until the transaction ends). The runtime reads committed offsets only
   * once the producer of the partitions' task has registered its transactional id, which ends any
   * transaction of the id's earlier producers (see `ConsumerListener.onAssign`); no other
   * transaction commits offsets of those partitions. So offsets that stay unstable past
   * {@link HANGING_AFTER_MS} belong to a transaction that will never end: a hanging transaction
   * (its offsets reached the group, but it ended without the group hearing of it). They are never
   * made visible; the last stable commit is read instead, with a warning, and the task's next
   * transactional commit (same producer id) replaces them.
   */
  async committed(partitions: readonly TopicPartition[]): Promise<Map<string, number>> {
    const { groupId, membership } = this.#context;
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of partitions) byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    const request = [{ groupId, memberId: null, memberEpoch: -1, topics: [...byTopic].map(([name, partitionIndexes]) => ({ name, partitionIndexes })) }];
    const fetch = async (requireStable: boolean) => {
      const response = await offsetFetchV9.api.async(await membership.coordinator(), request, requireStable);
      const offsets = new Map<string, number>();
      for (const group of response.groups) {
        for (const topic of group.topics) {
          for (const entry of topic.partitions) if (entry.errorCode === 0 && entry.committedOffset >= 0n) offsets.set(partitionKey(topic.name, entry.partitionIndex), Number(entry.committedOffset));
        }
      }
      return offsets;
    };
    const started = systemClock.now();
    return this.#retrying(`reading the committed offsets of group ${groupId}`, async () => {
      try {
        return await fetch(true);
      } catch (error) {
        if (!hasKafkaError(error, 'UNSTABLE_OFFSET_COMMIT') || systemClock.now() - started < HANGING_AFTER_MS) throw error;
        this.#context.log('warn', 'the group holds offsets of a transaction that never ended (a hanging transaction); reading the last stable commit instead, which the next commit replaces', {
          partitions: partitions.map(({ topic, partition }) => `${topic}[${partition}]`),
          unstableForMs: systemClock.now() - started,
        });
        return fetch(false);
      }
    });
  }

  async #retrying<T>(what: string, operation: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await operation();
      } catch (error) {
        if (attempt >= 8 || !this.#context.retriable(error)) throw transportError(what, error);
        if (hasKafkaError(error, 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE')) this.#context.membership.forgetCoordinator();
        await sleep(backoff(attempt));
      }
    }
  }
}

/**
 * How long committed offsets may stay unstable before they count as a hanging transaction's. A
 * transaction its id's new producer ended completes in milliseconds; its offsets need no more.
 */
export const HANGING_AFTER_MS = 3_000;

/** Offsets to commit as the OffsetCommit and TxnOffsetCommit requests group them. */
function offsetsByTopic(offsets: readonly TopicPartitionOffset[]): Array<{ name: string; partitions: Array<{ partitionIndex: number; committedOffset: bigint; committedLeaderEpoch: number }> }> {
  const byTopic = new Map<string, Array<{ partitionIndex: number; committedOffset: bigint; committedLeaderEpoch: number }>>();
  for (const { topic, partition, offset } of offsets) {
    let partitions = byTopic.get(topic);
    if (!partitions) byTopic.set(topic, (partitions = []));
    partitions.push({ partitionIndex: partition, committedOffset: BigInt(offset), committedLeaderEpoch: -1 });
  }
  return [...byTopic].map(([name, partitions]) => ({ name, partitions }));
}

/** The member a transactional offset commit names: a member of the group, or none (`''`, epoch -1) for a group without members. */
export interface CommittingMember {
  readonly memberId: string;
  readonly epoch: number;
  readonly groupInstanceId: string | null;
}

/** TxnOffsetCommit: offsets (the next offset to read) of `groupId` that become visible when the transaction commits. */
export async function commitTransactionalOffsets(connection: Connection, transaction: TransactionIdentity, groupId: string, member: CommittingMember, offsets: readonly TopicPartitionOffset[]): Promise<void> {
  const topics = offsetsByTopic(offsets);
  const { transactionalId, producerId, producerEpoch } = transaction;
  await txnOffsetCommitV4.api.async(connection, transactionalId, groupId, producerId, producerEpoch, member.epoch, member.memberId, member.groupInstanceId, topics);
}
