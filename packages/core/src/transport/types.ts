/**
 * The contract between Eddy's runtime and a log: the embedded memory broker implements it, and
 * `@eddy/kafka` implements it on @platformatic/kafka. Offsets are numbers (Kafka's int64 offsets stay below
 * 2^53 in practice).
 */

import type { EddyError } from '../errors.js';

/** Record headers: string values only, so they travel unchanged through any transport. */
export type Headers = Readonly<Record<string, string>>;

/** A record to produce. `partition` is chosen by the caller (Eddy partitions with murmur2). */
export interface OutgoingRecord {
  readonly topic: string;
  readonly partition: number;
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
  readonly timestamp: number;
  readonly headers?: Headers;
  /**
   * The key and value before serialization, for a transport that keeps records in process
   * ({@link Transport.keepsValues}); `value` bytes may then be null.
   */
  readonly decoded?: DecodedRecord;
}

/** A record's key and value as objects (and, for repartition records, where they came from). */
export interface DecodedRecord {
  readonly key: unknown;
  readonly value: unknown;
  /** The origin a repartition record carries: source partition, offset, index among its outputs. */
  readonly origin?: readonly [source: string, offset: number, index: number];
}

/** A record read from a topic partition. */
export interface IncomingRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
  readonly timestamp: number;
  readonly headers: Headers;
  /** Set when the producer handed the objects along (see {@link OutgoingRecord.decoded}). */
  readonly decoded?: DecodedRecord;
}

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/** A topic partition as a map key (`topic` NUL `partition`). */
export const partitionKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

export interface TopicPartitionOffset extends TopicPartition {
  /** The next offset to read (Kafka's committed-offset convention). */
  readonly offset: number;
}

/** How a topic is created when it does not exist yet. */
export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** Log compaction (changelogs). */
  readonly compacted?: boolean;
  /**
   * Keep records regardless of their age (repartition topics: their timestamps are event times,
   * which may be old; the app deletes their records once committed instead).
   */
  readonly unlimitedRetention?: boolean;
}

/** Sends records; `send` resolves once every record is acknowledged. */
export interface TransportProducer {
  /** Resolves with the offset of the last record written to each partition. */
  send(records: readonly OutgoingRecord[]): Promise<readonly TopicPartitionOffset[]>;
  close(): Promise<void>;
}

/**
 * A producer whose sends belong to a transaction, from `createProducer({ transactionalId })` on a
 * transport with transactions (`guarantee: 'exactly-once'`): the records and consumer offsets of a
 * transaction become visible to read_committed consumers together, at `commit`, or never.
 * Creating a producer fences every older producer with the same transactional id: their open
 * transaction is aborted and their next send or commit fails (an `EddyError`, not retriable).
 */
export interface TransactionalProducer extends TransportProducer {
  /** Opens a transaction; `send` and `sendOffsets` belong to it until `commit` or `abort`. */
  begin(): Promise<void>;
  /** Commits consumer group offsets (the next offset to read) with the open transaction. */
  sendOffsets(groupId: string, offsets: readonly TopicPartitionOffset[]): Promise<void>;
  /** Commits the open transaction once every send of it is acknowledged. */
  commit(): Promise<void>;
  /** Discards the open transaction's records and offsets. */
  abort(): Promise<void>;
}

/** What a consumer group member tells the runtime. */
export interface ConsumerListener {
  /**
   * Partitions newly assigned to this member; processing starts after this resolves, from the
   * committed offsets or, where the listener returns a later position for a partition, from there.
   * Committed offsets are read once this resolves, so they include a transaction that the
   * listener's new producer completed by fencing its previous owner.
   */
  onAssign(partitions: readonly TopicPartition[]): Promise<void | readonly TopicPartitionOffset[]>;
  /** Partitions taken away; the runtime finishes, commits and closes their work first. */
  onRevoke(partitions: readonly TopicPartition[]): Promise<void>;
  /**
   * The member cannot go on (its client gave up, and will not rejoin the group by itself): the
   * app stops and tells its host. Retriable trouble is not reported here; the transport rides it out.
   */
  onFatal?(error: EddyError): void;
  /** A batch of records of one partition, in offset order. */
  onRecords(records: readonly IncomingRecord[]): Promise<void>;
  /**
   * How the consumer delivers a topic's partitions on a backlog (see {@link Alignment});
   * undefined (or no function): each partition's batch whole, one after another.
   */
  alignment?(topic: string): Alignment | undefined;
  /**
   * Called after a delivery pass that gave records to two or more partitions of one alignment
   * group; the next pass waits for it. Resolves once what the pass's records produced is in the
   * log, so that the next pass's records come after it in the repartition topics (each task of an
   * exactly-once app writes through a producer of its own, whose sends would otherwise race).
   */
  afterStep?(): Promise<void>;
  /**
   * Whether this app has records on their way to a partition it reads, at or after `offset`: a
   * repartition topic that local tasks write, with sends in flight, or records written that may
   * not be readable yet (under exactly-once, until the writer commits). A partition delivered in
   * step whose fetch found it at its end holds its group back while this holds, as one not at its
   * end does: the others would run ahead of the records still coming to it.
   */
  writesPending?(partition: TopicPartitionOffset): boolean;
  /**
   * Offsets `from` (inclusive) to `to` (exclusive) of a partition hold nothing to deliver
   * (transaction markers, records of aborted transactions): a task whose position is `from` may
   * move it to `to`, so that its commits reach the end of the partition. Told after the records
   * before `from` were delivered; a position elsewhere (the task moved back) ignores it.
   * `deleted`: the log deleted the records there (retention, DeleteRecords) before this member
   * read them; they are lost to it, and the app says so.
   */
  onSkipped?(range: { readonly topic: string; readonly partition: number; readonly from: number; readonly to: number; readonly deleted?: boolean }): Promise<void>;
}

/**
 * Partitions delivered in step in event time on a backlog: in each delivery pass, of the
 * partitions of one `group` that have records waiting, each is given its records up to the
 * `horizon` of the smallest next timestamp among them, the rest waiting for a later pass. So
 * tasks that write one repartition topic from several partitions write it about in event-time
 * order, not one partition's whole backlog after another's.
 */
export interface Alignment {
  readonly group: number;
  /**
   * The largest timestamp a pass may deliver when the smallest next timestamp among the group's
   * partitions is `first`: what cannot make the records still waiting late downstream. At least `first`.
   */
  horizon(first: number): number;
  /** A record's event time. */
  timestamp(record: IncomingRecord): number;
}

/**
 * A member at the end of a partition, by the log's word (see {@link TransportConsumer.caughtUp}).
 * Durations, not times, so that a transport on the system clock and a runtime on a virtual one agree.
 */
export interface CaughtUp {
  /** For how long, up to now, every answer of the log has found the member at the end. */
  readonly forMs: number;
  /** How long ago the log last answered so (0: it answers in process, at once). */
  readonly confirmedAgoMs: number;
}

/** A member of a consumer group. */
export interface TransportConsumer {
  commit(offsets: readonly TopicPartitionOffset[]): Promise<void>;
  /**
   * The group's committed offset for a partition, if any. Under exactly-once, read once the
   * partition's task has its producer (which ended its id's earlier transactions): offsets a
   * transaction left pending for good (a hanging transaction) are then skipped for the last stable ones.
   */
  committed(partition: TopicPartition): Promise<number | undefined>;
  /**
   * Whether the log itself says this member has read everything of an assigned partition, and for
   * how long it has said so without a break. Undefined when it is behind, has just been assigned
   * or moved, or the log has not answered lately (fetches failing, broker unreachable): a task is
   * taken for idle only on the log's word, never for a gap in delivery.
   */
  caughtUp(partition: TopicPartition): CaughtUp | undefined;
  /** Records of an assigned partition not yet delivered (log end minus position), if known. */
  lag?(partition: TopicPartition): number | undefined;
  /** Moves the read position of an assigned partition (used to skip what restored state covers). */
  seek(position: TopicPartitionOffset): void;
  /**
   * Whether this member still owns partitions, as far as the group can tell now: `owned` (the
   * group's coordinator lists this member with them, the group stable), `revoked` (this member
   * has given them up), or `unsure` (a rebalance is under way, the coordinator cannot be
   * reached, or it no longer lists this member, which learns that with its next heartbeat). A
   * transport without groups leaves this out: its assignments are always its own.
   */
  confirmOwnership?(partitions: readonly TopicPartition[]): Promise<'owned' | 'revoked' | 'unsure'>;
  /**
   * What keeps this member from doing its part now, each a sentence for `app.health()`, which
   * reports the app `degraded` while there is one: say, the group refuses its static id.
   */
  troubles?(): readonly string[];
  close(): Promise<void>;
}

/** A connection to a log. */
export interface Transport {
  /** `memory` or `kafka`, for logs and describe(). */
  readonly kind: string;
  /** The transport can run the commit protocol atomically (`guarantee: 'exactly-once'`). */
  readonly exactlyOnce?: boolean;
  /**
   * True for an in-process transport that can hand objects from producer to consumer, so that
   * internal topics (repartition) skip encoding values and decoding them again.
   */
  readonly keepsValues?: boolean;
  /**
   * Whether a task may hand a record bound for a repartition topic's partition straight to the
   * task of this process that reads that partition (local hand-off; default true). False sends
   * every such record through its topic, as between processes.
   */
  readonly localHandOff?: boolean;
  /**
   * Whether its consumers honour `ConsumerListener.alignment`: only then is
   * a re-keying keyBy's backlog delivered in step, and its local hand-off given up for it.
   */
  readonly stepsBacklogs?: boolean;
  /** Partitions for topics Eddy creates implicitly (outputs, and sources on the embedded broker); undefined: such topics must exist. */
  readonly defaultPartitions?: number;
  connect(): Promise<void>;
  /** Creates the topics that do not exist; leaves existing ones as they are. */
  ensureTopics(specs: readonly TopicSpec[]): Promise<void>;
  /** The partition count of a topic, or undefined if it does not exist. */
  partitionCount(topic: string): Promise<number | undefined>;
  /**
   * A producer. With a `transactionalId`, a transport with transactions gives a
   * {@link TransactionalProducer}; one whose log cannot be torn by a crash (the embedded broker)
   * may give a plain producer, and the runtime then commits as under at-least-once.
   */
  createProducer(options?: { transactionalId?: string }): Promise<TransportProducer>;
  /**
   * Joins `groupId` reading `topics`; the listener is called for assignment and records. Only
   * committed records are delivered (read_committed): aborted transactions are skipped.
   */
  subscribe(groupId: string, topics: readonly string[], listener: ConsumerListener): Promise<TransportConsumer>;
  /** The offset after the last record of a partition. */
  endOffset(partition: TopicPartition): Promise<number>;
  /**
   * Deletes a partition's records before `offset` (Kafka's DeleteRecords). The runtime calls it for
   * repartition topics once their records are committed, so they do not grow without bound.
   */
  deleteRecords?(partition: TopicPartition, offset: number): Promise<void>;
  /** Reads a partition's committed records from `fromOffset` up to the end offset at call time, in batches. */
  readPartition(partition: TopicPartition, fromOffset: number): AsyncIterable<readonly IncomingRecord[]>;
  close(): Promise<void>;
  /**
   * Records its log held but could not read back, since it was created (a damaged chunk of the
   * embedded broker's log on disk, skipped with a warning): lost to the readers that needed them.
   */
  recordsLostToDamage?(): number;
}
