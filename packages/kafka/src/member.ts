import { randomUUID } from 'node:crypto';
import type { Buffer } from 'node:buffer';
import {
  EddyError,
  partitionKey,
  systemClock,
  type CaughtUp,
  type ConsumerListener,
  type Headers,
  type IncomingRecord,
  type TopicPartition,
  type TopicPartitionOffset,
  type TransportConsumer,
} from '@eddy/core';
import {
  consumerGroupHeartbeatV1,
  FetchIsolationLevels,

  offsetCommitV9,
  offsetFetchV9,
  txnOffsetCommitV4,
  type Connection,
} from '@platformatic/kafka';

type ConsumerGroupHeartbeatResponse = consumerGroupHeartbeatV1.ConsumerGroupHeartbeatResponse;
import { Cluster } from './cluster.js';
import { fetchRaw, forEachRecord, type FetchedPartition, type FetchResponse } from './fetch-response.js';
import { EndWatch } from './end-watch.js';
import { transportError } from './errors.js';
/** The headers of every record that has none. */
const emptyHeaders: Headers = Object.freeze({});
import type { KafkaSettings } from './options.js';
import type { TransactionIdentity } from './producer.js';
import { hasKafkaError, OFFSET_OUT_OF_RANGE, responseOf } from './protocol-errors.js';

/** Records handed to the listener at a time, from a fetched partition. */
const DELIVERY_SLICE = 1000;
/** How often the member asks where its partitions end, and after how long without an answer it may have missed records. */
const END_CHECK_INTERVAL_MS = 500;
const END_CHECK_BREAK_MS = 2_000;
/** Backoff after a failed request: doubles from the first value up to the second. */
const BACKOFF_MS = [100, 5_000] as const;
/** How long `start` waits for an assignment with partitions of every topic (there may be more members than partitions). */
const FIRST_ASSIGNMENT_WAIT_MS = 5_000;

/** Record batch attributes (Kafka's record format v2). */
const LOG_APPEND_TIME = 0b1000;
const TRANSACTIONAL = 0b1_0000;
const CONTROL = 0b10_0000;

/** Errors after which the group no longer counts this member in: its partitions are lost, and it joins again. */
const FENCED = ['FENCED_MEMBER_EPOCH', 'UNKNOWN_MEMBER_ID'];
/** Errors that no retry mends: the member stops and the app is told. */
const FATAL = [
  'UNSUPPORTED_VERSION',
  'UNSUPPORTED_ASSIGNOR',
  'INVALID_REQUEST',
  'GROUP_AUTHORIZATION_FAILED',
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_MAX_SIZE_REACHED',
  'INVALID_GROUP_ID',
  'GROUP_ID_NOT_FOUND',
];

/** A partition this member delivers: where it reads next, and a count of seeks (a fetch made before a seek is dropped). */
interface Delivering {
  readonly tp: TopicPartition;
  position: number;
  seeks: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref?.());

/**
 * One member of a Kafka consumer group on the consumer group protocol of KIP-848 (Kafka 4.0 and
 * later), spoken through @platformatic/kafka's public protocol API; Eddy's own, so that
 * rebalances keep the order the runtime relies on:
 *
 * - Incremental. The coordinator assigns partitions (the `range` assignor: partition p of every
 *   topic of the group to one member, so co-partitioned sources stay in one task) and moves only
 *   those that must move. A member keeps processing the partitions it keeps while others move.
 * - Revoke, then acknowledge. A partition taken away stops being delivered; deliveries in flight
 *   finish, the listener revokes it (finishes, flushes state, commits), and only then does the
 *   member tell the coordinator it has let go, which is when the next owner gets it: it restores a
 *   complete changelog and resumes at the committed offset.
 * - Assign before records. A partition's first batch waits until the listener has taken it, and
 *   starts at the group's committed offset read then (or the later position the listener gives).
 * - Static membership (`groupInstanceId`): the member leaves without giving up its partitions, and
 *   an instance that comes back with the same id within the group's session timeout gets them again
 *   with no rebalance of the others.
 * - Lost partitions. A member the coordinator fenced (missed heartbeats) revokes its partitions
 *   without committing (another member may own them) and joins again.
 * - One partition's batch at a time, in offset order, the next fetch after the listener took the
 *   last one: a slow listener pauses the source. Heartbeats go on meanwhile.
 */
export class GroupMember implements TransportConsumer {
  readonly #settings: KafkaSettings;
  readonly #groupId: string;
  readonly #topics: readonly string[];
  readonly #listener: ConsumerListener;
  readonly #cluster: Cluster;
  readonly #closed: (member: GroupMember) => void;
  readonly #ends: EndWatch;

  #memberId: string = randomUUID();
  #epoch = 0;
  #heartbeatIntervalMs = 1_000;
  #coordinator: Promise<Connection> | undefined;
  #lastHeartbeatAt = 0;
  /** Partitions the coordinator knows this member holds (sent with each heartbeat). */
  readonly #owned = new Map<string, TopicPartition>();
  /** Partitions whose records are delivered: owned, taken by the listener, not being revoked. */
  readonly #delivering = new Map<string, Delivering>();
  /** The last offset committed per owned partition; commits never move back. */
  readonly #lastCommitted = new Map<string, number>();
  /** The newest assignment the coordinator gave, not yet reconciled. */
  #target: Map<string, TopicPartition> | undefined;
  #reconciling: Promise<void> = Promise.resolve();
  /** The delivery in flight, if any (a revocation waits for it). */
  #delivery: Promise<void> = Promise.resolve();
  #stopping = false;
  #closing: Promise<void> | undefined;
  #wakeHeartbeat: (() => void) | undefined;
  #wakeFetch: (() => void) | undefined;
  #firstAssignment: { resolve: () => void; reject: (error: unknown) => void } | undefined;

  constructor(settings: KafkaSettings, groupId: string, topics: readonly string[], listener: ConsumerListener, closed: (member: GroupMember) => void) {
    this.#settings = settings;
    this.#groupId = groupId;
    this.#topics = topics;
    this.#listener = listener;
    this.#closed = closed;
    this.#cluster = new Cluster(settings, 'consumer', groupId);
    this.#ends = new EndWatch({
      readOffsets: (topic) => this.#partitionOffsets(topic),
      intervalMs: END_CHECK_INTERVAL_MS,
      breakAfterMs: END_CHECK_BREAK_MS,
      log: (message, fields) => this.#log('debug', message, fields),
    });
  }

  /** Joins the group; resolves once the listener has taken a first assignment (or none came for a while). */
  /** The group this member belongs to. */
  get groupId(): string {
    return this.#groupId;
  }

  async start(): Promise<void> {
    const first = new Promise<void>((resolve, reject) => (this.#firstAssignment = { resolve, reject }));
    // Past the wait, start resolves once the app has taken what it was given so far (restored it):
    // a member may have no partitions of some topic, or none at all, in a group larger than them.
    const waited = setTimeout(() => void this.#assigning.then(() => this.#firstAssignment?.resolve()), FIRST_ASSIGNMENT_WAIT_MS);
    void this.#heartbeatLoop();
    void this.#fetchLoop();
    try {
      await first;
    } catch (error) {
      await this.#shutDown({ revoke: false });
      throw error;
    } finally {
      clearTimeout(waited);
      this.#firstAssignment = undefined;
    }
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const commits = new Map<string, TopicPartitionOffset>();
    const notHeld: string[] = [];
    for (const position of offsets) {
      const key = partitionKey(position.topic, position.partition);
      if (!this.#owned.has(key)) notHeld.push(`${position.topic}[${position.partition}]`);
      // Offsets committed already go again: a commit is also how the app learns that the broker is
      // out of reach (its tasks then show as stuck), also while it has nothing new to commit.
      else if ((this.#lastCommitted.get(key) ?? -1) <= position.offset) commits.set(key, position);
    }
    if (notHeld.length > 0) this.#log('debug', 'not committing offsets of partitions this member no longer owns', { partitions: notHeld });
    if (commits.size === 0) return;
    const request = offsetsByTopic([...commits.values()]);
    for (let attempt = 0; ; attempt++) {
      try {
        await offsetCommitV9.api.async(await this.#coordinatorConnection(), this.#groupId, this.#epoch, this.#memberId, this.#settings.groupInstanceId ?? null, request);
        break;
      } catch (error) {
        if (hasKafkaError(error, ...FENCED)) {
          this.#log('warn', 'the group no longer counts this member in, so its offsets were not committed; the next owner resumes from the previous commit', { error: String(error) });
          return;
        }
        if (attempt >= 5 || !this.#retriable(error)) throw transportError(`committing offsets of group ${this.#groupId}`, error);
        if (hasKafkaError(error, 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE')) this.#coordinator = undefined;
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
    for (let attempt = 0; ; attempt++) {
      const notHeld = offsets.filter(({ topic, partition }) => !this.#owned.has(partitionKey(topic, partition)));
      if (notHeld.length > 0) {
        throw new EddyError('TRANSPORT_FAILED', `committing offsets of group ${this.#groupId} in transaction ${transaction.transactionalId}: this member no longer owns ${names(notHeld)}`, { retriable: false });
      }
      try {
        const member = { memberId: this.#memberId, epoch: this.#epoch, groupInstanceId: this.#settings.groupInstanceId ?? null };
        await commitTransactionalOffsets(await this.#coordinatorConnection(), transaction, this.#groupId, member, offsets);
        return;
      } catch (error) {
        const epochMoved = hasKafkaError(error, 'ILLEGAL_GENERATION', 'STALE_MEMBER_EPOCH');
        if (attempt >= 8 || (!epochMoved && !this.#retriable(error))) throw transportError(`committing offsets of group ${this.#groupId} in transaction ${transaction.transactionalId}`, error);
        if (hasKafkaError(error, 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE')) this.#coordinator = undefined;
        // A moved epoch is learnt with the next heartbeat.
        await sleep(epochMoved ? this.#settings.heartbeatIntervalMs / 2 : backoff(attempt));
      }
    }
  }

  async committed({ topic, partition }: TopicPartition): Promise<number | undefined> {
    return (await this.#committedOffsets([{ topic, partition }])).get(partitionKey(topic, partition));
  }

  seek({ topic, partition, offset }: TopicPartitionOffset): void {
    const delivering = this.#delivering.get(partitionKey(topic, partition));
    if (!delivering) return;
    delivering.position = offset;
    delivering.seeks++;
    this.#ends.moved({ topic, partition }, offset);
  }

  caughtUp(partition: TopicPartition): CaughtUp | undefined {
    return this.#ends.caughtUp(partition);
  }

  lag(partition: TopicPartition): number | undefined {
    return this.#ends.lag(partition);
  }

  async confirmOwnership(partitions: readonly TopicPartition[]): Promise<'owned' | 'revoked' | 'unsure'> {
    if (this.#stopping || partitions.some(({ topic, partition }) => !this.#owned.has(partitionKey(topic, partition)))) return 'revoked';
    // A heartbeat answered since the question was asked, with no change pending: the coordinator counts these partitions as ours.
    const asked = systemClock.now();
    this.#wakeHeartbeat?.();
    for (let waited = 0; waited < this.#settings.sessionTimeoutMs; waited += 100) {
      if (this.#lastHeartbeatAt >= asked) break;
      await sleep(100);
    }
    if (this.#lastHeartbeatAt < asked || this.#target) return 'unsure';
    return partitions.every(({ topic, partition }) => this.#owned.has(partitionKey(topic, partition))) ? 'owned' : 'revoked';
  }

  /** Revokes every partition (the listener commits them), then leaves the group. */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown({ revoke: true });
    return this.#closing;
  }

  async #shutDown({ revoke }: { revoke: boolean }): Promise<void> {
    this.#stopping = true;
    this.#wakeFetch?.();
    await this.#reconciling.catch(() => undefined);
    if (revoke && this.#owned.size > 0) await this.#revoke([...this.#owned.values()], { lost: false }).catch(() => undefined);
    this.#wakeHeartbeat?.();
    // Leave: a static member (-2) keeps its partitions for the session timeout, anyone else (-1) gives them up now.
    if (this.#epoch > 0) {
      const leaveEpoch = this.#settings.groupInstanceId ? -2 : -1;
      await this.#heartbeat(leaveEpoch).catch((error: unknown) => this.#log('debug', 'leaving the group failed', { error: String(error) }));
    }
    this.#ends.stop();
    await this.#cluster.close().catch(() => undefined);
    this.#closed(this);
  }

  // --- Membership --------------------------------------------------------------------------

  async #heartbeatLoop(): Promise<void> {
    let failures = 0;
    let failingSince: number | undefined;
    while (!this.#stopping) {
      try {
        const response = await this.#heartbeat(this.#epoch);
        failures = 0;
        failingSince = undefined;
        this.#lastHeartbeatAt = systemClock.now();
        if (response.heartbeatIntervalMs > 0) this.#heartbeatIntervalMs = response.heartbeatIntervalMs;
        if (response.assignment) await this.#assignmentReceived(response.assignment.topicPartitions);
      } catch (error) {
        if (this.#stopping) break;
        failures++;
        failingSince ??= systemClock.now();
        if (hasKafkaError(error, ...FATAL) || isUnsupportedApi(error)) {
          this.#fail(error);
          return;
        }
        if (hasKafkaError(error, ...FENCED)) {
          this.#log('warn', 'the group fenced this member (it missed heartbeats or was removed); its partitions are lost and it joins again', { error: String(error) });
          await this.#loseAll();
          this.#epoch = 0;
          continue;
        }
        if (!hasKafkaError(error, 'UNRELEASED_INSTANCE_ID')) this.#coordinator = undefined;
        // Partitions whose owner could not reach the coordinator for a session are another's by now.
        if (systemClock.now() - failingSince > this.#settings.sessionTimeoutMs && this.#owned.size > 0) {
          this.#log('warn', 'no heartbeat got through for a session timeout; the partitions are lost and the member joins again', { error: String(error) });
          await this.#loseAll();
          this.#epoch = 0;
        }
        this.#log('debug', 'a heartbeat failed', { error: String(error), failures });
        await sleep(backoff(failures - 1));
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#heartbeatIntervalMs);
        this.#wakeHeartbeat = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wakeHeartbeat = undefined;
    }
  }

  async #heartbeat(epoch: number): Promise<ConsumerGroupHeartbeatResponse> {
    const joining = epoch === 0;
    const owned = epoch < 0 ? null : joining ? [] : await this.#ownedByTopicId();
    const response = await consumerGroupHeartbeatV1.api.async(
      await this.#coordinatorConnection(),
      this.#groupId,
      this.#memberId,
      epoch,
      this.#settings.groupInstanceId ?? null,
      null,
      this.#settings.rebalanceTimeoutMs,
      epoch < 0 ? null : [...this.#topics],
      null,
      epoch < 0 ? null : 'range',
      // null: unchanged (a leave carries none).
      owned as Array<{ topicId: string; partitions: number[] }>,
    );
    if (response.memberId) this.#memberId = response.memberId;
    if (epoch >= 0) this.#epoch = response.memberEpoch;
    return response;
  }

  async #ownedByTopicId(): Promise<Array<{ topicId: string; partitions: number[] }>> {
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of this.#owned.values()) byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    if (byTopic.size === 0) return [];
    const metadata = await this.#cluster.metadata([...byTopic.keys()]);
    return [...byTopic].flatMap(([topic, partitions]) => {
      const topicId = metadata.topics.get(topic)?.id;
      return topicId ? [{ topicId, partitions }] : [];
    });
  }

  async #assignmentReceived(assigned: ReadonlyArray<{ topicId: string; partitions: number[] }>): Promise<void> {
    const target = new Map<string, TopicPartition>();
    for (const { topicId, partitions } of assigned) {
      const topic = await this.#cluster.topicName(topicId, this.#topics);
      if (topic === undefined) continue;
      for (const partition of partitions) target.set(partitionKey(topic, partition), { topic, partition });
    }
    this.#target = target;
    this.#reconciling = this.#reconciling.then(() => this.#reconcile()).catch((error: unknown) => this.#fail(error));
  }

  /** Brings what this member holds to the coordinator's newest assignment: revoke first, then assign, acknowledging each. */
  async #reconcile(): Promise<void> {
    const target = this.#target;
    if (!target || this.#stopping) return;
    this.#target = undefined;
    const revoked = [...this.#owned].filter(([key]) => !target.has(key)).map(([, tp]) => tp);
    if (revoked.length > 0) {
      await this.#revoke(revoked, { lost: false });
      this.#wakeHeartbeat?.();
    }
    const added = [...target].filter(([key]) => !this.#owned.has(key)).map(([, tp]) => tp);
    if (added.length > 0 && !this.#stopping) {
      await this.#assign(added);
      this.#wakeHeartbeat?.();
    }
    // The coordinator may learn of a topic created just now a little later than of the others: the
    // first assignment counts once it has partitions of every topic (or after FIRST_ASSIGNMENT_WAIT_MS).
    const topics = new Set([...target.values()].map(({ topic }) => topic));
    if (this.#topics.every((topic) => topics.has(topic))) this.#firstAssignment?.resolve();
  }

  /** Resolves once no assignment is being taken by the app. */
  #assigning: Promise<void> = Promise.resolve();

  #assign(partitions: readonly TopicPartition[]): Promise<void> {
    const assigning = this.#takeAssignment(partitions);
    this.#assigning = assigning.catch(() => undefined);
    return assigning;
  }

  async #takeAssignment(partitions: readonly TopicPartition[]): Promise<void> {
    for (const tp of partitions) this.#owned.set(partitionKey(tp.topic, tp.partition), tp);
    const given = (await this.#listener.onAssign(partitions)) ?? [];
    const positions = new Map(given.map((position) => [partitionKey(position.topic, position.partition), position.offset]));
    const missing = partitions.filter(({ topic, partition }) => !positions.has(partitionKey(topic, partition)));
    if (missing.length > 0) {
      const committed = await this.#committedOffsets(missing);
      const unknown = missing.filter(({ topic, partition }) => !committed.has(partitionKey(topic, partition)));
      // A group without committed offsets starts at the beginning, like the embedded broker.
      const earliest = unknown.length > 0 ? await this.#retrying('reading where partitions start', () => this.#cluster.listOffsets(unknown, 'earliest')) : new Map<string, number>();
      for (const { topic, partition } of missing) {
        const key = partitionKey(topic, partition);
        positions.set(key, committed.get(key) ?? earliest.get(key) ?? 0);
      }
    }
    for (const tp of partitions) {
      const key = partitionKey(tp.topic, tp.partition);
      if (!this.#owned.has(key)) continue;
      const position = positions.get(key)!;
      this.#delivering.set(key, { tp, position, seeks: 0 });
      this.#ends.assigned(tp);
      this.#ends.moved(tp, position);
    }
    this.#log('debug', 'partitions assigned', { partitions: names(partitions), epoch: this.#epoch });
    this.#wakeFetch?.();
  }

  /** Stops delivering `partitions`, lets a delivery in flight finish, and has the listener revoke them. */
  async #revoke(partitions: readonly TopicPartition[], { lost }: { lost: boolean }): Promise<void> {
    for (const { topic, partition } of partitions) {
      const key = partitionKey(topic, partition);
      this.#delivering.delete(key);
      this.#ends.released({ topic, partition });
      if (lost) this.#owned.delete(key);
    }
    await this.#delivery.catch(() => undefined);
    try {
      await this.#listener.onRevoke(partitions);
    } finally {
      for (const { topic, partition } of partitions) {
        const key = partitionKey(topic, partition);
        this.#owned.delete(key);
        this.#lastCommitted.delete(key);
      }
      this.#log('debug', lost ? 'partitions lost' : 'partitions revoked', { partitions: names(partitions) });
    }
  }

  async #loseAll(): Promise<void> {
    this.#target = undefined;
    await this.#reconciling.catch(() => undefined);
    const held = [...this.#owned.values()];
    if (held.length > 0) await this.#revoke(held, { lost: true }).catch((error: unknown) => this.#log('warn', 'revoking lost partitions failed', { error: String(error) }));
  }

  #fail(error: unknown): void {
    const failure = transportError(
      isUnsupportedApi(error) || hasKafkaError(error, 'UNSUPPORTED_VERSION')
        ? `joining consumer group ${this.#groupId}: the broker does not speak the consumer group protocol of KIP-848 (Kafka 4.0 or later is needed)`
        : `the member of consumer group ${this.#groupId} cannot go on`,
      error,
    );
    if (this.#firstAssignment) {
      this.#firstAssignment.reject(failure);
      return;
    }
    if (this.#stopping) return;
    this.#log('error', 'the group member stops', { error: String(error) });
    void this.#shutDown({ revoke: false });
    this.#listener.onFatal?.(failure);
  }

  #coordinatorConnection(): Promise<Connection> {
    const connection = (this.#coordinator ??= this.#cluster.groupCoordinator(this.#groupId));
    connection.catch(() => {
      if (this.#coordinator === connection) this.#coordinator = undefined;
    });
    return connection;
  }

  async #committedOffsets(partitions: readonly TopicPartition[]): Promise<Map<string, number>> {
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of partitions) byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    const request = [{ groupId: this.#groupId, memberId: null, memberEpoch: -1, topics: [...byTopic].map(([name, partitionIndexes]) => ({ name, partitionIndexes })) }];
    return this.#retrying(`reading the committed offsets of group ${this.#groupId}`, async () => {
      // requireStable: offsets of a transaction still open are waited for (UNSTABLE_OFFSET_COMMIT, retried).
      const response = await offsetFetchV9.api.async(await this.#coordinatorConnection(), request, true);
      const offsets = new Map<string, number>();
      for (const group of response.groups) {
        for (const topic of group.topics) {
          for (const entry of topic.partitions) if (entry.errorCode === 0 && entry.committedOffset >= 0n) offsets.set(partitionKey(topic.name, entry.partitionIndex), Number(entry.committedOffset));
        }
      }
      return offsets;
    });
  }

  async #retrying<T>(what: string, operation: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await operation();
      } catch (error) {
        if (attempt >= 8 || !this.#retriable(error)) throw transportError(what, error);
        if (hasKafkaError(error, 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE')) this.#coordinator = undefined;
        await sleep(backoff(attempt));
      }
    }
  }

  #retriable(error: unknown): boolean {
    if (hasKafkaError(error, ...FATAL, ...FENCED)) return false;
    return !this.#stopping || this.#closing !== undefined;
  }

  async #partitionOffsets(topic: string): Promise<Array<{ partition: number; low: number; high: number }>> {
    const partitions = [...this.#delivering.values()].filter(({ tp }) => tp.topic === topic).map(({ tp }) => tp);
    if (partitions.length === 0) return [];
    const [low, high] = await Promise.all([this.#cluster.listOffsets(partitions, 'earliest'), this.#cluster.listOffsets(partitions, 'latest')]);
    return partitions.flatMap(({ partition }) => {
      const key = partitionKey(topic, partition);
      const [first, end] = [low.get(key), high.get(key)];
      return first === undefined || end === undefined ? [] : [{ partition, low: first, high: end }];
    });
  }

  // --- Records -----------------------------------------------------------------------------

  async #fetchLoop(): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      const partitions = [...this.#delivering.values()];
      if (partitions.length === 0) {
        await new Promise<void>((resolve) => (this.#wakeFetch = resolve));
        this.#wakeFetch = undefined;
        continue;
      }
      try {
        await this.#fetchOnce(partitions);
        failures = 0;
      } catch (error) {
        if (this.#stopping) break;
        failures++;
        this.#log(failures > 3 ? 'warn' : 'debug', 'a fetch failed; it is made again', { error: String(error), failures });
        await sleep(backoff(failures - 1));
      }
    }
  }

  /** One fetch from each leader of the delivered partitions, then their records, partition by partition. */
  async #fetchOnce(partitions: readonly Delivering[]): Promise<void> {
    const topics = [...new Set(partitions.map(({ tp }) => tp.topic))];
    const metadata = await this.#cluster.metadata(topics);
    const byLeader = new Map<number, Delivering[]>();
    for (const delivering of partitions) {
      const leader = metadata.topics.get(delivering.tp.topic)?.partitions[delivering.tp.partition]?.leader;
      if (leader === undefined || leader < 0) {
        await this.#cluster.metadata(topics, true);
        throw new EddyError('TRANSPORT_FAILED', `no leader for ${delivering.tp.topic}[${delivering.tp.partition}]`, { retriable: true });
      }
      byLeader.set(leader, [...(byLeader.get(leader) ?? []), delivering]);
    }
    const fetched = await Promise.all(
      [...byLeader].map(async ([leader, ofLeader]) => {
        const asked = ofLeader.map((delivering) => ({ delivering, seeks: delivering.seeks }));
        const byTopicId = new Map<string, Array<{ partition: number; currentLeaderEpoch: number; fetchOffset: bigint; lastFetchedEpoch: number; partitionMaxBytes: number }>>();
        for (const { delivering } of asked) {
          const topicId = metadata.topics.get(delivering.tp.topic)!.id;
          byTopicId.set(topicId, [
            ...(byTopicId.get(topicId) ?? []),
            { partition: delivering.tp.partition, currentLeaderEpoch: -1, fetchOffset: BigInt(delivering.position), lastFetchedEpoch: -1, partitionMaxBytes: this.#settings.maxBytesPerPartition },
          ]);
        }
        const request = [...byTopicId].map(([topicId, parts]) => ({ topicId, partitions: parts }));
        let response: FetchResponse;
        try {
          response = await fetchRaw.async(await this.#cluster.fetchConnection(leader), this.#settings.maxWaitTimeMs, 1, 50 * 1024 * 1024, FetchIsolationLevels.READ_COMMITTED, 0, -1, request, [], '');
        } catch (error) {
          const partial = responseOf<FetchResponse>(error);
          if (!partial || !Array.isArray(partial.responses)) throw error;
          response = partial;
        }
        return { asked, response };
      }),
    );
    const topicNames = new Map([...metadata.topics].map(([name, topic]) => [topic.id, name]));
    let stale = false;
    for (const { asked, response } of fetched) {
      for (const topic of response.responses) {
        const name = topicNames.get(topic.topicId);
        for (const result of topic.partitions) {
          const entry = asked.find(({ delivering }) => delivering.tp.topic === name && delivering.tp.partition === result.partitionIndex);
          if (!entry) continue;
          const { delivering, seeks } = entry;
          // Revoked or moved (seek) since it was asked for: drop what came.
          if (this.#stopping || this.#delivering.get(partitionKey(delivering.tp.topic, delivering.tp.partition)) !== delivering || delivering.seeks !== seeks) continue;
          if (result.errorCode !== 0) {
            stale ||= await this.#partitionError(delivering, result.errorCode);
            continue;
          }
          const delivery = this.#deliver(delivering, result);
          this.#delivery = delivery;
          await delivery;
        }
      }
    }
    if (stale) await this.#cluster.metadata(topics, true);
  }

  /** Handles a partition's fetch error; true when the cluster's metadata should be read again. */
  async #partitionError(delivering: Delivering, errorCode: number): Promise<boolean> {
    const { tp } = delivering;
    if (errorCode === OFFSET_OUT_OF_RANGE) {
      // Deleted by retention (or DeleteRecords) before it was read: go on from where the log starts now.
      const start = (await this.#cluster.listOffsets([tp], 'earliest')).get(partitionKey(tp.topic, tp.partition));
      if (start !== undefined && start > delivering.position) {
        this.#log('warn', 'records were deleted before they were read; reading on from where the partition starts now', { partition: `${tp.topic}[${tp.partition}]`, from: delivering.position, to: start });
        this.seek({ ...tp, offset: start });
      }
      return false;
    }
    this.#log('debug', 'a partition could not be fetched', { partition: `${tp.topic}[${tp.partition}]`, errorCode });
    return true;
  }

  /**
   * Hands a fetched partition's committed records to the listener, a slice at a time, and tells
   * it of offsets that hold nothing to deliver (transaction markers, aborted records).
   */
  async #deliver(delivering: Delivering, result: FetchedPartition): Promise<void> {
    const { tp } = delivering;
    const { records, next } = committedRecords(tp, result, delivering.position);
    for (let from = 0; from < records.length; from += DELIVERY_SLICE) {
      const slice = records.slice(from, from + DELIVERY_SLICE);
      const seeks = delivering.seeks;
      try {
        await this.#listener.onRecords(slice);
      } catch (error) {
        this.#log('warn', 'the app failed on a batch; it is delivered again', { partition: `${tp.topic}[${tp.partition}]`, offset: slice[0]!.offset, error: String(error) });
        await sleep(BACKOFF_MS[0]);
        return;
      }
      if (delivering.seeks !== seeks || this.#delivering.get(partitionKey(tp.topic, tp.partition)) !== delivering) return;
      delivering.position = slice[slice.length - 1]!.offset + 1;
      this.#ends.delivered(tp, delivering.position);
    }
    if (next > delivering.position) {
      const from = delivering.position;
      delivering.position = next;
      this.#ends.delivered(tp, next);
      await this.#listener.onSkipped?.({ topic: tp.topic, partition: tp.partition, from, to: next });
    }
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
    this.#settings.logger[level]({ component: 'eddy-kafka', group: this.#groupId, member: this.#memberId, ...fields }, message);
  }
}

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

/**
 * The records of a fetched partition a read_committed consumer delivers, from `position` on, and
 * the offset after the last fetched batch. Records of aborted transactions are dropped: the
 * broker lists the aborted transactions (producer, first offset) that the fetched range touches,
 * and each one's records run from its first offset to its producer's abort marker.
 */
export function committedRecords(tp: TopicPartition, result: FetchedPartition, position: number): { records: IncomingRecord[]; next: number } {
  const batches = result.records ?? [];
  const aborted = [...result.abortedTransactions].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : 1));
  const abortedProducers = new Set<bigint>();
  let nextAborted = 0;
  const records: IncomingRecord[] = [];
  let next = position;
  for (const batch of batches) {
    const first = batch.firstOffset;
    const last = first + batch.lastOffsetDelta;
    if (last + 1 > next) next = last + 1;
    while (nextAborted < aborted.length && Number(aborted[nextAborted]!.firstOffset) <= last) abortedProducers.add(aborted[nextAborted++]!.producerId);
    if (batch.attributes & CONTROL) {
      // A transaction marker: an abort (type 0 in the marker's key) ends that producer's aborted run.
      let abort = false;
      forEachRecord(batch, ({ key }) => (abort ||= key !== null && key.length >= 4 && key.readInt16BE(2) === 0));
      if (abort) abortedProducers.delete(batch.producerId);
      continue;
    }
    if (batch.attributes & TRANSACTIONAL && abortedProducers.has(batch.producerId)) continue;
    const logAppendTime = (batch.attributes & LOG_APPEND_TIME) !== 0;
    const { firstTimestamp, maxTimestamp } = batch;
    const { topic, partition } = tp;
    forEachRecord(batch, ({ offsetDelta, timestampDelta, key, value, headers }) => {
      const offset = first + offsetDelta;
      if (offset < position) return;
      records.push({
        topic,
        partition,
        offset,
        key,
        value,
        timestamp: logAppendTime ? maxTimestamp : firstTimestamp + timestampDelta,
        headers: headers === undefined ? emptyHeaders : headersOf(headers),
      });
    });
  }
  return { records, next };
}

/** Header values as text (names and values alternating); like Java's `Headers.lastHeader`, the last of a repeated name wins, and a header without a value is left out. */
function headersOf(headers: ReadonlyArray<Buffer | null>): Headers {
  let result: Record<string, string> | undefined;
  for (let index = 0; index + 1 < headers.length; index += 2) {
    const name = headers[index];
    const value = headers[index + 1];
    if (!name || !value) continue;
    (result ??= {})[name.toString('utf8')] = value.toString('utf8');
  }
  return result ?? emptyHeaders;
}

const names = (partitions: readonly TopicPartition[]) => partitions.map(({ topic, partition }) => `${topic}[${partition}]`).join(',');

const backoff = (attempt: number) => Math.min(BACKOFF_MS[1], BACKOFF_MS[0] * 2 ** attempt) * (0.8 + Math.random() * 0.4);

const isUnsupportedApi = (error: unknown) => typeof error === 'object' && error !== null && (error as { code?: string }).code === 'PLT_KFK_UNSUPPORTED_API';

