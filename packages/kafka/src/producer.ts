import { Buffer } from 'node:buffer';
import { EddyError, partitionKey, RecordsRejectedError, systemClock, type Headers, type OutgoingRecord, type RejectedRecord, type TopicPartitionOffset, type TransactionalProducer, type TransportProducer } from '@eddy/core';
import { addOffsetsToTxnV4, Producer, type ClusterMetadata } from '@platformatic/kafka';
import { clientOptions, retryDelayMs } from './cluster.js';
import { isFenced, isRetriable, recordRefusal, transportError } from './errors.js';
import type { KafkaSettings } from './options.js';
import { hasKafkaError, responseOf } from './protocol-errors.js';
import { encodeBatch, produceRaw, type PartitionBatch } from './produce-request.js';
import { refusalOf, type TopicLimits } from './topic-limits.js';

/** The limits of a topic, as far as they are known (see topic-limits.ts). */
export type LimitsOf = (topic: string) => Promise<TopicLimits>;

/** Who commits a transaction's consumer offsets: the app's member of the group, or the group's coordinator directly when none is here. */
export type TransactionalOffsetCommit = (transaction: TransactionIdentity, groupId: string, offsets: readonly TopicPartitionOffset[]) => Promise<void>;

/** What a TxnOffsetCommit names of the producer whose transaction it joins. */
export interface TransactionIdentity {
  readonly transactionalId: string;
  readonly producerId: bigint;
  readonly producerEpoch: number;
}

/** The client's producer: it registers the producer id (and transactional id) and runs transactions; records go through produce-request.ts. */
type EddyProducer = Producer;
type Transaction = Awaited<ReturnType<EddyProducer['beginTransaction']>>;

/**
 * An idempotent producer (acks from all in-sync replicas, sequence numbers per partition) that
 * never creates a topic: topics come from ensureTopics, and a typo must fail, not make a topic
 * with broker defaults. With a transactional id, a transactional one. Its id, epoch and
 * transactions are the client's; the records Eddy encodes and sends itself (produce-request.ts).
 */
function createProducer(settings: KafkaSettings, transactionalId?: string): EddyProducer {
  const options = clientOptions(settings, { retrying: true });
  // The client takes fewer than 2 retries of an idempotent producer to mean retrying forever.
  return new Producer({ ...options, retries: Math.max(2, options.retries), idempotent: true, autocreateTopics: false, ...(transactionalId === undefined ? {} : { transactionalId }) });
}

/**
 * Bytes of records per produce request. Kafka's default limit is 1 MiB per record batch (one per
 * partition per request); staying well below it keeps a large flush from failing as too large.
 */
const maxRequestBytes = 768 * 1024;

/** One `send` call waiting for its records to be acknowledged. */
interface PendingSend {
  readonly records: readonly OutgoingRecord[];
  /** The offset of the last record of this call in each partition (topic → partition → offset), filled in as requests succeed. */
  readonly lastOffsets: Map<string, Map<number, number>>;
  /** Records of this call refused for themselves (by the topic's limits, or by the broker). */
  readonly refused: RejectedRecord[];
  readonly resolve: (offsets: readonly TopicPartitionOffset[]) => void;
  readonly reject: (error: EddyError) => void;
}

/**
 * An idempotent @platformatic/kafka producer (acks from all in-sync replicas) behind Eddy's
 * producer contract.
 *
 * Tasks send concurrently, and an idempotent producer has one request in flight at a time.
 * Calls that arrive while a request is in flight are coalesced into the next one (split so no
 * request grows past {@link maxRequestBytes}), and each call still learns the offsets of its own
 * records: within one request the records of a partition get consecutive offsets from the
 * partition's base offset, in the order they were given.
 */
export class KafkaProducer implements TransportProducer {
  #producer: EddyProducer;
  /** Makes a fresh producer (a new producer id); undefined for transactional producers. */
  #replacement: (() => EddyProducer) | undefined;
  readonly #onClose: (producer: KafkaProducer) => void;
  readonly #limitsOf: LimitsOf;
  readonly #settings: KafkaSettings;
  /** The next sequence number per partition (idempotence), for the client producer's id and epoch. */
  #sequences = new Map<string, number>();
  #queue: PendingSend[] = [];
  #inFlight: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  protected constructor(producer: EddyProducer, settings: KafkaSettings, onClose: (producer: KafkaProducer) => void, limitsOf: LimitsOf) {
    this.#producer = producer;
    this.#settings = settings;
    this.#onClose = onClose;
    this.#limitsOf = limitsOf;
  }

  /** Connects a producer (and gets its producer id) before any send. */
  static async connect(settings: KafkaSettings, onClose: (producer: KafkaProducer) => void, limitsOf: LimitsOf): Promise<KafkaProducer> {
    const create = () => createProducer(settings);
    const producer = create();
    try {
      await producer.initIdempotentProducer({});
    } catch (error) {
      await producer.close().catch(() => undefined);
      throw transportError('connecting the producer', error);
    }
    const connected = new KafkaProducer(producer, settings, onClose, limitsOf);
    connected.#replacement = create;
    return connected;
  }

  /**
   * A request that failed may have been written by the broker all the same (its answer was
   * lost). The client then sends the next records with the sequence numbers of the lost ones,
   * which the broker would take for duplicates of what it holds and drop. A fresh producer id
   * starts clean; the failed records are sent again by the runtime, so the worst case is a
   * duplicate, never a loss.
   */
  async #replaceAfterFailure(): Promise<void> {
    if (!this.#replacement) return;
    const old = this.#producer;
    this.#producer = this.#replacement();
    this.#sequences = new Map();
    await old.close().catch(() => undefined);
  }

  /**
   * Writes records to their (explicit) partitions and resolves, once all are acknowledged, with
   * the offset of the last record written to each partition.
   */
  send(records: readonly OutgoingRecord[]): Promise<readonly TopicPartitionOffset[]> {
    if (this.#closing) return Promise.reject(new EddyError('TRANSPORT_FAILED', 'send: the producer is closed'));
    if (records.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.#queue.push({ records, lastOffsets: new Map(), refused: [], resolve, reject });
      this.#pump();
    });
  }

  /** Waits for the sends already made, then disconnects. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.idle();
      this.#onClose(this);
      await this.#producer.close().catch(() => undefined);
    })();
    return this.#closing;
  }

  /** The client's producer, for the transactional requests of a subclass. */
  protected get client(): EddyProducer {
    return this.#producer;
  }

  /** Resolves once no send is queued or in flight. */
  protected async idle(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
  }

  /**
   * Writes records (acks from every in-sync replica) and resolves with the base offset of each
   * partition's batch: one batch per partition, one request per leader. A partition that fails
   * with an error a retry may mend (a leader moving) goes again, with fresh metadata and the same
   * sequence numbers; any other failure rejects, and the sequence numbers of the whole call count
   * as unused, so a batch the broker wrote goes again unchanged and is known for a duplicate.
   */
  protected async produce(records: readonly OutgoingRecord[]): Promise<Map<string, number>> {
    const client = this.#producer;
    if (client.producerId === undefined) await client.initIdempotentProducer({});
    const producer = { producerId: client.producerId!, producerEpoch: client.producerEpoch!, transactional: this.transactionalIdOrNull !== null };
    const groups = new Map<string, { topic: string; partition: number; records: OutgoingRecord[] }>();
    for (const record of records) {
      const key = partitionKey(record.topic, record.partition);
      let group = groups.get(key);
      if (!group) groups.set(key, (group = { topic: record.topic, partition: record.partition, records: [] }));
      group.records.push(record);
    }
    const topics = [...new Set(records.map((record) => record.topic))];
    const sequencesBefore = new Map(this.#sequences);
    const offsets = new Map<string, number>();
    let pending = [...groups.entries()];
    try {
      for (let attempt = 1; ; attempt++) {
        const metadata = await client.metadata({ topics, autocreateTopics: false, forceUpdate: attempt > 1 });
        await this.joinTransaction(metadata, pending.map(([, { topic, partition }]) => ({ topic, partition })));
        const byLeader = new Map<number, Array<[string, { topic: string; partition: number; records: OutgoingRecord[] }]>>();
        for (const entry of pending) {
          const leader = metadata.topics.get(entry[1].topic)?.partitions[entry[1].partition]?.leader;
          if (leader === undefined || leader < 0) throw new EddyError('TRANSPORT_FAILED', `${entry[1].topic}[${entry[1].partition}] has no leader`, { retriable: true });
          let ofLeader = byLeader.get(leader);
          if (!ofLeader) byLeader.set(leader, (ofLeader = []));
          ofLeader.push(entry);
        }
        const failed: typeof pending = [];
        let failure: unknown;
        await Promise.all(
          [...byLeader].map(async ([leader, entries]) => {
            const batches: PartitionBatch[] = entries.map(([key, { topic, partition, records: ofPartition }]) => ({ topic, partition, batch: encodeBatch(ofPartition, producer, this.#sequences.get(key) ?? 0) }));
            let response;
            try {
              const broker = metadata.brokers.get(leader);
              if (!broker) throw new EddyError('TRANSPORT_FAILED', `broker ${leader} is not in the cluster's metadata`, { retriable: true });
              response = await produceRaw.async(await client.connections.get(broker), this.transactionalIdOrNull, -1, 30_000, batches);
            } catch (error) {
              response = responseOf<Awaited<ReturnType<typeof produceRaw.async>>>(error);
              failure ??= error;
              if (!response) {
                failed.push(...entries);
                return;
              }
            }
            const sent = new Map(entries);
            for (const topicResponse of response.responses) {
              for (const { index, errorCode, baseOffset } of topicResponse.partitionResponses) {
                const key = partitionKey(topicResponse.name, index);
                const group = sent.get(key);
                if (!group) continue;
                const entry: (typeof entries)[number] = [key, group];
                if (errorCode !== 0) {
                  failed.push(entry);
                  continue;
                }
                offsets.set(key, Number(baseOffset));
                this.#sequences.set(key, (this.#sequences.get(key) ?? 0) + entry[1].records.length);
              }
            }
          }),
        );
        if (failed.length === 0) return offsets;
        if (attempt > this.#settings.retry.retries || !isRetriable(failure)) throw failure;
        pending = failed;
        await new Promise((resolve) => setTimeout(resolve, retryDelayMs(this.#settings, attempt)));
      }
    } catch (error) {
      this.#sequences = sequencesBefore;
      throw error;
    }
  }

  /** The transactional id produce requests name (null: not transactional). */
  protected get transactionalIdOrNull(): string | null {
    return null;
  }

  /** Under a transaction: registers the partitions with it before records go to them. */
  protected async joinTransaction(_metadata: ClusterMetadata, _partitions: ReadonlyArray<{ topic: string; partition: number }>): Promise<void> {}

  #pump(): void {
    if (this.#inFlight || this.#queue.length === 0) return;
    const pending = this.#queue;
    this.#queue = [];
    this.#inFlight = this.#sendAll(pending).finally(() => {
      this.#inFlight = undefined;
      this.#pump();
    });
  }

  async #sendAll(pending: readonly PendingSend[]): Promise<void> {
    try {
      const limits = new Map<string, TopicLimits>();
      for (const send of pending) for (const { topic } of send.records) if (!limits.has(topic)) limits.set(topic, await this.#limitsOf(topic));
      for (const entries of splitRequests(pending, limits, systemClock.now())) await this.#sendEntries(entries);
    } catch (error) {
      const failure = transportError(`producing to ${topicsOf(pending)}`, error);
      await this.#replaceAfterFailure();
      for (const send of pending) send.reject(failure);
      return;
    }
    for (const send of pending) {
      const offsets: TopicPartitionOffset[] = [];
      for (const [topic, partitions] of send.lastOffsets) for (const [partition, offset] of partitions) offsets.push({ topic, partition, offset });
      if (send.refused.length > 0) send.reject(new RecordsRejectedError(send.refused, offsets));
      else send.resolve(offsets);
    }
  }

  /**
   * One produce request. When the broker refuses records for themselves, the partitions of the
   * request go again one by one, and a partition's batch that is refused again is halved until
   * each refused record stands alone; everything else is written. The broker takes a batch of a
   * partition whole or not at all, and the client counts a failed request's sequence numbers as
   * unused: a partition's batch the broker had written goes again as it was, with the same
   * sequence numbers, and the broker answers it as the duplicate it is, with its offsets (the
   * idempotent producer's promise).
   */
  async #sendEntries(entries: readonly RequestEntry[]): Promise<void> {
    try {
      assignOffsets(entries, await this.produce(entries.map((entry) => entry.record)));
    } catch (error) {
      const reason = recordRefusal(error);
      if (reason === undefined || !this.isolatesRefusals) throw error;
      if (entries.length === 1) {
        const { record, owner } = entries[0]!;
        owner.refused.push({ record, reason, error: new EddyError('RECORD_REJECTED', `the broker refused it (${reason}): ${transportError('producing', error).message}`, { cause: error }) });
        return;
      }
      const byPartition = groupByPartition(entries);
      if (byPartition.length > 1) {
        for (const batch of byPartition) await this.#sendEntries(batch);
        return;
      }
      const middle = entries.length >> 1;
      await this.#sendEntries(entries.slice(0, middle));
      await this.#sendEntries(entries.slice(middle));
    }
  }

  /** Whether a record the broker refuses can be told from the others by sending again (not inside a transaction). */
  protected get isolatesRefusals(): boolean {
    return true;
  }
}

/** Attempts at registering a transactional id while its previous producer's transaction completes. */
const initAttempts = 8;

/**
 * A transactional producer (exactly-once), one per task: its transactional id is stable per
 * task, so the producer of a task's new owner fences the old one. Sends are coalesced like
 * {@link KafkaProducer}'s, into the open transaction.
 *
 * A failed transactional request leaves the producer broken for good (it is never registered
 * again, which would fence the task's new owner): the runtime replaces the task, and with it the
 * producer.
 */
export class KafkaTransactionalProducer extends KafkaProducer implements TransactionalProducer {
  readonly transactionalId: string;
  readonly #commitOffsets: TransactionalOffsetCommit;
  /** The client's transaction: opened on connect (to register the id), then by `begin`. */
  #transaction: Transaction | undefined;
  /** Whether `begin` opened the transaction (and `commit` or `abort` has not ended it yet). */
  #open = false;
  /** Whether the broker knows the open transaction (records or offsets joined it); one it does not know ends on the client only. */
  #joined = false;
  /** Groups whose offsets joined the open transaction (AddOffsetsToTxn). */
  readonly #groups = new Set<string>();
  #failure: EddyError | undefined;
  #closed = false;

  private constructor(
    producer: EddyProducer,
    settings: KafkaSettings,
    onClose: (producer: KafkaProducer) => void,
    limitsOf: LimitsOf,
    transactionalId: string,
    transaction: Transaction,
    commitOffsets: TransactionalOffsetCommit,
  ) {
    super(producer, settings, onClose, limitsOf);
    this.transactionalId = transactionalId;
    this.#transaction = transaction;
    this.#commitOffsets = commitOffsets;
  }

  /**
   * Connects a producer with this transactional id and registers the id with its transaction
   * coordinator (InitProducerId). That fences every older producer of the id: the coordinator
   * aborts its open transaction (and answers CONCURRENT_TRANSACTIONS until the abort is complete,
   * which is waited through), and its next send or commit fails. Only then may the new owner read
   * the task's committed state.
   */
  static async connectTransactional(
    settings: KafkaSettings,
    transactionalId: string,
    onClose: (producer: KafkaProducer) => void,
    limitsOf: LimitsOf,
    commitOffsets: TransactionalOffsetCommit,
  ): Promise<KafkaTransactionalProducer> {
    for (let attempt = 1; ; attempt++) {
      const producer = createProducer(settings, transactionalId);
      try {
        // The client registers the id with the first transaction; it stays open on the client
        // only (the broker knows a transaction once records or offsets join it). A new producer
        // names no earlier producer id and epoch (-1): the client's default (0, 0) claims to be
        // producer 0, which the coordinator of an id used before answers with PRODUCER_FENCED.
        const transaction = await producer.beginTransaction({ producerId: -1n, producerEpoch: -1 });
        return new KafkaTransactionalProducer(producer, settings, onClose, limitsOf, transactionalId, transaction, commitOffsets);
      } catch (error) {
        await producer.close().catch(() => undefined);
        if (attempt >= initAttempts || isFenced(error) || !isRetriable(error)) throw transactionError(`starting transactional producer ${transactionalId}`, transactionalId, error);
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  async begin(): Promise<void> {
    this.#usable('begin');
    if (this.#open) throw new EddyError('TRANSPORT_FAILED', `transactional producer ${this.transactionalId}: a transaction is open already`);
    if (!this.#transaction) {
      try {
        this.#transaction = await this.client.beginTransaction();
      } catch (error) {
        throw this.#broken('beginning a transaction', error);
      }
    }
    this.#open = true;
    this.#joined = false;
    this.#groups.clear();
  }

  /**
   * Commits consumer group offsets (the next offset to read) with the open transaction: the group
   * joins the transaction (AddOffsetsToTxn), then the offsets go to the group's coordinator
   * (TxnOffsetCommit), which makes them visible only if the transaction commits.
   */
  async sendOffsets(groupId: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.#current('sendOffsets');
    if (offsets.length === 0) return;
    const identity = this.#identity();
    try {
      if (!this.#groups.has(groupId)) {
        await this.#addOffsetsToTransaction(identity, groupId);
        this.#groups.add(groupId);
        this.#joined = true;
      }
      await this.#commitOffsets(identity, groupId, offsets);
    } catch (error) {
      throw this.#broken(`committing offsets of group ${groupId} in the transaction`, error);
    }
  }

  async commit(): Promise<void> {
    const transaction = this.#current('commit');
    await this.idle();
    if (this.#failure) throw this.#failure;
    try {
      if (this.#joined) await transaction.commit();
      else await transaction.cancel();
    } catch (error) {
      throw this.#broken('committing the transaction', error);
    } finally {
      this.#open = false;
      this.#transaction = undefined;
    }
  }

  async abort(): Promise<void> {
    if (!this.#open || !this.#transaction) return;
    const transaction = this.#transaction;
    this.#open = false;
    this.#transaction = undefined;
    await this.idle();
    try {
      if (this.#joined) await transaction.abort();
      else await transaction.cancel();
    } catch (error) {
      throw this.#broken('aborting the transaction', error);
    }
  }

  /** Aborts an open transaction (best effort), then disconnects. */
  override close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      const abort = this.#open ? this.abort().catch(() => undefined) : Promise.resolve();
      return abort.then(() => super.close());
    }
    return super.close();
  }

  /** A refused record dooms the transaction (and the task's work since its last commit): only the topic's limits, checked before sending, keep records out of it. */
  protected override get isolatesRefusals(): boolean {
    return false;
  }

  protected override produce(records: readonly OutgoingRecord[]): Promise<Map<string, number>> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.#open || !this.#transaction) {
      return Promise.reject(new EddyError('TRANSPORT_FAILED', `transactional producer ${this.transactionalId}: send outside a transaction`));
    }
    this.#joined = true;
    return super.produce(records).catch((error: unknown) => {
      throw this.#broken('producing in the transaction', error);
    });
  }

  protected override get transactionalIdOrNull(): string | null {
    return this.transactionalId;
  }

  /** AddPartitionsToTxn for the partitions the open transaction does not hold yet (the client's transaction keeps count). */
  protected override async joinTransaction(metadata: ClusterMetadata, partitions: ReadonlyArray<{ topic: string; partition: number }>): Promise<void> {
    await this.#transaction!.addPartitions(metadata, partitions.map(({ topic, partition }) => ({ topic, partition, value: Buffer.alloc(0) })));
  }

  #identity(): TransactionIdentity {
    const { producerId, producerEpoch } = this.client;
    if (producerId === undefined || producerEpoch === undefined) throw new EddyError('TRANSPORT_FAILED', `transactional producer ${this.transactionalId} has no producer id`);
    return { transactionalId: this.transactionalId, producerId, producerEpoch };
  }

  /** AddOffsetsToTxn at the transaction's coordinator, through the public protocol API (retried while the coordinator completes an earlier transaction). */
  async #addOffsetsToTransaction({ transactionalId, producerId, producerEpoch }: TransactionIdentity, groupId: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const metadata = this.client.currentMetadata ?? (await this.client.metadata({ topics: [] }));
        const broker = metadata.brokers.get(this.client.coordinatorId);
        if (!broker) throw new EddyError('TRANSPORT_FAILED', `the transaction coordinator ${this.client.coordinatorId} of ${transactionalId} is not in the cluster's metadata`, { retriable: true });
        await addOffsetsToTxnV4.api.async(await this.client.connections.get(broker), transactionalId, producerId, producerEpoch, groupId);
        return;
      } catch (error) {
        if (attempt >= initAttempts || !hasKafkaError(error, 'CONCURRENT_TRANSACTIONS', 'COORDINATOR_LOAD_IN_PROGRESS')) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** attempt));
      }
    }
  }

  #usable(what: string): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new EddyError('TRANSPORT_FAILED', `${what}: transactional producer ${this.transactionalId} is closed`);
  }

  #current(what: string): Transaction {
    this.#usable(what);
    if (!this.#open || !this.#transaction) throw new EddyError('TRANSPORT_FAILED', `${what}: transactional producer ${this.transactionalId} has no open transaction`);
    return this.#transaction;
  }

  /** A failed transactional request leaves the transaction (and the producer) unusable. */
  #broken(what: string, error: unknown): EddyError {
    const failure = transactionError(what, this.transactionalId, error);
    this.#failure ??= failure;
    return failure;
  }
}

/** A failure of a transactional producer; fencing says so, and is never retriable. */
function transactionError(what: string, transactionalId: string, error: unknown): EddyError {
  if (error instanceof EddyError) return error;
  const refusal = recordRefusal(error);
  if (refusal !== undefined) {
    return new EddyError('RECORD_REJECTED', `${what}: the broker refused a record of the transaction (${refusal}) of transactional id ${transactionalId}: ${transportError('producing', error).message}`, {
      cause: error,
      retriable: false,
    });
  }
  if (isFenced(error)) {
    return new EddyError('TRANSPORT_FAILED', `${what}: transactional id ${transactionalId} was fenced: a newer producer (the task's next owner) took it over`, {
      cause: error,
      retriable: false,
    });
  }
  return transportError(`${what} (transactional id ${transactionalId})`, error);
}

/** A record of a produce request, and the call it belongs to. */
interface RequestEntry {
  readonly record: OutgoingRecord;
  readonly owner: PendingSend;
}

/**
 * The records of the pending calls in produce requests, in order, none larger than
 * {@link maxRequestBytes} or than the batch a topic in it takes. A record its topic would refuse
 * (too large, a timestamp out of range) is not sent: its call learns why.
 */
function splitRequests(pending: readonly PendingSend[], limits: ReadonlyMap<string, TopicLimits>, now: number): RequestEntry[][] {
  const requests: RequestEntry[][] = [];
  let entries: RequestEntry[] = [];
  let bytes = 0;
  let cap = maxRequestBytes;
  for (const owner of pending) {
    for (const record of owner.records) {
      const topicLimits = limits.get(record.topic)!;
      const refusal = refusalOf(record, topicLimits, now);
      if (refusal) {
        owner.refused.push({ record, reason: refusal.reason, error: new EddyError('RECORD_REJECTED', `${record.topic} would refuse it (${refusal.reason}): ${refusal.message}`) });
        continue;
      }
      const size = approximateSize(record);
      const topicCap = Math.min(maxRequestBytes, topicLimits.maxMessageBytes ?? maxRequestBytes);
      if (bytes + size > Math.min(cap, topicCap) && entries.length > 0) {
        requests.push(entries);
        entries = [];
        bytes = 0;
        cap = maxRequestBytes;
      }
      entries.push({ record, owner });
      bytes += size;
      cap = Math.min(cap, topicCap);
    }
  }
  if (entries.length > 0) requests.push(entries);
  return requests;
}

/** A request's entries by topic partition, in their order within each. */
function groupByPartition(entries: readonly RequestEntry[]): RequestEntry[][] {
  const groups = new Map<string, RequestEntry[]>();
  for (const entry of entries) {
    const key = partitionKey(entry.record.topic, entry.record.partition);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push(entry);
  }
  return [...groups.values()];
}


function hasEntries(headers: Headers | undefined): headers is Headers {
  if (headers) for (const name in headers) if (Object.hasOwn(headers, name)) return true;
  return false;
}

/** Roughly the bytes a record takes in a produce request, to keep requests under the broker's limits. */
function approximateSize(record: OutgoingRecord): number {
  let size = 70 + (record.key?.byteLength ?? 0) + (record.value?.byteLength ?? 0);
  if (hasEntries(record.headers)) for (const [name, value] of Object.entries(record.headers)) size += 8 + Buffer.byteLength(name) + Buffer.byteLength(value);
  return size;
}

/** Gives each record its offset: its partition's base offset plus its position among that partition's records. */
function assignOffsets(entries: readonly RequestEntry[], baseOffsets: ReadonlyMap<string, number>): void {
  const next = new Map<string, Map<number, number>>();
  for (const { record } of entries) {
    if (next.get(record.topic)?.has(record.partition)) continue;
    const base = baseOffsets.get(partitionKey(record.topic, record.partition));
    if (base === undefined) continue;
    let partitions = next.get(record.topic);
    if (!partitions) next.set(record.topic, (partitions = new Map()));
    partitions.set(record.partition, base);
  }
  // Per record, no strings or objects: consecutive records mostly share their topic and caller.
  let topic: string | undefined;
  let owner: PendingSend | undefined;
  let offsets: Map<number, number> | undefined;
  let last: Map<number, number> | undefined;
  for (const entry of entries) {
    const { record } = entry;
    if (record.topic !== topic) {
      topic = record.topic;
      offsets = next.get(topic);
      owner = undefined;
    }
    if (entry.owner !== owner) {
      owner = entry.owner;
      last = owner.lastOffsets.get(topic);
      if (!last) owner.lastOffsets.set(topic, (last = new Map()));
    }
    const offset = offsets?.get(record.partition);
    if (offset === undefined) throw new EddyError('TRANSPORT_FAILED', `the broker acknowledged no offset for ${record.topic}[${record.partition}]`);
    offsets!.set(record.partition, offset + 1);
    last!.set(record.partition, offset);
  }
}

function topicsOf(pending: readonly PendingSend[]): string {
  return [...new Set(pending.flatMap((send) => send.records.map((record) => record.topic)))].join(', ');
}
