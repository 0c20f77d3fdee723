import { EddyError, partitionKey, RecordsRejectedError, systemClock, type OutgoingRecord, type RejectedRecord, type TopicPartitionOffset, type TransactionalProducer, type TransportProducer } from '@eddy/core';
import type { ICustomPartitioner, Kafka, Message, Producer, RecordMetadata, TopicMessages, Transaction } from 'kafkajs';
import { isFenced, recordRefusal, transportError } from './errors.js';
import type { KafkaSettings } from './options.js';
import { approximateSize, toKafkaMessage } from './records.js';
import { refusalOf, type TopicLimits } from './topic-limits.js';

/** The limits of a topic, as far as they are known (see topic-limits.ts). */
export type LimitsOf = (topic: string) => Promise<TopicLimits>;

/**
 * Every record the runtime sends names its partition (murmur2 of the key, chosen in the sink), so
 * the producer's partitioner only passes it on. kafkajs's own partitioners do the same for such
 * records, but first filter the partition list per record.
 */
const explicitPartition: ICustomPartitioner = () => ({ message }) => {
  if (typeof message.partition !== 'number') throw new EddyError('TRANSPORT_FAILED', 'a record reached the producer without a partition');
  return message.partition;
};

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
 * An idempotent kafkajs producer (acks from all in-sync replicas) behind Eddy's producer contract.
 *
 * Tasks send concurrently; kafkajs would serialize their requests one round trip each. Instead,
 * calls that arrive while a request is in flight are coalesced into the next one (split so no
 * request grows past {@link maxRequestBytes}), and each call still learns the offsets of its own
 * records: within one request the records of a partition get consecutive offsets from the
 * partition's base offset, in the order they were given.
 */
export class KafkaProducer implements TransportProducer {
  #producer: Producer;
  /** Makes a fresh kafkajs producer (a new producer id); undefined for transactional producers. */
  #replacement: (() => Producer) | undefined;
  readonly #onClose: (producer: KafkaProducer) => void;
  readonly #limitsOf: LimitsOf;
  #queue: PendingSend[] = [];
  #inFlight: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  protected constructor(producer: Producer, onClose: (producer: KafkaProducer) => void, limitsOf: LimitsOf) {
    this.#producer = producer;
    this.#onClose = onClose;
    this.#limitsOf = limitsOf;
  }

  /** Connects a producer (and gets its producer id) before any send. */
  static async connect(kafka: Kafka, settings: KafkaSettings, onClose: (producer: KafkaProducer) => void, limitsOf: LimitsOf): Promise<KafkaProducer> {
    const create = () => kafka.producer({
      // Broker-side deduplication of retried requests; kafkajs then sends with acks from all replicas.
      idempotent: true,
      createPartitioner: explicitPartition,
      // Topics come from ensureTopics; a typo must fail, not create a topic with broker defaults.
      allowAutoTopicCreation: false,
      // kafkajs refuses an idempotent producer without retries.
      retry: { ...settings.retry, retries: Math.max(1, settings.retry.retries ?? 1) },
    });
    const producer = create();
    try {
      await producer.connect();
    } catch (error) {
      throw transportError('connecting the producer', error);
    }
    const connected = new KafkaProducer(producer, onClose, limitsOf);
    connected.#replacement = create;
    return connected;
  }

  /**
   * After a failed request kafkajs may have rolled back sequence numbers of a request the broker
   * did write: the same producer would then be refused (out of order) or deduplicated into
   * silence. A fresh producer id starts clean; the failed records are sent again by the runtime,
   * so the worst case is a duplicate, never a loss.
   */
  async #replaceAfterFailure(): Promise<void> {
    if (!this.#replacement) return;
    const old = this.#producer;
    const fresh = this.#replacement();
    await old.disconnect().catch(() => undefined);
    await fresh.connect().catch(() => undefined);
    this.#producer = fresh;
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
      await this.#producer.disconnect().catch(() => undefined);
    })();
    return this.#closing;
  }

  /** Resolves once no send is queued or in flight. */
  protected async idle(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
  }

  /** One produce request (all its records acknowledged by every in-sync replica). */
  protected sendBatch(topicMessages: TopicMessages[]): Promise<RecordMetadata[]> {
    return this.#producer.sendBatch({ acks: -1, topicMessages });
  }

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
   * partition whole or not at all, and kafkajs has rolled back the sequence numbers of the failed
   * request: a partition's batch the broker had written goes again as it was, and the broker knows
   * it for a duplicate (the idempotent producer's promise). Partitions another broker had written
   * (their requests went through) are written again: at least once.
   */
  async #sendEntries(entries: readonly RequestEntry[]): Promise<void> {
    try {
      assignOffsets(entries, await this.sendBatch(toTopicMessages(entries)));
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

/**
 * A transactional kafkajs producer (exactly-once), one per task: its transactional id is stable
 * per task, so the producer of a task's new owner fences the old one. Sends are coalesced like
 * {@link KafkaProducer}'s, into the open transaction.
 *
 * kafkajs cannot begin a transaction after a failed commit or abort: such a producer is broken
 * for good, and the runtime replaces the task (and with it the producer).
 */
export class KafkaTransactionalProducer extends KafkaProducer implements TransactionalProducer {
  readonly transactionalId: string;
  readonly #producer: Producer;
  /** The kafkajs transaction: opened on connect (to register the id), then by `begin`. */
  #transaction: Transaction | undefined;
  /** Whether `begin` opened the transaction (and `commit` or `abort` has not ended it yet). */
  #open = false;
  #failure: EddyError | undefined;
  #closed = false;

  private constructor(producer: Producer, onClose: (producer: KafkaProducer) => void, limitsOf: LimitsOf, transactionalId: string, transaction: Transaction) {
    super(producer, onClose, limitsOf);
    this.#producer = producer;
    this.transactionalId = transactionalId;
    this.#transaction = transaction;
  }

  /**
   * Connects a producer with this transactional id and registers the id with its transaction
   * coordinator (InitProducerId). That fences every older producer of the id: the coordinator
   * aborts its open transaction (and waits for the abort to complete), and its next send or commit
   * fails. Only then may the new owner read the task's committed state.
   */
  static async connectTransactional(
    kafka: Kafka,
    settings: KafkaSettings,
    transactionalId: string,
    onClose: (producer: KafkaProducer) => void,
    limitsOf: LimitsOf,
  ): Promise<KafkaTransactionalProducer> {
    const producer = kafka.producer({
      transactionalId,
      idempotent: true,
      // One request at a time per broker, as transactions (and idempotence) want.
      maxInFlightRequests: 1,
      createPartitioner: explicitPartition,
      allowAutoTopicCreation: false,
      retry: { ...settings.retry, retries: Math.max(1, settings.retry.retries ?? 1) },
    });
    try {
      await producer.connect();
      // kafkajs initializes the transactional id with the first transaction; it stays open on the
      // client only (the broker knows a transaction once records or offsets join it).
      const transaction = await producer.transaction();
      return new KafkaTransactionalProducer(producer, onClose, limitsOf, transactionalId, transaction);
    } catch (error) {
      await producer.disconnect().catch(() => undefined);
      throw transactionError(`starting transactional producer ${transactionalId}`, transactionalId, error);
    }
  }

  async begin(): Promise<void> {
    this.#usable('begin');
    if (this.#open) throw new EddyError('TRANSPORT_FAILED', `transactional producer ${this.transactionalId}: a transaction is open already`);
    if (!this.#transaction) {
      try {
        this.#transaction = await this.#producer.transaction();
      } catch (error) {
        throw this.#broken(`beginning a transaction`, error);
      }
    }
    this.#open = true;
  }

  async sendOffsets(groupId: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const transaction = this.#current('sendOffsets');
    const byTopic = new Map<string, Array<{ partition: number; offset: string }>>();
    for (const { topic, partition, offset } of offsets) {
      let partitions = byTopic.get(topic);
      if (!partitions) byTopic.set(topic, (partitions = []));
      partitions.push({ partition, offset: String(offset) });
    }
    try {
      await transaction.sendOffsets({ consumerGroupId: groupId, topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })) });
    } catch (error) {
      throw this.#broken(`committing offsets of group ${groupId} in the transaction`, error);
    }
  }

  async commit(): Promise<void> {
    const transaction = this.#current('commit');
    await this.idle();
    if (this.#failure) throw this.#failure;
    try {
      await transaction.commit();
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
      await transaction.abort();
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

  protected override sendBatch(topicMessages: TopicMessages[]): Promise<RecordMetadata[]> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.#open || !this.#transaction) {
      return Promise.reject(new EddyError('TRANSPORT_FAILED', `transactional producer ${this.transactionalId}: send outside a transaction`));
    }
    return this.#transaction.sendBatch({ acks: -1, topicMessages }).catch((error: unknown) => {
      throw this.#broken('producing in the transaction', error);
    });
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

  /** A failed transactional request leaves the transaction (and kafkajs's producer) unusable. */
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

function toTopicMessages(entries: readonly RequestEntry[]): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  for (const { record } of entries) {
    let messages = byTopic.get(record.topic);
    if (!messages) byTopic.set(record.topic, (messages = []));
    messages.push(toKafkaMessage(record));
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

/** Gives each record its offset: its partition's base offset plus its position among that partition's records. */
function assignOffsets(entries: readonly RequestEntry[], metadata: readonly RecordMetadata[]): void {
  const next = new Map<string, Map<number, number>>();
  for (const { topicName, partition, baseOffset } of metadata) {
    if (baseOffset === undefined) continue;
    let partitions = next.get(topicName);
    if (!partitions) next.set(topicName, (partitions = new Map()));
    partitions.set(partition, Number(baseOffset));
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
