import {
  partitionKey,
  systemClock,
  type CaughtUp,
  type ConsumerListener,
  type TopicPartition,
  type TopicPartitionOffset,
  type TransportConsumer,
} from '@eddy/core';
import { sleep } from './backoff.js';
import { Cluster } from './cluster.js';
import { EndWatch } from './end-watch.js';
import { transportError } from './errors.js';
import { FetchLoop } from './fetch-loop.js';
import { GroupOffsets } from './group-offsets.js';
import { FATAL, FENCED, isUnsupportedApi, Membership } from './membership.js';
import type { KafkaSettings } from './options.js';
import { hasKafkaError } from './protocol-errors.js';
import type { TransactionIdentity } from './transactional-producer.js';

/** How often the member asks where its partitions end, and after how long without an answer it may have missed records. */
const END_CHECK_INTERVAL_MS = 500;
const END_CHECK_BREAK_MS = 2_000;
/** How long `start` waits for an assignment with partitions of every topic (there may be more members than partitions). */
const FIRST_ASSIGNMENT_WAIT_MS = 5_000;

/** How a group member and its parts log: with the group and the member id. */
export type MemberLog = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

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
 *
 * This class reconciles assignments and runs the member's life; its parts are the heartbeats
 * (membership.ts), the fetches (fetch-loop.ts) and the offsets (group-offsets.ts).
 */
export class GroupMember implements TransportConsumer {
  readonly #settings: KafkaSettings;
  readonly #groupId: string;
  readonly #topics: readonly string[];
  readonly #listener: ConsumerListener;
  readonly #cluster: Cluster;
  readonly #closed: (member: GroupMember) => void;
  readonly #ends: EndWatch;
  readonly #membership: Membership;
  readonly #fetch: FetchLoop;
  readonly #offsets: GroupOffsets;

  /** Partitions the coordinator knows this member holds (sent with each heartbeat). */
  readonly #owned = new Map<string, TopicPartition>();
  /** The newest assignment the coordinator gave, not yet reconciled. */
  #target: Map<string, TopicPartition> | undefined;
  #reconciling: Promise<void> = Promise.resolve();
  /** Resolves once no assignment is being taken by the app. */
  #assigning: Promise<void> = Promise.resolve();
  #stopping = false;
  #closing: Promise<void> | undefined;
  #firstAssignment: { resolve: () => void; reject: (error: unknown) => void } | undefined;

  constructor(settings: KafkaSettings, groupId: string, topics: readonly string[], listener: ConsumerListener, closed: (member: GroupMember) => void) {
    this.#settings = settings;
    this.#groupId = groupId;
    this.#topics = topics;
    this.#listener = listener;
    this.#closed = closed;
    this.#cluster = new Cluster(settings, 'consumer', groupId);
    const log: MemberLog = (level, message, fields) => this.#log(level, message, fields);
    const stopping = () => this.#stopping;
    this.#ends = new EndWatch({
      readOffsets: (topic) => this.#partitionOffsets(topic),
      intervalMs: END_CHECK_INTERVAL_MS,
      breakAfterMs: END_CHECK_BREAK_MS,
      log: (message, fields) => this.#log('debug', message, fields),
    });
    this.#membership = new Membership({
      settings,
      groupId,
      topics,
      cluster: this.#cluster,
      owned: this.#owned,
      stopping,
      assignmentReceived: (assigned) => this.#assignmentReceived(assigned),
      loseAll: () => this.#loseAll(),
      fail: (error) => this.#fail(error),
      log,
    });
    this.#fetch = new FetchLoop({ settings, cluster: this.#cluster, listener, ends: this.#ends, stopping, log });
    this.#offsets = new GroupOffsets({ settings, groupId, cluster: this.#cluster, membership: this.#membership, owned: this.#owned, retriable: (error) => this.#retriable(error), log });
  }

  /** The group this member belongs to. */
  get groupId(): string {
    return this.#groupId;
  }

  /** Joins the group; resolves once the listener has taken a first assignment (or none came for a while). */
  async start(): Promise<void> {
    const first = new Promise<void>((resolve, reject) => (this.#firstAssignment = { resolve, reject }));
    // Past the wait, start resolves once the app has taken what it was given so far (restored it):
    // a member may have no partitions of some topic, or none at all, in a group larger than them.
    const waited = setTimeout(() => void this.#assigning.then(() => this.#firstAssignment?.resolve()), FIRST_ASSIGNMENT_WAIT_MS);
    void this.#membership.run();
    void this.#fetch.run();
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

  commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    return this.#offsets.commit(offsets);
  }

  /** Commits offsets with a producer's open transaction, as this member (see {@link GroupOffsets.commitTransactional}). */
  commitTransactional(transaction: TransactionIdentity, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    return this.#offsets.commitTransactional(transaction, offsets);
  }

  async committed({ topic, partition }: TopicPartition): Promise<number | undefined> {
    return (await this.#offsets.committed([{ topic, partition }])).get(partitionKey(topic, partition));
  }

  seek(position: TopicPartitionOffset): void {
    this.#fetch.seek(position);
  }

  caughtUp(partition: TopicPartition): CaughtUp | undefined {
    return this.#ends.caughtUp(partition);
  }

  lag(partition: TopicPartition): number | undefined {
    return this.#ends.lag(partition);
  }

  troubles(): readonly string[] {
    return this.#stopping ? [] : this.#membership.troubles(systemClock.now());
  }

  async confirmOwnership(partitions: readonly TopicPartition[]): Promise<'owned' | 'revoked' | 'unsure'> {
    if (this.#stopping || partitions.some(({ topic, partition }) => !this.#owned.has(partitionKey(topic, partition)))) return 'revoked';
    // A heartbeat answered since the question was asked, with no change pending: the coordinator counts these partitions as ours.
    const asked = systemClock.now();
    this.#membership.wake();
    for (let waited = 0; waited < this.#settings.sessionTimeoutMs; waited += 100) {
      if (this.#membership.lastHeartbeatAt >= asked) break;
      await sleep(100);
    }
    if (this.#membership.lastHeartbeatAt < asked || this.#target) return 'unsure';
    return partitions.every(({ topic, partition }) => this.#owned.has(partitionKey(topic, partition))) ? 'owned' : 'revoked';
  }

  /** Revokes every partition (the listener commits them), then leaves the group. */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown({ revoke: true });
    return this.#closing;
  }

  async #shutDown({ revoke }: { revoke: boolean }): Promise<void> {
    this.#stopping = true;
    this.#fetch.wake();
    await this.#reconciling.catch(() => undefined);
    if (revoke && this.#owned.size > 0) await this.#revoke([...this.#owned.values()], { lost: false }).catch(() => undefined);
    this.#membership.wake();
    await this.#membership.leave();
    this.#ends.stop();
    await this.#cluster.close().catch(() => undefined);
    this.#closed(this);
  }

  // --- Reconciliation ----------------------------------------------------------------------

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
      this.#membership.wake();
    }
    const added = [...target].filter(([key]) => !this.#owned.has(key)).map(([, tp]) => tp);
    if (added.length > 0 && !this.#stopping) {
      await this.#assign(added);
      this.#membership.wake();
    }
    // The coordinator may learn of a topic created just now a little later than of the others: the
    // first assignment counts once it has partitions of every topic (or after FIRST_ASSIGNMENT_WAIT_MS).
    const topics = new Set([...target.values()].map(({ topic }) => topic));
    if (this.#topics.every((topic) => topics.has(topic))) this.#firstAssignment?.resolve();
  }

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
    if (missing.length > 0) for (const [key, position] of await this.#offsets.startPositions(missing)) positions.set(key, position);
    for (const tp of partitions) {
      const key = partitionKey(tp.topic, tp.partition);
      if (!this.#owned.has(key)) continue;
      this.#fetch.startDelivering(tp, positions.get(key)!);
    }
    this.#log('debug', 'partitions assigned', { partitions: names(partitions), epoch: this.#membership.epoch });
    this.#fetch.wake();
  }

  /** Stops delivering `partitions`, lets a delivery in flight finish, and has the listener revoke them. */
  async #revoke(partitions: readonly TopicPartition[], { lost }: { lost: boolean }): Promise<void> {
    for (const tp of partitions) {
      this.#fetch.stopDelivering(tp);
      if (lost) this.#owned.delete(partitionKey(tp.topic, tp.partition));
    }
    await this.#fetch.deliveryFinished();
    try {
      await this.#listener.onRevoke(partitions);
    } finally {
      for (const { topic, partition } of partitions) {
        const key = partitionKey(topic, partition);
        this.#owned.delete(key);
        this.#offsets.released(key);
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

  // --- Failures ----------------------------------------------------------------------------

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

  /** Whether a failed request may go again: not after an error no retry mends, nor once the member stops on a failure (a close still retries). */
  #retriable(error: unknown): boolean {
    if (hasKafkaError(error, ...FATAL, ...FENCED)) return false;
    return !this.#stopping || this.#closing !== undefined;
  }

  async #partitionOffsets(topic: string): Promise<Array<{ partition: number; low: number; high: number }>> {
    const partitions = this.#fetch.partitionsOf(topic);
    if (partitions.length === 0) return [];
    const [low, high] = await Promise.all([this.#cluster.listOffsets(partitions, 'earliest'), this.#cluster.listOffsets(partitions, 'latest')]);
    return partitions.flatMap(({ partition }) => {
      const key = partitionKey(topic, partition);
      const [first, end] = [low.get(key), high.get(key)];
      return first === undefined || end === undefined ? [] : [{ partition, low: first, high: end }];
    });
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
    this.#settings.logger[level]({ component: 'eddy-kafka', group: this.#groupId, member: this.#membership.memberId, ...fields }, message);
  }
}

const names = (partitions: readonly TopicPartition[]) => partitions.map(({ topic, partition }) => `${topic}[${partition}]`).join(',');
