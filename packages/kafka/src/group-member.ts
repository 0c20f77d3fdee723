import { EddyError, partitionKey, type CaughtUp, type ConsumerListener, type IncomingRecord, type TopicPartition, type TopicPartitionOffset, type TransportConsumer } from '@eddy/core';
import kafkajs from 'kafkajs';
import type { Admin, Consumer, EachBatchPayload, IMemberAssignment, Kafka } from 'kafkajs';
import { copartitionedAssigner, holdJoins } from './assigner.js';
import { EndWatch } from './end-watch.js';
import { isMembershipError, transportError } from './errors.js';
import { deliverLazily } from './fetch-fixes.js';
import type { KafkaSettings } from './options.js';
import { toIncomingRecord } from './records.js';

/** Records handed to the runtime at a time, from a fetched batch (see `#onBatch`). */
const DELIVERY_SLICE = 1000;
/** How often the member asks where its partitions end, and after how long without an answer it may have missed records. */
const END_CHECK_INTERVAL_MS = 500;
const END_CHECK_BREAK_MS = 2_000;

/** What a group member needs from its transport. */
export interface GroupMemberHost {
  readonly kafka: Kafka;
  readonly settings: KafkaSettings;
  /** Runs an operation on the transport's admin client (retried on stale metadata). */
  withAdmin<T>(operation: (admin: Admin) => Promise<T>): Promise<T>;
  /** Called once the member has left the group. */
  closed(member: KafkaGroupMember): void;
}

/**
 * One member of a Kafka consumer group, run on a kafkajs consumer, behind Eddy's consumer
 * contract: assignment and revocation reach the listener in the order Kafka's rebalance protocol
 * promises a Java consumer, which kafkajs by itself does not.
 *
 * - Revoke before rejoin. kafkajs rejoins as soon as it learns of a rebalance, with no callback.
 *   Every (re)join of this member is held (see `holdJoins`) until the listener has revoked every
 *   partition the member holds: it finishes, flushes state and commits while the group waits, so
 *   the next owner restores from a complete changelog and resumes at the committed offset. This is
 *   Kafka's eager protocol, the one kafkajs speaks: each rebalance revokes everything, and a task
 *   that comes back to the same member replays only the changelog tail its local checkpoint lacks.
 * - Assign before records. The join's result arrives as kafkajs's GROUP_JOIN event, before its
 *   first fetch; `onAssign` runs then, and every batch waits for it, so a task exists (restored)
 *   before its first record.
 * - Lost partitions. When kafkajs crashes it has already left the group, and another member may
 *   own the partitions: they are revoked, but their offsets are no longer committed.
 * - One batch of one partition at a time, in offset order, and the next fetch only after the
 *   listener has taken the batch: a slow listener pauses the source. Heartbeats continue while it
 *   works.
 */
export class KafkaGroupMember implements TransportConsumer {
  readonly #host: GroupMemberHost;
  readonly #groupId: string;
  readonly #topics: readonly string[];
  readonly #listener: ConsumerListener;
  readonly #consumer: Consumer;
  /** Partitions whose records are delivered: assigned and not being revoked. */
  readonly #assigned = new Map<string, TopicPartition>();
  /** Partitions whose offsets this member may commit: assigned, or being revoked (not lost). */
  readonly #held = new Set<string>();
  /** The last offset this member committed per held partition; commits never move back. */
  readonly #lastCommitted = new Map<string, number>();
  /** The current assignment: resolves true once the listener has taken it, false if it failed. */
  #ready: Promise<boolean> = Promise.resolve(true);
  /** Revocations, one after another. */
  #revocations: Promise<void> = Promise.resolve();
  readonly #deliveries = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;
  readonly #joined: Deferred;
  /** Whether the listener has taken a first assignment (`subscribe` has resolved, or is about to). */
  #hasJoined = false;
  /** This member's id in the group, from its last join. */
  #memberId: string | undefined;
  /** Ends this member's claim on undecoded records (see fetch-fixes.ts `deliverLazily`). */
  readonly #endLazy: () => void;
  /** Whether the broker says this member has read everything of a partition (see `caughtUp`). */
  readonly #ends: EndWatch;

  constructor(host: GroupMemberHost, groupId: string, topics: readonly string[], listener: ConsumerListener) {
    this.#host = host;
    this.#groupId = groupId;
    this.#topics = topics;
    this.#listener = listener;
    this.#joined = deferred();
    const { settings } = host;
    this.#consumer = host.kafka.consumer({
      groupId,
      partitionAssigners: [copartitionedAssigner((cluster) => holdJoins(cluster, () => this.#beforeJoin()))],
      sessionTimeout: settings.sessionTimeoutMs,
      rebalanceTimeout: settings.rebalanceTimeoutMs,
      heartbeatInterval: settings.heartbeatIntervalMs,
      maxWaitTimeInMs: settings.maxWaitTimeMs,
      maxBytesPerPartition: settings.maxBytesPerPartition,
      allowAutoTopicCreation: false,
      // read_committed: records of aborted transactions (and of open ones) are never delivered.
      readUncommitted: false,
      retry: settings.retry,
    });
    // Records reach toIncomingRecord undecoded, a slice at a time (see #onBatch).
    this.#endLazy = deliverLazily(groupId);
    this.#ends = new EndWatch({
      readOffsets: async (topic) =>
        (await host.withAdmin((admin) => admin.fetchTopicOffsets(topic))).map(({ partition, low, high }) => ({ partition, low: Number(low), high: Number(high) })),
      intervalMs: END_CHECK_INTERVAL_MS,
      breakAfterMs: END_CHECK_BREAK_MS,
      log: (message, fields) => this.#log('debug', message, fields),
    });
  }

  /** Joins the group; resolves once the first assignment has been taken by the listener. */
  async start(): Promise<void> {
    const { GROUP_JOIN, CRASH, REBALANCING, START_BATCH_PROCESS } = this.#consumer.events;
    // A fetched batch of nothing but transaction markers or aborted records never reaches
    // eachBatch; kafkajs moves past it and announces it here.
    this.#consumer.on(START_BATCH_PROCESS, ({ payload }) => {
      if (payload.batchSize !== 0 || payload.firstOffset === null || payload.firstOffset === undefined) return;
      void this.#skipped(payload.topic, payload.partition, Number(payload.firstOffset), Number(payload.lastOffset) + 1);
    });
    this.#consumer.on(GROUP_JOIN, ({ payload }) => {
      this.#memberId = payload.memberId;
      this.#onJoin(payload.memberAssignment);
    });
    this.#consumer.on(CRASH, ({ payload }) => this.#onCrash(payload.error, payload.restart));
    this.#consumer.on(REBALANCING, () => this.#log('debug', 'the group is rebalancing'));
    try {
      await this.#consumer.connect();
      // A group without committed offsets starts at the beginning, like the embedded broker.
      await this.#consumer.subscribe({ topics: [...this.#topics], fromBeginning: true });
      await this.#consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (payload) => this.#onBatch(payload) });
      await this.#joined.promise;
    } catch (error) {
      this.#closing ??= this.#consumer.disconnect().catch(() => undefined);
      await this.#closing;
      this.#ends.stop();
      this.#endLazy();
      this.#host.closed(this);
      throw transportError(`joining consumer group ${this.#groupId}`, error);
    }
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const commits: TopicPartitionOffset[] = [];
    const notHeld: string[] = [];
    for (const position of offsets) {
      const key = partitionKey(position.topic, position.partition);
      if (!this.#held.has(key)) notHeld.push(`${position.topic}[${position.partition}]`);
      else if ((this.#lastCommitted.get(key) ?? -1) < position.offset) commits.push(position);
    }
    if (notHeld.length > 0) this.#log('debug', 'not committing offsets of partitions this member no longer owns', { partitions: notHeld });
    if (commits.length === 0) return;
    try {
      await this.#consumer.commitOffsets(commits.map(({ topic, partition, offset }) => ({ topic, partition, offset: String(offset) })));
    } catch (error) {
      // A member that missed a rebalance can no longer commit what it is revoking; the next owner
      // resumes from the last commit (records repeat, none are lost).
      const revoking = commits.every(({ topic, partition }) => !this.#assigned.has(partitionKey(topic, partition)));
      if (revoking && isMembershipError(error)) {
        this.#log('warn', 'partitions were reassigned before their offsets could be committed; the next owner resumes from the previous commit', { error: String(error) });
        return;
      }
      throw transportError(`committing offsets of group ${this.#groupId}`, error);
    }
    for (const { topic, partition, offset } of commits) {
      const key = partitionKey(topic, partition);
      if (this.#held.has(key)) this.#lastCommitted.set(key, Math.max(offset, this.#lastCommitted.get(key) ?? -1));
    }
  }

  async committed({ topic, partition }: TopicPartition): Promise<number | undefined> {
    try {
      const [offsets] = await this.#host.withAdmin((admin) => admin.fetchOffsets({ groupId: this.#groupId, topics: [topic] }));
      const offset = Number(offsets?.partitions.find((entry) => entry.partition === partition)?.offset ?? -1);
      return offset >= 0 ? offset : undefined;
    } catch (error) {
      throw transportError(`reading the committed offset of ${topic}[${partition}] in group ${this.#groupId}`, error);
    }
  }

  seek({ topic, partition, offset }: TopicPartitionOffset): void {
    if (!this.#assigned.has(partitionKey(topic, partition))) return;
    try {
      this.#consumer.seek({ topic, partition, offset: String(offset) });
    } catch (error) {
      throw transportError(`seeking ${topic}[${partition}] to ${offset}`, error);
    }
    this.#ends.moved({ topic, partition }, offset);
  }

  caughtUp(partition: TopicPartition): CaughtUp | undefined {
    return this.#ends.caughtUp(partition);
  }

  lag(partition: TopicPartition): number | undefined {
    return this.#ends.lag(partition);
  }

  async confirmOwnership(partitions: readonly TopicPartition[]): Promise<'owned' | 'revoked' | 'unsure'> {
    if (this.#closing || partitions.some(({ topic, partition }) => !this.#assigned.has(partitionKey(topic, partition)))) return 'revoked';
    const memberId = this.#memberId;
    if (memberId === undefined) return 'unsure';
    try {
      const { groups } = await this.#host.withAdmin((admin) => admin.describeGroups([this.#groupId]));
      const group = groups.find((candidate) => candidate.groupId === this.#groupId);
      const member = group?.state === 'Stable' ? group.members.find((candidate) => candidate.memberId === memberId) : undefined;
      if (!member) return 'unsure';
      const assignment = kafkajs.AssignerProtocol.MemberAssignment.decode(member.memberAssignment)?.assignment ?? {};
      const owned = partitions.every(({ topic, partition }) => assignment[topic]?.includes(partition));
      // The coordinator's view is newer than ours: this member learns of it with its next rebalance.
      return owned ? 'owned' : 'unsure';
    } catch (error) {
      this.#log('debug', 'describing the group failed', { error: String(error) });
      return 'unsure';
    }
  }

  /** Revokes every partition (the listener commits them), then leaves the group. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#revoke([...this.#assigned.values()], { lost: false });
      try {
        await this.#consumer.disconnect();
      } catch (error) {
        this.#log('warn', 'leaving the group failed; the broker drops the member after its session timeout', { error: String(error) });
      }
      this.#ends.stop();
      this.#endLazy();
      this.#host.closed(this);
    })();
    return this.#closing;
  }

  // --- rebalance -----------------------------------------------------------------------------

  /** Runs before each JoinGroup: the listener gives up every partition while the group waits. */
  #beforeJoin(): Promise<void> {
    const held = [...this.#assigned.values()];
    return held.length > 0 ? this.#revoke(held, { lost: false }) : this.#revocations;
  }

  /** kafkajs's GROUP_JOIN: this member's new assignment, before the first fetch for it. */
  #onJoin(memberAssignment: IMemberAssignment): void {
    // kafkajs emits this inside its join; a throw here would fail the join.
    try {
      this.#takeAssignment(memberAssignment);
    } catch (error) {
      this.#log('error', 'handling a group join failed', { error: String(error) });
      this.#ready = Promise.resolve(false);
    }
  }

  #takeAssignment(memberAssignment: IMemberAssignment): void {
    if (this.#closing) return;
    const next = new Map<string, TopicPartition>();
    for (const [topic, partitions] of Object.entries(memberAssignment)) {
      for (const partition of partitions) next.set(partitionKey(topic, partition), { topic, partition });
    }
    // Normally nothing is left: everything was revoked before the join. Whatever is left and not
    // assigned again may already belong to another member.
    const stale = [...this.#assigned].filter(([key]) => !next.has(key)).map(([, partition]) => partition);
    if (stale.length > 0) void this.#revoke(stale, { lost: true });
    const added = [...next].filter(([key]) => !this.#assigned.has(key));
    for (const [key, partition] of added) {
      this.#assigned.set(key, partition);
      this.#held.add(key);
      this.#lastCommitted.delete(key);
      this.#ends.assigned(partition);
    }
    // A partition paused when it was dropped (see #onBatch) fetches again once it is ours.
    if (added.length > 0) this.#consumer.resume(byTopic(added.map(([, partition]) => partition)));
    this.#log('info', 'partitions assigned', { partitions: [...next.values()].map(({ topic, partition }) => `${topic}[${partition}]`) });
    const revocations = this.#revocations;
    this.#ready = (async () => {
      await revocations;
      if (added.length === 0) return true;
      try {
        const partitions = added.map(([, partition]) => partition);
        const positions = await this.#listener.onAssign(partitions);
        await this.#seekAfterAssign(partitions, positions ?? []);
        return true;
      } catch (error) {
        // Their batches are refused from now on, which makes kafkajs restart the consumer and
        // the group assign them again.
        this.#log('error', 'the runtime failed to take its assigned partitions', { error: String(error) });
        this.#joined.reject(error);
        return false;
      }
    })();
    void this.#ready.then((ok) => {
      if (!ok) return;
      this.#hasJoined = true;
      this.#joined.resolve();
    });
  }

  /**
   * Where the new partitions start: their committed offsets as of now, or a later position the
   * listener returned (state it restored already covers those records). kafkajs reads committed
   * offsets on its first fetch, which may precede `onAssign`; under exactly-once the listener's
   * transactional producer has since completed or aborted the previous owner's last transaction
   * (fencing it), which may have committed offsets past what kafkajs read. Seeking before any
   * batch is delivered makes kafkajs fetch again from here.
   */
  async #seekAfterAssign(partitions: readonly TopicPartition[], positions: readonly TopicPartitionOffset[]): Promise<void> {
    const targets = new Map<string, TopicPartitionOffset>();
    for (const topic of new Set(partitions.map((partition) => partition.topic))) {
      const wanted = new Set(partitions.filter((partition) => partition.topic === topic).map((partition) => partition.partition));
      let committed: Array<{ partition: number; offset: string }>;
      try {
        [{ partitions: committed } = { partitions: [] }] = await this.#host.withAdmin((admin) => admin.fetchOffsets({ groupId: this.#groupId, topics: [topic] }));
      } catch (error) {
        throw transportError(`reading the committed offsets of ${topic} in group ${this.#groupId}`, error);
      }
      for (const { partition, offset } of committed) {
        if (wanted.has(partition) && Number(offset) >= 0) targets.set(partitionKey(topic, partition), { topic, partition, offset: Number(offset) });
      }
    }
    for (const position of positions) {
      const key = partitionKey(position.topic, position.partition);
      if ((targets.get(key)?.offset ?? -1) < position.offset) targets.set(key, position);
    }
    for (const [key, position] of targets) if (this.#assigned.has(key)) this.seek(position);
  }

  #onCrash(error: Error, restart: boolean): void {
    this.#log(restart ? 'warn' : 'error', restart ? 'the consumer failed and restarts' : 'the consumer failed and stops', { error: String(error) });
    // kafkajs has already left the group, so another member may own these partitions now.
    const held = [...this.#assigned.values()];
    if (held.length > 0) void this.#revoke(held, { lost: true });
    if (restart) return;
    this.#joined.reject(error);
    // After the first join, the app learns of it from here (before it, `start` fails with it).
    if (this.#hasJoined && !this.#closing) this.#listener.onFatal?.(transportError(`the consumer of group ${this.#groupId} failed and does not restart`, error));
  }

  /**
   * Takes partitions away: no batch of theirs is delivered from now on, deliveries in flight and
   * an assignment being taken finish first, then the listener revokes them. A lost partition's
   * offsets are not committed any more.
   */
  #revoke(partitions: readonly TopicPartition[], { lost }: { lost: boolean }): Promise<void> {
    const keys = partitions.map(({ topic, partition }) => partitionKey(topic, partition));
    for (const key of keys) {
      this.#assigned.delete(key);
      if (lost) this.#held.delete(key);
    }
    for (const partition of partitions) this.#ends.released(partition);
    const ready = this.#ready;
    this.#revocations = this.#revocations.then(async () => {
      if (partitions.length === 0) return;
      await ready;
      await Promise.allSettled([...this.#deliveries]);
      // The first assignment resolves `subscribe`; let the subscriber hold this consumer (it
      // commits through it while revoking) before revoking what it was just given.
      await new Promise((resolve) => setImmediate(resolve));
      try {
        await this.#listener.onRevoke(partitions);
        this.#log('info', lost ? 'lost partitions released' : 'partitions revoked', { partitions: partitions.map(({ topic, partition }) => `${topic}[${partition}]`) });
      } catch (error) {
        this.#log('error', 'the runtime failed to release revoked partitions', { error: String(error) });
      } finally {
        for (const key of keys) {
          // A partition assigned again meanwhile stays held.
          if (this.#assigned.has(key)) continue;
          this.#held.delete(key);
          this.#lastCommitted.delete(key);
        }
      }
    });
    return this.#revocations;
  }

  // --- records -------------------------------------------------------------------------------

  async #onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale, pause }: EachBatchPayload): Promise<void> {
    const key = partitionKey(batch.topic, batch.partition);
    const stopHeartbeats = keepAlive(heartbeat, this.#host.settings.heartbeatIntervalMs);
    try {
      const ready = await this.#ready;
      if (!isRunning() || isStale()) return; // stopping, or a seek moved the position: fetched again from there
      if (!this.#assigned.has(key)) {
        // Dropped (the member is closing): stop fetching it until it is assigned again.
        pause();
        return;
      }
      if (!ready) {
        throw new EddyError('TRANSPORT_FAILED', `group ${this.#groupId}: the runtime could not take ${batch.topic}[${batch.partition}]`, { retriable: true });
      }
      // In slices: what a slice decodes and hands on dies young, instead of a whole fetch's worth
      // (up to maxBytesPerPartition) living through collections while the batch is worked on.
      const { messages } = batch;
      for (let from = 0; from < messages.length; from += DELIVERY_SLICE) {
        // A seek (a rebuilt task) or a stop between slices: the rest is fetched again from there.
        if (from > 0 && (!isRunning() || isStale())) return;
        const records: IncomingRecord[] = [];
        for (let index = from; index < Math.min(from + DELIVERY_SLICE, messages.length); index++) records.push(toIncomingRecord(batch.topic, batch.partition, messages[index]!));
        const delivery = this.#listener.onRecords(records);
        this.#deliveries.add(delivery);
        try {
          await delivery;
        } catch (error) {
          // Retriable, so kafkajs fetches the batch again (at least once) instead of giving up.
          throw new EddyError('TRANSPORT_FAILED', `group ${this.#groupId}: processing a batch of ${batch.topic}[${batch.partition}] failed`, { cause: error, retriable: true });
        } finally {
          this.#deliveries.delete(delivery);
        }
        // Taken: should a later slice fail, kafkajs fetches again after this one, not from the
        // start of the batch (the runtime would apply this slice twice).
        if (from + DELIVERY_SLICE < messages.length) resolveOffset(messages[from + DELIVERY_SLICE - 1]!.offset);
        this.#ends.delivered(batch, Number(records[records.length - 1]!.offset) + 1);
      }
      // Control records (transaction markers) after the last message are skipped with it.
      const lastOffset = batch.lastOffset();
      const lastMessage = messages[messages.length - 1];
      if (lastMessage && Number(lastOffset) > Number(lastMessage.offset)) await this.#skipped(batch.topic, batch.partition, Number(lastMessage.offset) + 1, Number(lastOffset) + 1);
      resolveOffset(lastOffset);
      this.#ends.delivered(batch, Number(lastOffset) + 1);
    } finally {
      stopHeartbeats();
    }
  }

  /** Tells the runtime that offsets [from, to) of a partition hold nothing to process. */
  async #skipped(topic: string, partition: number, from: number, to: number): Promise<void> {
    if (!this.#assigned.has(partitionKey(topic, partition)) || !Number.isSafeInteger(from) || !Number.isSafeInteger(to)) return;
    this.#ends.delivered({ topic, partition }, to);
    try {
      await this.#listener.onSkipped?.({ topic, partition, from, to });
    } catch (error) {
      // Only the commit's position is at stake: the next records move it anyway.
      this.#log('warn', 'could not move a task past transaction markers', { topic, partition, error: String(error) });
    }
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
    this.#host.settings.logger[level]({ component: 'eddy-kafka', group: this.#groupId, ...fields }, message);
  }
}

/** Heartbeats every `intervalMs` while a batch is being processed; returns the stop function. */
function keepAlive(heartbeat: () => Promise<void>, intervalMs: number): () => void {
  // A rebalance that a heartbeat reports is picked up by kafkajs after the batch; nothing to do here.
  const timer = setInterval(() => void heartbeat().catch(() => undefined), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function byTopic(partitions: readonly TopicPartition[]): Array<{ topic: string; partitions: number[] }> {
  const grouped = new Map<string, number[]>();
  for (const { topic, partition } of partitions) {
    const list = grouped.get(topic);
    if (list) list.push(partition);
    else grouped.set(topic, [partition]);
  }
  return [...grouped].map(([topic, list]) => ({ topic, partitions: list }));
}

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((onResolve, onReject) => {
    resolve = onResolve;
    reject = onReject;
  });
  // Rejections after the first join are logged where they happen; nobody awaits them.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}
